"""rapl (spec §6.14): average power per RAPL zone and sub-zone from the powercap energy counters.

Upstream behaviour kept: no `type` tag (sites add it with router rules).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector
from .base import CollectorInitError, Emit, register

CONTROL_TYPE = "intel-rapl"
POWERCAP = "/sys/devices/virtual/powercap/" + CONTROL_TYPE


@dataclass(slots=True)
class _Zone:
    tags: dict[str, str]
    energy_file: str
    energy: int  # µJ at the last read
    t_ns: int  # when it was read
    max_range: int  # µJ, the counter's wrap-around range


def _read_str(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: str) -> int | None:
    s = _read_str(path)
    try:
        return int(s) if s is not None else None
    except ValueError:
        return None


def _subdirs(path: str, prefix: str) -> list[str]:
    """Entries `<prefix><id>` of `path` (ids such as `0`, or `0:1` for sub-zones), natural order."""
    try:
        names = [n for n in os.listdir(path) if n.startswith(prefix)]
    except OSError:
        return []
    return sorted(
        (n[len(prefix) :] for n in names), key=lambda s: [int(x) if x.isdigit() else x for x in s.split(":")]
    )


@register
class RAPLCollector(FileCollector):
    type = "rapl"
    source = "RAPLCollector"
    group = "energy"
    options = frozenset({"exclude_device_by_id", "exclude_device_by_name"})

    def _zone_info(self, zdir: str) -> tuple[str, int, int, int] | None:
        """(name, energy µJ, read time, max range) if all three files are readable."""
        name = _read_str(os.path.join(zdir, "name"))
        t = self.clock()
        energy = _read_int(os.path.join(zdir, "energy_uj"))
        max_range = _read_int(os.path.join(zdir, "max_energy_range_uj"))
        if name is None or energy is None or max_range is None:
            return None
        return name, energy, t, max_range

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        ex_id = set(self.opt_strlist("exclude_device_by_id"))
        ex_name = set(self.opt_strlist("exclude_device_by_name"))
        base = self.path(POWERCAP)
        zone_ids = _subdirs(base, CONTROL_TYPE + ":")
        if not zone_ids:
            raise CollectorInitError(f"rapl: unable to find any zones {CONTROL_TYPE}:<N> in {base}")
        self._zones: list[_Zone] = []
        unreadable = 0
        for zid in zone_ids:
            zdir = os.path.join(base, f"{CONTROL_TYPE}:{zid}")
            z = self._zone_info(zdir)
            unreadable += z is None
            if z is not None and zid not in ex_id and z[0] not in ex_name:
                self._zones.append(
                    _Zone({"id": zid, "zone_name": z[0]}, os.path.join(zdir, "energy_uj"), z[1], z[2], z[3])
                )
            zname = _read_str(os.path.join(zdir, "name")) or ""
            for sid in _subdirs(zdir, f"{CONTROL_TYPE}:{zid}:"):
                sdir = os.path.join(zdir, f"{CONTROL_TYPE}:{zid}:{sid}")
                s = self._zone_info(sdir)
                unreadable += s is None
                full_id = f"{zid}:{sid}"
                if s is None or not zname or full_id in ex_id or s[0] in ex_name:
                    continue
                self._zones.append(
                    _Zone(
                        {"id": full_id, "zone_name": zname, "sub_zone_name": s[0]},
                        os.path.join(sdir, "energy_uj"),
                        s[1],
                        s[2],
                        s[3],
                    )
                )
        if not self._zones:
            hint = " (energy_uj is readable by root only on most kernels)" if unreadable else ""
            raise CollectorInitError(
                f"rapl: no running average power limit (RAPL) zone usable in {base}{hint}"
            )
        self._meta = {**self.meta, "unit": "Watt"}
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        meta = self._meta
        for z in self._zones:
            try:
                with open(z.energy_file, "rb") as fh:
                    raw = fh.read()
            except OSError as e:
                self.log.error("Read(): failed to read %s: %s", z.energy_file, e)
                continue
            now = self.clock()
            try:
                energy = int(raw)
            except ValueError:
                continue
            diff = energy - z.energy
            if diff < 0:  # the counter wrapped around
                diff += z.max_range
            dt_us = (now - z.t_ns) // 1000
            z.energy, z.t_ns = energy, now
            if dt_us <= 0:
                continue
            emit(CCMessage("rapl_average_power", z.tags.copy(), meta.copy(), {"value": diff / dt_us}, now))
