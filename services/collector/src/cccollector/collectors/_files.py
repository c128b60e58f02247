"""Shared base for the collectors that read /proc and /sys files.

It adds what those collectors have in common on top of `MetricCollector`: an injectable clock
(ns since the epoch, used for timestamps and rate Δt so tests control both), typed option
getters, case-insensitive option keys (Go's JSON decoder matches keys that way), a warning for
unknown keys of lenient collectors, and a fast message constructor for the hot loops.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from cccommon.message import CCMessage

from .base import CollectorInitError, MetricCollector

__all__ = ["FileCollector", "metric", "read_text", "truncdiv"]

_isfinite = math.isfinite


def metric(name: str, tags: dict[str, str], meta: dict[str, str], value: Any, t_ns: int) -> CCMessage | None:
    """A metric message from pre-validated name/tags/meta (keys known non-empty).

    Same creation rules as `cccommon.message.new_message` for the values collectors produce
    (int, UInt, float, str): only the float check remains; the maps are copied.
    """
    if value.__class__ is float and not _isfinite(value):
        return None
    return CCMessage(name, tags.copy(), meta.copy(), {"value": value}, t_ns)


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


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
            with open(full) as f:
                return f.read()
        except OSError as e:
            raise CollectorInitError(f"{self.type}: cannot read {full}: {e.strerror or e}") from None
