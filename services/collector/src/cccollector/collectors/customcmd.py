"""customcmd (spec §6.16): line protocol printed by site commands or written to files, forwarded as is.

Each good line becomes one message with the parsed tags and fields and no meta; bad lines are
logged and skipped (upstream drops the whole output). Timestamps follow the `precision` option
(PX-3, default `auto`); a line without timestamp gets the read time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cccommon.lineprotocol import parse_lines
from cccommon.message import MessageError, new_message

from ._cmd import CommandCollector
from .base import CollectorInitError, Emit, register

__all__ = ["CustomCmdCollector", "timestamp_ns", "PRECISIONS"]

#: precision → factor to nanoseconds (None = detect by magnitude)
PRECISIONS: dict[str, int | None] = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1, "auto": None}


def timestamp_ns(t: int, precision: str) -> int:
    """A line-protocol timestamp in ns; `auto`: |t| < 1e11 → s, < 1e14 → ms, < 1e17 → µs, else ns."""
    factor = PRECISIONS[precision]
    if factor is None:
        a = abs(t)
        factor = 10**9 if a < 10**11 else 10**6 if a < 10**14 else 10**3 if a < 10**17 else 1
    return t * factor


@register
class CustomCmdCollector(CommandCollector):
    type = "customcmd"
    source = "CustomCmdCollector"
    group = "Custom"
    options = frozenset({"commands", "files", "precision"})

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        precision = self.opt_str("precision", "auto")
        if precision not in PRECISIONS:
            raise CollectorInitError(
                f"customcmd: precision must be one of {', '.join(PRECISIONS)}, not {precision!r}"
            )
        self._precision = precision
        self._commands: list[list[str]] = []
        for line in self.opt_strlist("commands"):
            argv = line.split()
            if not argv:
                self.log.warning("Init(): ignoring empty command")
                continue
            try:
                self.output(argv)
            except RuntimeError as e:
                self.log.warning('Init(): execution of command "%s" failed: %s', line, e)
                continue
            self._commands.append(argv)
        self._files: list[str] = []
        for name in self.opt_strlist("files"):
            try:
                with open(name, "rb") as f:
                    f.read()
            except OSError as e:
                self.log.warning('Init(): reading of file "%s" failed: %s', name, e.strerror or e)
                continue
            self._files.append(name)
        if not self._commands and not self._files:
            raise CollectorInitError(
                "customcmd: no metrics to collect (no command runs and no file is readable)"
            )
        self.initialized = True

    def _forward(self, data: str | bytes, origin: str, emit: Emit) -> None:
        lines, errors = parse_lines(data)
        for err in errors:
            self.log.error("Read(): bad line protocol from %s: %s", origin, err)
        now = self.clock()
        for ln in lines:
            if ln.measurement in self.exclude:
                continue
            t = now if ln.time is None else timestamp_ns(ln.time, self._precision)
            try:
                emit(new_message(ln.measurement, ln.tags, None, ln.fields, t))
            except MessageError as e:
                self.log.error("Read(): invalid message %r from %s: %s", ln.measurement, origin, e)

    def read(self, interval: float, emit: Emit) -> None:
        for argv in self._commands:
            try:
                out = self.output(argv)
            except RuntimeError as e:
                self.log.error('Read(): failed to read the output of command "%s": %s', " ".join(argv), e)
                continue
            self._forward(out, f'command "{" ".join(argv)}"', emit)
        for name in self._files:
            try:
                with open(name, "rb") as f:
                    data = f.read()
            except OSError as e:
                self.log.error('Read(): failed to read file "%s": %s', name, e.strerror or e)
                continue
            self._forward(data, f'file "{name}"', emit)
