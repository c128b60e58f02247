"""diskstat (spec §6.5): size and free space of the mounted /dev file systems, plus the fullest one.

The mount table is parsed again only when it changed: the kernel marks an open
/proc/self/mounts with POLLPRI after every mount or unmount (proc(5)), so a tick costs one
poll(2) and a statvfs(2) per file system instead of the kernel writing out the whole table
(40 µs on a small VM, more with many mounts). Below a test root (a plain file, which cannot
signal changes) the table is read at every tick.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable, Mapping
from typing import Any

from cccommon.message import CCMessage, UInt

from ._files import FileCollector, read_text
from .base import Emit, register

MOUNTS = "/proc/self/mounts"
GB = 1_000_000_000


@register
class DiskstatCollector(FileCollector):
    type = "diskstat"
    inline = True  # statvfs of local /dev file systems only (network mounts are skipped)
    source = "DiskstatCollector"
    group = "Disk"
    options = frozenset({"exclude_mounts"})

    def __init__(self, root: str = "/", env: Mapping[str, str] | None = None) -> None:
        super().__init__(root, env)
        #: statfs hook (tests replace it); called with the mount point below the root
        self.statfs: Callable[[str], os.statvfs_result] = os.statvfs

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._exclude_mounts = self.opt_strlist("exclude_mounts")
        self._file = self.path(MOUNTS)
        self.read_source(MOUNTS)
        self._total = "disk_total" not in self.exclude
        self._free = "disk_free" not in self.exclude
        self._max = "part_max_used" not in self.exclude
        self._gbmeta = {**self.meta, "unit": "GBytes"}
        self._pctmeta = {**self.meta, "unit": "percent"}
        #: (device, mount point below the root) of the file systems to report
        self._mounts: list[tuple[str, str]] | None = None
        self._watch: tuple[int, select.poll] | None = None
        if self._file.startswith("/proc/"):
            try:
                fd = os.open(self._file, os.O_RDONLY | os.O_CLOEXEC)
                poller = select.poll()
                poller.register(fd, select.POLLPRI)
                self._watch = (fd, poller)
            except OSError:
                self._watch = None
        self.initialized = True

    def close(self) -> None:
        if self._watch is not None:
            os.close(self._watch[0])
            self._watch = None
        super().close()

    def _parse(self, text: str) -> list[tuple[str, str]]:
        out = []
        for line in text.split("\n"):
            if not line.startswith("/dev"):
                continue
            f = line.split()
            if len(f) < 2 or "loop" in f[0] or "boot" in f[1]:
                continue
            mnt = f[1].replace("\\040", " ")
            if any(x in mnt for x in self._exclude_mounts):
                continue
            out.append((f[0], self.path(mnt)))
        return out

    def _current_mounts(self) -> list[tuple[str, str]] | None:
        if self._mounts is not None and self._watch is not None:
            try:
                changed = bool(self._watch[1].poll(0))
            except OSError:
                changed = True
            if not changed:
                return self._mounts
        try:
            text = read_text(self._file)
        except OSError as e:
            self.log.error("Read(): failed to read %s: %s", self._file, e)
            return None
        self._mounts = self._parse(text)
        return self._mounts

    def read(self, interval: float, emit: Emit) -> None:
        mounts = self._current_mounts()
        if mounts is None:
            return
        max_used = 0
        gbmeta = self._gbmeta
        for device, mnt in mounts:
            try:
                st = self.statfs(mnt)
            except OSError:
                continue
            if st.f_blocks == 0 or st.f_bsize == 0:
                continue
            total = st.f_blocks * st.f_bsize // GB
            free = st.f_bfree * st.f_bsize // GB
            now = self.clock()
            tags = {"type": "node", "device": device}
            if self._total:
                emit(CCMessage("disk_total", tags.copy(), gbmeta.copy(), {"value": UInt(total)}, now))
            if self._free:
                emit(CCMessage("disk_free", tags, gbmeta.copy(), {"value": UInt(free)}, now))
            if total > 0:
                max_used = max(max_used, 100 * (total - free) // total)
        if self._max:
            emit(
                CCMessage(
                    "part_max_used", {"type": "node"}, self._pctmeta.copy(), {"value": max_used}, self.clock()
                )
            )
