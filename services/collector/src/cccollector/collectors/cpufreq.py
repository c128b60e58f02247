"""cpufreq (spec §6.10): current frequency of the first hardware thread of every core (sysfs cpufreq).

Upstream quirk kept for identical output: the value is scaling_cur_freq as the kernel writes it
(kHz) while the unit says `Hz`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage

from ..topology import CPU_BASE, TopologyError, read_topology
from ._files import FileCollector, read_bytes
from .base import CollectorInitError, Emit, register


@register
class CPUFreqCollector(FileCollector):
    type = "cpufreq"
    source = "CPUFreqCollector"
    group = "CPU"
    #: upstream decodes the options leniently (json.Unmarshal); exclude_metrics is accepted, unused
    strict = False

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        try:
            topo = read_topology(self.root)
        except TopologyError as e:
            raise CollectorInitError(f"cpufreq: {e}") from None
        self._cpus: list[tuple[str, dict[str, str]]] = []
        for t in topo.first_threads_of_cores():
            f = self.path(f"{CPU_BASE}/cpu{t.id}/cpufreq/scaling_cur_freq")
            if not os.access(f, os.R_OK):
                raise CollectorInitError(f"cpufreq: unable to access {f} (no cpufreq driver?)")
            self._cpus.append((f, {"type": "hwthread", "type-id": str(t.id), "package_id": str(t.socket)}))
        self._meta = {**self.meta, "unit": "Hz"}
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        now = self.clock()
        meta = self._meta
        for path, tags in self._cpus:
            try:
                v = int(read_bytes(path))
            except (OSError, ValueError) as e:
                self.log.error("Read(): failed to read CPU frequency from %s: %s", path, e)
                continue
            emit(CCMessage("cpufreq", tags.copy(), meta.copy(), {"value": v}, now))
