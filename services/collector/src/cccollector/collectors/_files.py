"""Shared base for the collectors that read /proc and /sys files.

It adds what those collectors have in common on top of `MetricCollector`: an injectable clock
(ns since the epoch, used for timestamps and rate Δt so tests control both), typed option
getters, case-insensitive option keys (Go's JSON decoder matches keys that way) and a warning for
unknown keys of lenient collectors.

The collectors build `CCMessage` objects directly in their read loops instead of going through
`new_message` (4x cheaper): names and tag keys are constants, values are ints, UInts or floats
computed from kernel counters with Δt > 0, and every tag/meta map is copied per message, so the creation
rules of spec §4.1 hold by construction.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from .base import CollectorInitError, MetricCollector

__all__ = ["FileCollector", "truncdiv", "read_text", "read_bytes"]

_RD_FLAGS = os.O_RDONLY | os.O_CLOEXEC


def read_bytes(path: str) -> bytes:
    """The whole file with plain system calls: a fifth of what `open().read()` costs, which
    matters for the /proc and /sys files read at every tick. Raises OSError."""
    fd = os.open(path, _RD_FLAGS)
    try:
        data = os.read(fd, 65536)
        if data:
            more = os.read(fd, 65536)
            if more:
                parts = [data, more]
                while more:
                    more = os.read(fd, 65536)
                    parts.append(more)
                data = b"".join(parts)
        return data
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    """`read_bytes` as text (kernel files are ASCII; stray bytes become U+FFFD). Raises OSError."""
    return read_bytes(path).decode("utf-8", "replace")


def truncdiv(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's `/` on integers."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


class FileCollector(MetricCollector):
    """MetricCollector with clock, logger, base meta and option helpers."""

    def __init__(self, root: str = "/", env: Mapping[str, str] | None = None) -> None:
        super().__init__(root, env)
        #: time source in ns since the epoch; tests replace it to control Δt
        self.clock: Callable[[], int] = time.time_ns
        self.log = logging.getLogger(self.source or self.type)
        self.meta: dict[str, str] = {"source": self.source, "group": self.group}

    def check_options(self, config: Mapping[str, Any] | None) -> None:
        if config is None:  # `"cpustat": null` decodes to the defaults in Go
            config = {}
        if isinstance(config, Mapping):
            allowed = self.options | {"exclude_metrics"}
            lower = {k.lower(): k for k in allowed}
            fixed: dict[str, Any] = {}
            for k, v in config.items():
                if k not in allowed and isinstance(k, str) and k.lower() in lower:
                    k = lower[k.lower()]
                fixed[k] = v
            config = fixed
            if not self.strict:
                unknown = sorted(set(config) - allowed)
                if unknown:
                    self.log.warning("ignoring unknown option(s) %s", ", ".join(unknown))
        super().check_options(config)

    # ----------------------------------------------------------------- typed options

    def opt_bool(self, key: str, default: bool) -> bool:
        v = self.config.get(key, default)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise CollectorInitError(f"{self.type}: option {key} must be true or false")
        return v

    def opt_str(self, key: str, default: str) -> str:
        v = self.config.get(key, default)
        if v is None:
            return default
        if not isinstance(v, str):
            raise CollectorInitError(f"{self.type}: option {key} must be a string")
        return v

    def opt_strlist(self, key: str) -> list[str]:
        v = self.config.get(key)
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise CollectorInitError(f"{self.type}: option {key} must be a list of strings")
        return list(v)

    def opt_mapping(self, key: str) -> dict[str, Any]:
        v = self.config.get(key)
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            raise CollectorInitError(f"{self.type}: option {key} must be a JSON object")
        return dict(v)

    # ----------------------------------------------------------------- helpers

    def read_source(self, path: str) -> str:
        """Content of `path` below the root, or CollectorInitError naming the file."""
        full = self.path(path)
        try:
            return read_text(full)
        except OSError as e:
            raise CollectorInitError(f"{self.type}: cannot read {full}: {e.strerror or e}") from None
