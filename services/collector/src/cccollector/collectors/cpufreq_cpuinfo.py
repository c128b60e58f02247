"""cpufreq_cpuinfo (spec §6.11): `cpu MHz` of the first logical CPU of every core, from /proc/cpuinfo."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector
from .base import CollectorInitError, Emit, register

CPUINFO = "/proc/cpuinfo"
_MHZ = re.compile(r"^cpu MHz\s*:\s*(\S*)", re.MULTILINE)


@register
class CPUFreqCpuInfoCollector(FileCollector):
    type = "cpufreq_cpuinfo"
    inline = True
    source = "CPUFreqCpuInfoCollector"
    group = "CPU"
    strict = False

    def init(self, config: Mapping[str, Any]) -> None:
        # upstream ignores the options entirely (not even their types are checked)
        self.config = dict(config) if isinstance(config, Mapping) else {}
        self._file = self.path(CPUINFO)
        text = self.read_source(CPUINFO)
        # per `cpu MHz` occurrence, in file order: tags, or None for further threads of a core
        self._slots: list[dict[str, str] | None] = []
        seen: set[tuple[str, str]] = set()
        freq = False
        proc = core = pkg = ""
        for line in text.split("\n"):
            key, sep, value = line.partition(":")
            if not sep or ":" in value:
                continue
            key, value = key.strip(), value.strip()
            if key == "cpu MHz":
                freq = True
            elif key == "processor":
                proc = value
            elif key == "core id":
                core = value
            elif key == "physical id":
                pkg = value
            if freq and proc and core and pkg:
                first = (pkg, core) not in seen
                seen.add((pkg, core))
                self._slots.append(
                    {"type": "hwthread", "type-id": proc, "package_id": pkg} if first else None
                )
                freq, proc, core, pkg = False, "", "", ""
        if not self._slots:
            raise CollectorInitError(f"cpufreq_cpuinfo: no CPU frequency ('cpu MHz') found in {self._file}")
        self._meta = {**self.meta, "unit": "MHz"}
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        try:
            with open(self._file) as fh:
                text = fh.read()
        except OSError as e:
            self.log.error("Read(): failed to read %s: %s", self._file, e)
            return
        now = self.clock()
        meta = self._meta
        for tags, raw in zip(self._slots, _MHZ.findall(text), strict=False):
            if tags is None:
                continue
            try:
                v = float(raw)
            except ValueError:
                self.log.error("Read(): cannot convert cpu MHz %r to float", raw)
                return
            emit(CCMessage("cpufreq", tags.copy(), meta.copy(), {"value": v}, now))
