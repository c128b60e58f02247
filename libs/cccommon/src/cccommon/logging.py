"""Log lines in cc-lib's format (`<6>[INFO] [component] message`) so journald sees the priority.

The syslog priority prefix lets systemd-journald classify each line; timestamps are left to
journald unless `-logdate` asks for them, as upstream does.
"""

from __future__ import annotations

import logging as _logging
import sys
import time
from typing import TextIO

__all__ = ["setup_logging", "get_logger", "parse_level", "CCFormatter"]

_LEVELS: dict[str, int] = {
    "debug": _logging.DEBUG,
    "info": _logging.INFO,
    "warn": _logging.WARNING,
    "warning": _logging.WARNING,
    "err": _logging.ERROR,
    "error": _logging.ERROR,
    "fatal": _logging.ERROR,
    "crit": _logging.CRITICAL,
    "critical": _logging.CRITICAL,
}

# (syslog priority, label) per Python level, as cc-lib's cclogger prints them.
_PREFIX: dict[int, tuple[int, str]] = {
    _logging.DEBUG: (7, "DEBUG"),
    _logging.INFO: (6, "INFO"),
    _logging.WARNING: (4, "WARNING"),
    _logging.ERROR: (3, "ERROR"),
    _logging.CRITICAL: (2, "CRITICAL"),
}


def parse_level(name: str) -> int:
    """Go level name (or alias) → Python level; ValueError for unknown names."""
    try:
        return _LEVELS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"invalid loglevel {name!r} (use debug, info, warn, err or crit)") from None


def _prefix(levelno: int) -> tuple[int, str]:
    if levelno >= _logging.CRITICAL:
        return _PREFIX[_logging.CRITICAL]
    if levelno >= _logging.ERROR:
        return _PREFIX[_logging.ERROR]
    if levelno >= _logging.WARNING:
        return _PREFIX[_logging.WARNING]
    if levelno >= _logging.INFO:
        return _PREFIX[_logging.INFO]
    return _PREFIX[_logging.DEBUG]


class CCFormatter(_logging.Formatter):
    """`<prio>[LEVEL] [date] [component] message`; component = logger name (root → default)."""

    def __init__(self, logdate: bool = False, component: str = "") -> None:
        super().__init__()
        self.logdate = logdate
        self.component = component

    def format(self, record: _logging.LogRecord) -> str:
        prio, label = _prefix(record.levelno)
        parts = [f"<{prio}>[{label}]"]
        if self.logdate:
            parts.append(time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(record.created)))
        comp = self.component if record.name == "root" else record.name
        if comp:
            parts.append(f"[{comp}]")
        msg = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            msg = f"{msg}\n{record.exc_text}"
        if record.stack_info:
            msg = f"{msg}\n{self.formatStack(record.stack_info)}"
        parts.append(msg)
        return " ".join(parts)


_HANDLER_ATTR = "_cccommon_handler"


def setup_logging(
    level: str = "info",
    logdate: bool = False,
    component: str = "",
    stream: TextIO | None = None,
) -> None:
    """Install the cc-lib style handler on the root logger (idempotent; replaces an earlier one).

    An unknown level falls back to `debug` with an error line, as upstream's cclogger does.
    """
    root = _logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_ATTR, False):
            root.removeHandler(h)
    handler = _logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _HANDLER_ATTR, True)
    handler.setFormatter(CCFormatter(logdate=logdate, component=component))
    root.addHandler(handler)
    try:
        lvl = parse_level(level)
        bad = False
    except ValueError:
        lvl, bad = _logging.DEBUG, True
    root.setLevel(lvl)
    if bad:
        _logging.getLogger("cclogger").error("Invalid loglevel %r, using 'debug' (all levels enabled)", level)


def get_logger(component: str) -> _logging.Logger:
    """Logger whose lines carry `[component]`."""
    return _logging.getLogger(component)
