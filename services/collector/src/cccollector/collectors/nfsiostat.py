"""nfsiostat (spec §6.20): per-mount NFS client byte counters (and rates) from /proc/self/mountstats."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector, read_text
from .base import Emit, register

MOUNTSTATS = "/proc/self/mountstats"
#: the eight counters of a mount's `bytes:` line, in order
COUNTERS = ("nread", "nwrite", "dread", "dwrite", "nfsread", "nfswrite", "pageread", "pagewrite")


def parse_mountstats(text: str, use_server: bool, exclude_fs: set[str]) -> dict[str, list[int]]:
    """stype-id (mount point or server) → the eight `bytes:` counters of each NFS mount."""
    out: dict[str, list[int]] = {}
    for block in ("\n" + text).split("\ndevice ")[1:]:
        head, _, body = block.partition("\n")
        # <server> mounted on <mnt> with fstype nfs[N] statvers=<v>
        f = head.split(" ")
        if len(f) < 7 or f[1] != "mounted" or f[2] != "on" or f[4] != "with" or f[5] != "fstype":
            continue
        fstype = f[6]
        if not (fstype.startswith("nfs") and (fstype[3:] == "" or fstype[3:].isdigit())):
            continue
        if len(f) < 8 or not f[7].startswith("statvers="):
            continue
        key = f[0] if use_server else f[3]
        if key in exclude_fs:
            continue
        i = body.find("bytes:")
        if i < 0:
            continue
        vals = body[i + 6 : body.find("\n", i) if body.find("\n", i) >= 0 else len(body)].split()
        if len(vals) < 8:
            continue
        try:
            out[key] = [int(x) for x in vals[:8]]
        except ValueError:
            continue
    return out


@register
class NfsIOStatCollector(FileCollector):
    type = "nfsiostat"
    source = "NfsIOStatCollector"
    group = "NFS"
    options = frozenset(
        {"exclude_filesystem", "use_server_as_stype", "send_abs_values", "send_derived_values"}
    )

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._exclude_fs = set(self.opt_strlist("exclude_filesystem"))
        self._use_server = self.opt_bool("use_server_as_stype", False)
        self._abs = self.opt_bool("send_abs_values", True)
        self._derived = self.opt_bool("send_derived_values", False)
        self._file = self.path(MOUNTSTATS)
        text = self.read_source(MOUNTSTATS)
        self._cols = [(i, c) for i, c in enumerate(COUNTERS) if c not in self.exclude]
        self._names = {c: ("nfsio_" + c, "nfsio_" + c + "_bw") for c in COUNTERS}
        self._meta = {**self.meta, "unit": "bytes"}
        self._rate_metas = {
            c: {**self.meta, "unit": "4K_pages/s" if c.startswith("page") else "bytes/sec"} for c in COUNTERS
        }
        self._data = parse_mountstats(text, self._use_server, self._exclude_fs)
        self._last = self.clock()
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        try:
            text = read_text(self._file)
        except OSError as e:
            self.log.error("Read(): failed to read %s: %s", self._file, e)
            return
        now = self.clock()
        dt = (now - self._last) / 1e9
        self._last = now
        new = parse_mountstats(text, self._use_server, self._exclude_fs)
        meta, rmetas, names = self._meta, self._rate_metas, self._names
        send_abs, send_derived = self._abs, self._derived
        for key, values in new.items():
            old = self._data.get(key)
            if old is None:  # first seen: baseline only, reported from the next read
                continue
            tags = {"type": "node", "stype": "filesystem", "stype-id": key}
            for i, c in self._cols:
                v = values[i]
                if send_abs:
                    emit(CCMessage(names[c][0], tags.copy(), meta.copy(), {"value": v}, now))
                if send_derived and dt > 0:
                    emit(
                        CCMessage(
                            names[c][1], tags.copy(), rmetas[c].copy(), {"value": (v - old[i]) / dt}, now
                        )
                    )
        self._data = new
