"""nfs3stat / nfs4stat (spec §6.19): NFS operation counts per read interval from `nfsstat -l --all`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ._cmd import CommandCollector, metric
from .base import Emit, register


def parse_nfsstat(text: str, version: str) -> dict[str, int]:
    """op → counter from lines like `nfs v3 client getattr: 1234`; a later line of the same op wins."""
    out: dict[str, int] = {}
    for line in text.split("\n"):
        f = line.split()
        if len(f) != 5 or f[1] != version:
            continue
        try:
            out[f[3].strip(":")] = int(f[4])
        except ValueError:
            continue
    return out


class _NfsCollector(CommandCollector):
    group = "NFS"
    options = frozenset({"nfsstat"})
    version: ClassVar[str] = ""
    prefix: ClassVar[str] = ""

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._nfsstat = self.find_program(self.opt_str("nfsstat", "nfsstat"), "nfsstat")
        self._meta = {**self.meta, "version": self.version}
        self._tags = {"type": "node"}
        try:
            self._last = self._read_counters()
        except RuntimeError as e:
            self.log.warning("Init(): %s", e)
            self._last = {}
        self.initialized = True

    def _read_counters(self) -> dict[str, int]:
        return parse_nfsstat(self.output([self._nfsstat, "-l", "--all"]), self.version)

    def read(self, interval: float, emit: Emit) -> None:
        now = self.clock()
        try:
            new = self._read_counters()
        except RuntimeError as e:
            self.log.error("Read(): %s", e)
            return
        last = self._last
        for op, value in new.items():
            if op in self.exclude or op not in last:
                continue
            m = metric(f"{self.prefix}_{op}", self._tags, self._meta, value - last[op], now)
            if m is not None:
                emit(m)
        last.update(new)


@register
class Nfs3Collector(_NfsCollector):
    type = "nfs3stat"
    source = "Nfs3Collector"
    version = "v3"
    prefix = "nfs3"


@register
class Nfs4Collector(_NfsCollector):
    type = "nfs4stat"
    source = "Nfs4Collector"
    version = "v4"
    prefix = "nfs4"
