"""lustrestat (spec §6.8): Lustre client (llite) operation and byte counters from `lctl get_param`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._cmd import CommandCollector, metric
from .base import CollectorInitError, Emit, register

#: counter key → (stats line key, column)
COUNTERS: dict[str, tuple[str, int]] = {
    "read_requests": ("read_bytes", 1),
    "write_requests": ("write_bytes", 1),
    "read_bytes": ("read_bytes", 6),
    "write_bytes": ("write_bytes", 6),
    "open": ("open", 1),
    "close": ("close", 1),
    "setattr": ("setattr", 1),
    "getattr": ("getattr", 1),
    "statfs": ("statfs", 1),
    "inode_permission": ("inode_permission", 1),
}
_UNITS = {
    "read_requests": "requests",
    "write_requests": "requests",
    "read_bytes": "bytes",
    "write_bytes": "bytes",
}

#: (metric, counter, calc, unit) in upstream order: abs, diff, derived
ABS = [(f"lustre_{c}", c, "abs", _UNITS.get(c)) for c in COUNTERS]
DIFF = [(f"lustre_{c}_diff", c, "diff", _UNITS.get(c)) for c in COUNTERS]
DERIVED = [
    ("lustre_read_requests_rate", "read_requests", "rate", "requests/sec"),
    ("lustre_write_requests_rate", "write_requests", "rate", "requests/sec"),
    ("lustre_read_bw", "read_bytes", "rate", "bytes/sec"),
    ("lustre_write_bw", "write_bytes", "rate", "bytes/sec"),
]


def parse_stats(text: str) -> dict[str, int]:
    """Counter values present in one `llite.<instance>.stats` output."""
    lines: dict[str, list[str]] = {}
    for line in text.split("\n"):
        f = line.split()
        if f and f[0] not in lines:
            lines[f[0]] = f
    out: dict[str, int] = {}
    for counter, (key, col) in COUNTERS.items():
        f = lines.get(key)
        if f is not None and len(f) > col:
            try:
                out[counter] = int(f[col])
            except ValueError:
                pass
    return out


def parse_instances(text: str) -> list[str]:
    """Instance names from the `llite.<instance>.stats=` header lines."""
    out = []
    for line in text.split("\n"):
        if line.startswith("llite."):
            parts = line.split(".")
            if len(parts) > 2 and parts[1] not in out:
                out.append(parts[1])
    return out


@register
class LustreCollector(CommandCollector):
    type = "lustrestat"
    source = "LustreCollector"
    group = "Lustre"
    options = frozenset(
        {"lctl_command", "use_sudo", "send_abs_values", "send_diff_values", "send_derived_values"}
    )

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self.setup_sudo(self.opt_bool("use_sudo", False), root_required=True, what="Lustre statistics")
        lctl = self.opt_str("lctl_command", "lctl")
        self._lctl = self.which(lctl) or self.which("lctl")
        if self._lctl is None:
            raise CollectorInitError(f"lustrestat: program '{lctl}' (option lctl_command) not found in PATH")
        defs = []
        if self.opt_bool("send_abs_values", False):
            defs += ABS
        if self.opt_bool("send_diff_values", False):
            defs += DIFF
        if self.opt_bool("send_derived_values", False):
            defs += DERIVED
        self._defs = [
            (name, counter, calc, {**self.meta, "unit": unit} if unit else self.meta)
            for name, counter, calc, unit in defs
            if name not in self.exclude
        ]
        if not self._defs:
            raise CollectorInitError(
                "lustrestat: no metrics to collect (set send_abs_values, send_diff_values or send_derived_values)"
            )
        try:
            devices = parse_instances(self.output([self._lctl, "get_param", "llite.*.stats"]))
        except RuntimeError as e:
            raise CollectorInitError(f"lustrestat: {e}") from None
        if not devices:
            raise CollectorInitError("lustrestat: no Lustre devices found")
        self._last: dict[str, dict[str, int]] = {}
        for dev in devices:
            try:
                values = parse_stats(self._stats(dev))
            except RuntimeError as e:
                self.log.warning("Init(): %s", e)
                values = {}
            self._last[dev] = {c: values.get(c, 0) for c in COUNTERS}
        self._last_time = self.clock()
        self.initialized = True

    def _stats(self, device: str) -> str:
        return self.output([self._lctl, "get_param", f"llite.{device}.stats"])

    def read(self, interval: float, emit: Emit) -> None:
        now = self.clock()
        dt = (now - self._last_time) / 1e9
        self._last_time = now
        for dev, last in self._last.items():
            try:
                values = parse_stats(self._stats(dev))
            except RuntimeError as e:
                self.log.error("Read(): %s", e)
                values = {}
            tags = {"type": "node", "device": dev}
            for name, counter, calc, meta in self._defs:
                v = values.get(counter, last[counter])  # a missing line keeps the previous value
                if calc == "abs":
                    value: int | float = v
                elif calc == "diff":
                    value = max(v - last[counter], 0)
                else:
                    if dt <= 0:
                        continue
                    value = max((v - last[counter]) / dt, 0.0)
                m = metric(name, tags, meta, value, now)
                if m is not None:
                    emit(m)
            for counter in COUNTERS:
                last[counter] = values.get(counter, last[counter])
