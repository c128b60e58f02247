"""self (spec §6.15): the collector's own resource usage, with Python analogues of Go runtime figures.

`read_mem_stats`: heap_sys = VmData, heap_alloc = heap_inuse = VmRSS (bytes, /proc/self/status),
heap_objects = objects tracked by the garbage collector; total_alloc (peak traced bytes) and
heap_idle (VmData − traced bytes) only while tracemalloc is tracing; heap_released has no
Python analogue and is not sent. `read_goroutines`: live threads + asyncio tasks.
`read_cgo_calls`: nothing (no cgo in Python).
"""

from __future__ import annotations

import asyncio
import gc
import resource
import threading
import tracemalloc
from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage, UInt

from ._files import FileCollector, read_text
from .base import Emit, register

STATUS = "/proc/self/status"


def _status_bytes(text: str) -> dict[str, int]:
    """`VmRSS:    1636 kB` lines → key → bytes."""
    out = {}
    for line in text.split("\n"):
        if line.startswith("Vm"):
            f = line.split()
            if len(f) == 3 and f[2] == "kB":
                out[f[0].rstrip(":")] = int(f[1]) * 1024
    return out


@register
class SelfCollector(FileCollector):
    type = "self"
    source = "SelfCollector"
    group = "Self"
    options = frozenset({"read_mem_stats", "read_goroutines", "read_cgo_calls", "read_rusage"})

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._mem = self.opt_bool("read_mem_stats", False)
        self._tasks = self.opt_bool("read_goroutines", False)
        self.opt_bool("read_cgo_calls", False)  # type-checked, nothing to report in Python
        self._rusage = self.opt_bool("read_rusage", False)
        self._file = self.path(STATUS)
        if self._mem:
            self.read_source(STATUS)
        try:
            #: the daemon's event loop, whose tasks count as "goroutines"
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None
        self._tags = {"type": "node"}
        self._bytes = {**self.meta, "unit": "Bytes"}
        self._seconds = {**self.meta, "unit": "seconds"}
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        now = self.clock()
        tags, meta = self._tags, self.meta

        def send(name: str, value: Any, m: dict[str, str] = meta) -> None:
            emit(CCMessage(name, tags.copy(), m.copy(), {"value": value}, now))

        if self._mem:
            try:
                vm = _status_bytes(read_text(self._file))
            except OSError as e:
                self.log.error("Read(): failed to read %s: %s", self._file, e)
                vm = {}
            rss, data = vm.get("VmRSS"), vm.get("VmData")
            traced = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else None
            if traced is not None:
                send("total_alloc", UInt(traced[1]), self._bytes)
            if rss is not None:
                send("heap_alloc", UInt(rss), self._bytes)
            if data is not None:
                send("heap_sys", UInt(data), self._bytes)
                if traced is not None:
                    send("heap_idle", UInt(max(data - traced[0], 0)), self._bytes)
            if rss is not None:
                send("heap_inuse", UInt(rss), self._bytes)
            send("heap_objects", UInt(len(gc.get_objects())))
        if self._tasks:
            n = threading.active_count()
            loop = self.loop
            if loop is not None and not loop.is_closed():
                try:
                    n += len(asyncio.all_tasks(loop))
                except RuntimeError:
                    pass
            send("num_goroutines", n)
        if self._rusage:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            send("rusage_user_time", float(ru.ru_utime), self._seconds)
            send("rusage_system_time", float(ru.ru_stime), self._seconds)
            send("rusage_vol_ctx_switch", int(ru.ru_nvcsw))
            send("rusage_invol_ctx_switch", int(ru.ru_nivcsw))
            send("rusage_signals", int(ru.ru_nsignals))
            send("rusage_major_pgfaults", int(ru.ru_majflt))
            send("rusage_minor_pgfaults", int(ru.ru_minflt))
