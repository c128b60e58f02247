"""ibstat (spec §6.7): InfiniBand port counters, totals and rates from /sys/class/infiniband."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage, UInt

from ._files import FileCollector
from .base import CollectorInitError, Emit, register

IB_BASE = "/sys/class/infiniband"
U64 = 1 << 64

#: metric, counter file, scale (data counters count 4-byte words), total group (0 bytes, 1 packets)
COUNTERS = (
    ("ib_recv", "port_rcv_data", 4, 0),
    ("ib_xmit", "port_xmit_data", 4, 0),
    ("ib_recv_pkts", "port_rcv_packets", 1, 1),
    ("ib_xmit_pkts", "port_xmit_packets", 1, 1),
)
UNITS = ("bytes", "packets")
RATE_UNITS = ("bytes/sec", "packets/sec")


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


class _Port:
    __slots__ = ("tags", "files", "last")

    def __init__(self, tags: dict[str, str], files: list[str]) -> None:
        self.tags = tags
        self.files = files
        self.last: list[int | None] = [None] * len(files)


@register
class InfinibandCollector(FileCollector):
    type = "ibstat"
    source = "InfinibandCollector"
    group = "Network"
    options = frozenset({"exclude_devices", "send_abs_values", "send_total_values", "send_derived_values"})

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        exclude = set(self.opt_strlist("exclude_devices"))
        self._abs = self.opt_bool("send_abs_values", True)
        self._total = self.opt_bool("send_total_values", False)
        self._derived = self.opt_bool("send_derived_values", False)
        base = self.path(IB_BASE)
        self._ports: list[_Port] = []
        found_any = False
        for dev in _listdir(base):
            for port in _listdir(os.path.join(base, dev, "ports")):
                found_any = True
                pdir = os.path.join(base, dev, "ports", port)
                try:
                    with open(os.path.join(pdir, "lid")) as f:
                        lid = f.read().strip()
                except OSError:
                    continue
                if lid == "0x0" or dev in exclude:
                    continue
                files = [os.path.join(pdir, "counters", c[1]) for c in COUNTERS]
                for fn in files:
                    if not os.access(fn, os.R_OK):
                        raise CollectorInitError(f"ibstat: unable to access {fn}")
                tags = {"type": "node", "device": dev, "port": port, "lid": lid}
                self._ports.append(_Port(tags, files))
        if not found_any:
            raise CollectorInitError(f"ibstat: no InfiniBand ports ({base}/*/ports/*)")
        if not self._ports:
            raise CollectorInitError(
                f"ibstat: found no usable IB port (all without LID or excluded) in {base}"
            )
        self._metas = [{**self.meta, "unit": u} for u in UNITS]
        self._rate_metas = [{**self.meta, "unit": u} for u in RATE_UNITS]
        self._last_t = self.clock()
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        now = self.clock()
        dt = (now - self._last_t) / 1e9
        self._last_t = now
        metas, rmetas = self._metas, self._rate_metas
        send_abs, send_total, send_derived = self._abs, self._total, self._derived
        for p in self._ports:
            tags = p.tags
            totals = [0, 0]
            total_rates = [0.0, 0.0]
            have_rate = [False, False]
            for k, (name, _, scale, grp) in enumerate(COUNTERS):
                path = p.files[k]
                try:
                    with open(path, "rb") as fh:
                        raw = int(fh.read())
                except (OSError, ValueError) as e:
                    self.log.error("Read(): failed to read %s: %s", path, e)
                    p.last[k] = None
                    continue
                scaled = raw * scale % U64
                if send_abs:
                    emit(CCMessage(name, tags.copy(), metas[grp].copy(), {"value": UInt(scaled)}, now))
                if send_derived:
                    last = p.last[k]
                    if last is not None and dt > 0:
                        rate = ((raw - last) % U64) / dt * scale
                        emit(CCMessage(name + "_bw", tags.copy(), rmetas[grp].copy(), {"value": rate}, now))
                        if send_total:
                            total_rates[grp] += rate
                            have_rate[grp] = True
                    p.last[k] = raw
                if send_total:
                    totals[grp] = (totals[grp] + scaled) % U64
            if send_total:
                emit(CCMessage("ib_total", tags.copy(), metas[0].copy(), {"value": UInt(totals[0])}, now))
                emit(
                    CCMessage("ib_total_pkts", tags.copy(), metas[1].copy(), {"value": UInt(totals[1])}, now)
                )
                if send_derived and have_rate[0]:
                    emit(
                        CCMessage(
                            "ib_total_bw", tags.copy(), rmetas[0].copy(), {"value": total_rates[0]}, now
                        )
                    )
                if send_derived and have_rate[1]:
                    emit(
                        CCMessage(
                            "ib_total_pkts_bw", tags.copy(), rmetas[1].copy(), {"value": total_rates[1]}, now
                        )
                    )
