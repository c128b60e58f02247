"""loadavg (spec §6.3): load averages and process counts from /proc/loadavg."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector, read_text
from .base import Emit, register

LOADAVG = "/proc/loadavg"
LOAD_METRICS = ("load_one", "load_five", "load_fifteen")
PROC_METRICS = ("proc_run", "proc_total")


@register
class LoadavgCollector(FileCollector):
    type = "loadavg"
    inline = True
    source = "LoadavgCollector"
    group = "LOAD"
    #: upstream decodes the options leniently (json.Unmarshal): unknown keys are ignored
    strict = False

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._file = self.path(LOADAVG)
        self.read_source(LOADAVG)
        self._load = [(i, n) for i, n in enumerate(LOAD_METRICS) if n not in self.exclude]
        self._proc = [(i, n) for i, n in enumerate(PROC_METRICS) if n not in self.exclude]
        self._tags = {"type": "node"}
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        try:
            f = read_text(self._file).split()
        except OSError as e:
            self.log.error("Read(): failed to read %s: %s", self._file, e)
            return
        now = self.clock()
        tags, meta = self._tags, self.meta
        for i, name in self._load:
            try:
                v = float(f[i])
            except (ValueError, IndexError):
                self.log.error("Read(): cannot parse %s from %s", name, self._file)
                continue
            emit(CCMessage(name, tags.copy(), meta.copy(), {"value": v}, now))
        procs = f[3].split("/") if len(f) > 3 else []
        for i, name in self._proc:
            try:
                v = int(procs[i])
            except (ValueError, IndexError):
                self.log.error("Read(): cannot parse %s from %s", name, self._file)
                continue
            emit(CCMessage(name, tags.copy(), meta.copy(), {"value": v}, now))
