"""diskstat (spec §6.5): size and free space of the mounted /dev file systems, plus the fullest one."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from cccommon.message import CCMessage, UInt

from ._files import FileCollector
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
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        try:
            with open(self._file) as fh:
                text = fh.read()
        except OSError as e:
            self.log.error("Read(): failed to read %s: %s", self._file, e)
            return
        max_used = 0
        gbmeta = self._gbmeta
        for line in text.split("\n"):
            if not line.startswith("/dev"):
                continue
            f = line.split()
            if len(f) < 2 or "loop" in f[0] or "boot" in f[1]:
                continue
            mnt = f[1].replace("\\040", " ")
            if any(x in mnt for x in self._exclude_mounts):
                continue
            try:
                st = self.statfs(self.path(mnt))
            except OSError:
                continue
            if st.f_blocks == 0 or st.f_bsize == 0:
                continue
            total = st.f_blocks * st.f_bsize // GB
            free = st.f_bfree * st.f_bsize // GB
            now = self.clock()
            tags = {"type": "node", "device": f[0]}
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
