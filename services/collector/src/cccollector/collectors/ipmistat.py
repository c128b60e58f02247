"""ipmistat (spec §6.17): BMC sensor readings through FreeIPMI `ipmi-sensors` or `ipmitool`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._cmd import CommandCollector
from .base import CollectorInitError, Emit, register

IPMISENSORS_ARGS = ["--comma-separated-output", "--sdr-cache-recreate"]
IPMITOOL_ARGS = ["sensor"]
#: ipmitool unit → unit sent
IPMITOOL_UNITS = {"degrees C": "degC", "degrees F": "degF"}


def _metric_name(sensor: str) -> str:
    return sensor.strip().lower().replace(" ", "_")


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_ipmi_sensors(text: str) -> Iterator[tuple[str, float, str | None]]:
    """(metric, value, unit) from `ipmi-sensors --comma-separated-output` (ID,Name,Type,Reading,Units,Event)."""
    for line in text.split("\n"):
        cols = line.split(",")
        if len(cols) <= 3 or cols[3] == "N/A":
            continue
        v = _float(cols[3])
        if v is None:
            continue
        yield _metric_name(cols[1]), v, (cols[4] if len(cols) > 4 else None)


def parse_ipmitool(text: str) -> Iterator[tuple[str, float, str | None]]:
    """(metric, value, unit) from `ipmitool sensor` (name | reading | unit | status | thresholds…)."""
    for line in text.split("\n"):
        cols = line.split("|")
        if len(cols) < 3:
            continue
        reading = cols[1].strip()
        if reading in ("na", "0x0"):
            continue
        v = _float(reading)
        if v is None:
            continue
        unit = cols[2].strip()
        yield _metric_name(cols[0]), v, IPMITOOL_UNITS.get(unit, unit)


@register
class IpmiCollector(CommandCollector):
    type = "ipmistat"
    source = "IpmiCollector"
    group = "IPMI"
    options = frozenset({"ipmisensors_path", "ipmitool_path", "use_sudo", "include_metrics"})

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self.setup_sudo(self.opt_bool("use_sudo", False), root_required=False, what="")
        self._include = {m.lower() for m in self.opt_strlist("include_metrics")}
        candidates = (
            (self.opt_str("ipmisensors_path", "ipmi-sensors"), IPMISENSORS_ARGS, parse_ipmi_sensors),
            (self.opt_str("ipmitool_path", "ipmitool"), IPMITOOL_ARGS, parse_ipmitool),
        )
        tried = []
        for prog, args, parser in candidates:
            path = self.which(prog)
            if path is None:
                tried.append(f"{prog}: not found in PATH")
                continue
            try:
                self.output([path, *args])
            except RuntimeError as e:
                tried.append(str(e))
                continue
            self._argv = [path, *args]
            self._parse = parser
            break
        else:
            raise CollectorInitError(f"ipmistat: no usable IPMI reader found ({'; '.join(tried)})")
        self._tags = {"type": "node"}
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        try:
            out = self.output(self._argv)
        except RuntimeError as e:
            self.log.error("Read(): %s", e)
            return
        now = self.clock()
        for name, value, unit in self._parse(out):
            if self._include and name not in self._include:
                continue
            if name in self.exclude:
                continue
            m = self.message(name, self._tags, value, now, unit=unit)
            if m is not None:
                emit(m)
