"""iostat (spec §6.6): per-device I/O counter differences between reads, from /proc/diskstats."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector, read_text
from .base import CollectorInitError, Emit, register

DISKSTATS = "/proc/diskstats"

#: metric → column of the whitespace-split line (see Documentation/admin-guide/iostats.rst)
METRICS = (
    ("io_reads", 3),
    ("io_reads_merged", 4),
    ("io_read_sectors", 5),
    ("io_read_ms", 6),
    ("io_writes", 7),
    ("io_writes_merged", 8),
    ("io_writes_sectors", 9),
    ("io_writes_ms", 10),
    ("io_ioops", 11),
    ("io_ioops_ms", 12),
    ("io_ioops_weighted_ms", 13),
    ("io_discards", 14),
    ("io_discards_merged", 15),
    ("io_discards_sectors", 16),
    ("io_discards_ms", 17),
    ("io_flushes", 18),
    ("io_flushes_ms", 19),
)


@register
class IOstatCollector(FileCollector):
    type = "iostat"
    inline = True
    source = "IOstatCollector"
    group = "Disk"
    options = frozenset({"exclude_devices"})

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._exclude_devices = set(self.opt_strlist("exclude_devices"))
        self._matches = [(n, c) for n, c in METRICS if n not in self.exclude]
        if not self._matches:
            raise CollectorInitError("iostat: no metrics to collect (all excluded)")
        self._file = self.path(DISKSTATS)
        text = self.read_source(DISKSTATS)
        # device → (tags, last value per metric column)
        self._devs: dict[str, tuple[dict[str, str], dict[int, int]]] = {}
        for f in self._lines(text):
            last = {}
            for _, col in self._matches:
                try:
                    last[col] = int(f[col])
                except (IndexError, ValueError):
                    last[col] = 0
            self._devs[f[2]] = ({"type": "node", "device": f[2]}, last)
        self.initialized = True

    def _lines(self, text: str) -> list[list[str]]:
        out = []
        excl = self._exclude_devices
        for line in text.split("\n"):
            f = line.split()
            if len(f) < 3 or "loop" in f[2] or f[2] in excl:
                continue
            out.append(f)
        return out

    def read(self, interval: float, emit: Emit) -> None:
        try:
            text = read_text(self._file)
        except OSError as e:
            self.log.error("Read(): failed to read %s: %s", self._file, e)
            return
        now = self.clock()
        meta = self.meta
        devs = self._devs
        matches = self._matches
        for f in self._lines(text):
            entry = devs.get(f[2])
            if entry is None:  # only devices present at start are reported
                continue
            tags, last = entry
            n = len(f)
            for name, col in matches:
                if col >= n:  # column not provided by this kernel
                    continue
                try:
                    x = int(f[col])
                except ValueError:
                    continue
                emit(CCMessage(name, tags.copy(), meta.copy(), {"value": x - last[col]}, now))
                last[col] = x
