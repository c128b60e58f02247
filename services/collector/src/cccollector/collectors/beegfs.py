"""beegfs_meta / beegfs_storage (spec §6.22): BeeOND client operation counts from `beegfs-ctl --clientstats`.

Per BeeOND mount (a `/proc/mounts` device containing `beegfs_ondemand`) the `Sum:` line gives
`<count> [<op>]` pairs; every known, non-excluded op becomes its own metric, everything else is
summed into `beegfs_cstorage_other` (upstream's name, used by both collectors).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from ._cmd import CommandCollector, metric
from .base import Emit, register

META_OPS = (
    "sum ack close entInf fndOwn mkdir create rddir refrEn mdsInf rmdir rmLnk mvDirIns mvFiIns open "
    "ren sChDrct sAttr sDirPat stat statfs trunc symlnk unlnk lookLI statLI revalLI openLI createLI "
    "hardlnk flckAp flckEn flckRg dirparent listXA getXA rmXA setXA mirror"
).split()
STORAGE_OPS = (
    "sum ack sChDrct getFSize sAttr statfs trunc close fsync ops-rd MiB-rd/s ops-wr MiB-wr/s gendbg "
    "hrtbeat remNode storInf unlnk"
).split()
OTHER = "beegfs_cstorage_other"

_SUM_LINE = re.compile(r"^Sum:\s+\d+\s+\[[a-zA-Z]+\]")


def parse_sum_line(text: str) -> list[tuple[str, float]] | None:
    """(op, count) pairs of the first `Sum:` line, or None when there is none."""
    for line in text.split("\n"):
        if _SUM_LINE.match(line):
            toks = line[4:].replace("[", " ").replace("]", " ").split()
            out = []
            for i in range(0, len(toks) - 1, 2):
                try:
                    out.append((toks[i + 1], float(toks[i])))
                except ValueError:
                    continue
            return out
    return None


def beeond_mounts(text: str, exclude: set[str]) -> list[str]:
    out = []
    for line in text.split("\n"):
        f = line.split()
        if len(f) >= 2 and "beegfs_ondemand" in f[0] and f[1] not in exclude:
            out.append(f[1])
    return out


class _BeegfsCollector(CommandCollector):
    options = frozenset({"beegfs_path", "exclude_filesystem"})
    nodetype: ClassVar[str] = ""
    prefix: ClassVar[str] = ""
    ops: ClassVar[tuple[str, ...] | list[str]] = ()

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._skip_fs = set(self.opt_strlist("exclude_filesystem"))
        self.setup_sudo(False, root_required=True, what="BeeGFS client statistics")
        self._beegfs = self.find_program(self.opt_str("beegfs_path", "beegfs-ctl"), "beegfs_path")
        self._known = [op for op in self.ops if op not in self.exclude]
        self._known_set = set(self._known)
        self._mounts = self.path("/proc/mounts")
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        try:
            with open(self._mounts) as f:
                mounts = beeond_mounts(f.read(), self._skip_fs)
        except OSError as e:
            self.log.error("Read(): cannot read %s: %s", self._mounts, e.strerror or e)
            return
        for mnt in mounts:
            argv = [
                self._beegfs,
                "--clientstats",
                f"--nodetype={self.nodetype}",
                f"--mount={mnt}",
                "--allstats",
            ]
            try:
                out = self.output(argv, stdin="\n")
            except RuntimeError as e:
                self.log.error("Read(): %s", e)
                continue
            pairs = parse_sum_line(out)
            if pairs is None:
                self.log.error("Read(): no Sum: line in the output of %s", " ".join(argv))
                continue
            values = dict.fromkeys(self._known, 0.0)
            other = 0.0
            for op, count in pairs:
                if op in self._known_set:
                    values[op] = count
                else:
                    other += count
            now = self.clock()
            tags = {"type": "node", "filesystem": mnt}
            for op, v in values.items():
                m = metric(f"{self.prefix}{op}", tags, self.meta, v, now)
                if m is not None:
                    emit(m)
            m = metric(OTHER, tags, self.meta, other, now)
            if m is not None:
                emit(m)


@register
class BeegfsMetaCollector(_BeegfsCollector):
    type = "beegfs_meta"
    source = "BeegfsMetaCollector"
    group = "BeegfsMeta"
    nodetype = "meta"
    prefix = "beegfs_cmeta_"
    ops = tuple(META_OPS)


@register
class BeegfsStorageCollector(_BeegfsCollector):
    type = "beegfs_storage"
    source = "BeegfsStorageCollector"
    group = "BeegfsStorage"
    nodetype = "storage"
    prefix = "beegfs_cstorage_"
    ops = tuple(STORAGE_OPS)
