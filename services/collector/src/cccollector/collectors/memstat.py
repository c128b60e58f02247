"""memstat (spec §6.2): /proc/meminfo per node and /sys/devices/system/node/node<N>/meminfo per NUMA domain."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector, read_text
from .base import CollectorInitError, Emit, register

MEMINFO = "/proc/meminfo"
NODE_BASE = "/sys/devices/system/node"

#: meminfo key → metric name, in the order they are emitted
METRICS = (
    ("MemTotal", "mem_total"),
    ("SwapTotal", "swap_total"),
    ("SReclaimable", "mem_sreclaimable"),
    ("Slab", "mem_slab"),
    ("MemFree", "mem_free"),
    ("Buffers", "mem_buffers"),
    ("Cached", "mem_cached"),
    ("MemAvailable", "mem_available"),
    ("SwapFree", "swap_free"),
    ("Shmem", "mem_shared"),
    ("Active", "mem_active"),
    ("Inactive", "mem_inactive"),
    ("Dirty", "mem_dirty"),
    ("Writeback", "mem_writeback"),
    ("AnonPages", "mem_anon_pages"),
    ("Mapped", "mem_mapped"),
    ("VmallocTotal", "mem_vmalloc_total"),
    ("AnonHugePages", "mem_anon_hugepages"),
    ("ShmemHugePages", "mem_shared_hugepages"),
    ("ShmemPmdMapped", "mem_shared_pmd_mapped"),
    ("HugePages_Total", "mem_hugepages_total"),
    ("HugePages_Free", "mem_hugepages_free"),
    ("HugePages_Rsvd", "mem_hugepages_reserved"),
    ("HugePages_Surp", "mem_hugepages_surplus"),
    ("Hugepagesize", "mem_hugepages_size"),
    ("DirectMap4k", "mem_direct_mapped_4k"),
    ("DirectMap4M", "mem_direct_mapped_4m"),
    ("DirectMap2M", "mem_direct_mapped_2m"),
    ("DirectMap1G", "mem_direct_mapped_1g"),
    ("Mlocked", "mem_locked"),
    ("PageTables", "mem_pagetables"),
    ("KernelStack", "mem_kernelstack"),
)

Stats = dict[str, tuple[float, str]]


def parse_meminfo(text: str) -> Stats:
    """`Key: value [unit]` and `Node N Key: value [unit]` lines → key → (value, unit or "").

    Unlike upstream, unit-less lines (HugePages_*) are parsed too (spec §6.2 quirk).
    """
    out: Stats = {}
    for line in text.split("\n"):
        f = line.split()
        n = len(f)
        try:
            if n == 3:
                out[f[0].strip(":")] = (float(f[1]), f[2])
            elif n == 2:
                out[f[0].strip(":")] = (float(f[1]), "")
            elif n == 5:
                out[f[2].strip(":")] = (float(f[3]), f[4])
            elif n == 4 and f[0] == "Node":
                out[f[2].strip(":")] = (float(f[3]), "")
        except ValueError:
            continue
    return out


def mem_used(stats: Stats) -> tuple[float, str]:
    """MemTotal − MemFree − Buffers − Cached − Shmem with upstream's presence rules and unit choice."""
    used, unit = 0.0, ""
    total = stats.get("MemTotal")
    free = stats.get("MemFree")
    if total is None or free is None:
        return used, unit
    used = total[0] - free[0]
    unit = total[1] or free[1]
    buf = stats.get("Buffers")
    if buf is not None:
        used -= buf[0]
        unit = unit or buf[1]
        for key in ("Cached", "Shmem"):
            x = stats.get(key)
            if x is not None:
                used -= x[0]
                unit = unit or x[1]
    return used, unit


@register
class MemstatCollector(FileCollector):
    type = "memstat"
    inline = True
    source = "MemstatCollector"
    group = "Memory"
    options = frozenset({"node_stats", "numa_stats"})

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._node_stats = self.opt_bool("node_stats", True)
        self._numa_stats = self.opt_bool("numa_stats", False)
        self._matches = [(k, n) for k, n in METRICS if n not in self.exclude]
        self._send_used = "mem_used" not in self.exclude
        if not self._matches and not self._send_used:
            raise CollectorInitError("memstat: no metrics to collect (all excluded)")
        self._metas: dict[str, dict[str, str]] = {"": self.meta}
        self._file = self.path(MEMINFO)
        if self._node_stats and not parse_meminfo(self.read_source(MEMINFO)):
            raise CollectorInitError(f"memstat: cannot read data from {self._file}")
        self._nodetags = {"type": "node"}
        self._numa: list[tuple[str, dict[str, str]]] = []
        if self._numa_stats:
            base = self.path(NODE_BASE)
            try:
                ids = sorted(int(n[4:]) for n in os.listdir(base) if n.startswith("node") and n[4:].isdigit())
            except OSError:
                ids = []
            for i in ids:
                f = os.path.join(base, f"node{i}", "meminfo")
                if not os.path.exists(f):
                    continue
                try:
                    with open(f) as fh:
                        ok = bool(parse_meminfo(fh.read()))
                except OSError:
                    ok = False
                if not ok:
                    raise CollectorInitError(f"memstat: cannot read data from {f}")
                self._numa.append((f, {"type": "memoryDomain", "type-id": str(i)}))
            if not self._numa:
                self.log.warning("numa_stats: no NUMA meminfo files in %s", base)
        if not self._node_stats and not self._numa:
            raise CollectorInitError("memstat: nothing to read (node_stats false and no NUMA meminfo files)")
        self.initialized = True

    def _meta(self, unit: str) -> dict[str, str]:
        m = self._metas.get(unit)
        if m is None:
            m = self._metas[unit] = {**self.meta, "unit": unit}
        return m

    def _send(self, stats: Stats, tags: dict[str, str], emit: Emit) -> None:
        now = self.clock()
        meta_for = self._meta
        none = (0.0, "")
        for key, name in self._matches:
            value, unit = stats.get(key, none)
            emit(CCMessage(name, tags.copy(), meta_for(unit).copy(), {"value": value}, now))
        if self._send_used:
            value, unit = mem_used(stats)
            emit(CCMessage("mem_used", tags.copy(), meta_for(unit).copy(), {"value": value}, now))

    def read(self, interval: float, emit: Emit) -> None:
        if self._node_stats:
            try:
                text = read_text(self._file)
            except OSError as e:
                self.log.error("Read(): failed to read %s: %s", self._file, e)
            else:
                self._send(parse_meminfo(text), self._nodetags, emit)
        for path, tags in self._numa:
            try:
                text = read_text(path)
            except OSError as e:
                self.log.error("Read(): failed to read %s: %s", path, e)
                continue
            self._send(parse_meminfo(text), tags, emit)
