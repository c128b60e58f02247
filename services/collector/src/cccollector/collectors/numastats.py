"""numastats (spec §6.12): NUMA allocation counters (and rates) per memory domain."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector, read_text
from .base import CollectorInitError, Emit, register

NODE_BASE = "/sys/devices/system/node"


@register
class NUMAStatsCollector(FileCollector):
    type = "numastats"
    inline = True
    source = "NUMAStatsCollector"
    group = "NUMA"
    options = frozenset({"send_abs_values", "send_derived_values"})

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._abs = self.opt_bool("send_abs_values", True)
        self._derived = self.opt_bool("send_derived_values", False)
        base = self.path(NODE_BASE)
        try:
            ids = sorted(int(n[4:]) for n in os.listdir(base) if n.startswith("node") and n[4:].isdigit())
        except OSError as e:
            raise CollectorInitError(f"numastats: cannot list {base}: {e.strerror}") from None
        if not ids:
            raise CollectorInitError(f"numastats: no NUMA node directories node<N> in {base}")
        # (numastat file, tags, previous value per key)
        self._nodes: list[tuple[str, dict[str, str], dict[str, int]]] = [
            (os.path.join(base, f"node{i}", "numastat"), {"type": "memoryDomain", "type-id": str(i)}, {})
            for i in ids
        ]
        self._names: dict[str, tuple[str, str]] = {}
        self._last = self.clock()
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        now = self.clock()
        dt = (now - self._last) / 1e9
        self._last = now
        meta = self.meta
        names = self._names
        send_abs, send_derived = self._abs, self._derived
        for path, tags, prev in self._nodes:
            try:
                text = read_text(path)
            except OSError as e:
                self.log.error("Read(): failed to read %s: %s", path, e)
                continue
            for line in text.split("\n"):
                f = line.split()
                if len(f) != 2:
                    continue
                key = f[0]
                try:
                    value = int(f[1])
                except ValueError:
                    self.log.error("Read(): cannot convert %s=%r to int", key, f[1])
                    continue
                n = names.get(key)
                if n is None:
                    n = names[key] = ("numastats_" + key, "numastats_" + key + "_rate")
                if send_abs:
                    emit(CCMessage(n[0], tags.copy(), meta.copy(), {"value": value}, now))
                if send_derived:
                    old = prev.get(key)
                    if old is not None and dt > 0:
                        emit(CCMessage(n[1], tags.copy(), meta.copy(), {"value": (value - old) / dt}, now))
                    prev[key] = value
