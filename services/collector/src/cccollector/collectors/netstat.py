"""netstat (spec §6.4): byte and packet counters (and rates) of selected network devices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector, read_text
from .base import CollectorInitError, Emit, register

NETDEV = "/proc/net/dev"

#: metric, column in the fields after `<device>:`, unit, rate unit
COUNTERS = (
    ("net_bytes_in", 0, "bytes", "bytes/sec"),
    ("net_pkts_in", 1, "packets", "packets/sec"),
    ("net_bytes_out", 8, "bytes", "bytes/sec"),
    ("net_pkts_out", 9, "packets", "packets/sec"),
)


def _devices(text: str) -> list[tuple[str, list[str]]]:
    """(device, counter fields) per line with a colon; splitting at the colon also copes with
    old kernels that print `eth0:123` without a space."""
    out = []
    for line in text.split("\n"):
        name, sep, rest = line.partition(":")
        if sep:
            out.append((name.strip(), rest.split()))
    return out


@register
class NetstatCollector(FileCollector):
    type = "netstat"
    inline = True
    source = "NetstatCollector"
    group = "Network"
    options = frozenset({"include_devices", "send_abs_values", "send_derived_values", "interface_aliases"})
    #: upstream decodes the options leniently (json.Unmarshal): unknown keys are ignored
    strict = False

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        include = set(self.opt_strlist("include_devices"))
        self._abs = self.opt_bool("send_abs_values", True)
        self._derived = self.opt_bool("send_derived_values", False)
        alias_to_canon: dict[str, str] = {}
        for canon, aliases in self.opt_mapping("interface_aliases").items():
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise CollectorInitError("netstat: interface_aliases must map names to lists of names")
            for a in aliases:
                alias_to_canon[a] = canon
        self._file = self.path(NETDEV)
        text = self.read_source(NETDEV)
        # system device name → (tags, last value per counter, -1 = none yet)
        self._devs: dict[str, tuple[dict[str, str], list[int]]] = {}
        for dev, _ in _devices(text):
            if alias_to_canon.get(dev, dev) in include:
                tags = {"type": "node", "stype": "network", "stype-id": dev}
                self._devs[dev] = (tags, [-1] * len(COUNTERS))
        if not self._devs:
            if not include:
                raise CollectorInitError(
                    "netstat: no devices to collect; list the interfaces in option include_devices"
                )
            raise CollectorInitError(
                f"netstat: none of the include_devices ({', '.join(sorted(include))}) exists in {self._file}"
            )
        self._metas = [
            ({**self.meta, "unit": unit}, {**self.meta, "unit": runit}) for _, _, unit, runit in COUNTERS
        ]
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
        devs, metas = self._devs, self._metas
        send_abs, send_derived = self._abs, self._derived
        for dev, f in _devices(text):
            entry = devs.get(dev)
            if entry is None:
                continue
            tags, last = entry
            for k, (name, col, _, _) in enumerate(COUNTERS):
                try:
                    v = int(f[col])
                except (ValueError, IndexError):
                    continue
                meta, rmeta = metas[k]
                if send_abs:
                    emit(CCMessage(name, tags.copy(), meta.copy(), {"value": v}, now))
                if send_derived:
                    if last[k] >= 0 and dt > 0:
                        rate = (v - last[k]) / dt
                        emit(CCMessage(name + "_bw", tags.copy(), rmeta.copy(), {"value": rate}, now))
                    last[k] = v
