"""schedstat (spec §6.13): per-thread load = (running + waiting time) per wall-clock second, /proc/schedstat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector, read_text
from .base import CollectorInitError, Emit, register

SCHEDSTAT = "/proc/schedstat"


def _cpu_times(text: str) -> list[tuple[str, int, int]]:
    """(cpu<N>, running ns, waiting ns) per `cpu<N>` line (columns 7 and 8)."""
    out = []
    for line in text.split("\n"):
        if not line.startswith("cpu"):
            continue
        f = line.split()
        if len(f) < 9:
            continue
        try:
            out.append((f[0], int(f[7]), int(f[8])))
        except ValueError:
            continue
    return out


@register
class SchedstatCollector(FileCollector):
    type = "schedstat"
    inline = True
    source = "SchedstatCollector"
    group = "SCHEDSTAT"

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)  # exclude_metrics is accepted but not used (upstream)
        self._file = self.path(SCHEDSTAT)
        text = self.read_source(SCHEDSTAT)
        now = self.clock()
        self._old: dict[str, list[int]] = {}
        self._tags: dict[str, dict[str, str]] = {}
        for key, run, wait in _cpu_times(text):
            try:
                self._tags[key] = {"type": "hwthread", "type-id": str(int(key[3:]))}
            except ValueError:
                continue
            self._old[key] = [run, wait]
        if not self._old:
            raise CollectorInitError(f"schedstat: no cpu<N> lines in {self._file}")
        self._last = now
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        try:
            text = read_text(self._file)
        except OSError as e:
            self.log.error("Read(): failed to read %s: %s", self._file, e)
            return
        now = self.clock()
        dt = (now - self._last) / 1e9
        self._last = now
        meta = self.meta
        olds, tagmap = self._old, self._tags
        for key, run, wait in _cpu_times(text):
            old = olds.get(key)
            if old is None:  # CPU not present at start: no baseline
                continue
            if dt > 0:
                value = (run - old[0]) / dt / 1e9 + (wait - old[1]) / dt / 1e9
                emit(CCMessage("cpu_load_core", tagmap[key].copy(), meta.copy(), {"value": value}, now))
            old[0], old[1] = run, wait
