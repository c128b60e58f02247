"""tempstat (spec §6.9): hwmon temperature sensors, with optional max/critical thresholds."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector, read_text, truncdiv
from .base import CollectorInitError, Emit, register

HWMON = "/sys/class/hwmon"


@dataclass(slots=True)
class _Sensor:
    name: str
    file: str  # below the root
    tags: dict[str, str]
    max_name: str = ""
    max_temp: int = 0
    crit_name: str = ""
    crit_temp: int = 0


def _read_stripped(path: str) -> str | None:
    try:
        return read_text(path).strip()
    except OSError:
        return None


def _read_millidegrees(path: str) -> int | None:
    s = _read_stripped(path)
    if s is None:
        return None
    try:
        return truncdiv(int(s), 1000)
    except ValueError:
        return None


def metric_name(hwmon_name: str, label: str) -> str:
    """Upstream naming: coretemp cores/packages → temp_<label>, else <name>_<label> or either;
    lower case, spaces → `_`, `temp_` prefix unless the name contains `temp`."""
    if hwmon_name == "coretemp" and (label.startswith("Core ") or label.startswith("Package id ")):
        n = "temp_" + label
    elif hwmon_name and label:
        n = hwmon_name + "_" + label
    else:
        n = hwmon_name or label
    n = n.lower().replace(" ", "_")
    if "temp" not in n:
        n = "temp_" + n
    return n


@register
class TempCollector(FileCollector):
    type = "tempstat"
    source = "TempCollector"
    group = "IPMI"
    options = frozenset({"tag_override", "report_max_temperature", "report_critical_temperature"})

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        overrides = self.opt_mapping("tag_override")
        for k, v in overrides.items():
            if not isinstance(v, Mapping) or not all(isinstance(x, str) for x in v.values()):
                raise CollectorInitError(f"tempstat: tag_override[{k!r}] must be an object of strings")
        report_max = self.opt_bool("report_max_temperature", False)
        report_crit = self.opt_bool("report_critical_temperature", False)
        base = self.path(HWMON)
        pattern = os.path.join(glob.escape(base), "*", "temp*_input")
        files = sorted(glob.glob(pattern))
        if not files:
            raise CollectorInitError(f"tempstat: no temperature sensors (no files {pattern})")
        self._sensors: list[_Sensor] = []
        for file in files:
            hwdir = os.path.dirname(file)
            name = _read_stripped(os.path.join(hwdir, "name")) or ""
            stem = file[: -len("_input")]
            label = _read_stripped(stem + "_label") or ""
            if not name and not label:
                continue
            if _read_stripped(file) is None:
                continue
            mname = metric_name(name, label)
            # match overrides against the path as the kernel names it, not the test root
            syspath = HWMON + file[len(base) :]
            tags: dict[str, str] = {"type": "node"}
            for key, newtags in overrides.items():
                if key in syspath:
                    tags = dict(newtags)
                    break
            s = _Sensor(mname, file, tags)
            if report_max:
                v = _read_millidegrees(stem + "_max")
                if v is not None:
                    s.max_name, s.max_temp = mname.replace("temp", "max_temp", 1), v
            if report_crit:
                v = _read_millidegrees(stem + "_crit")
                if v is not None:
                    s.crit_name, s.crit_temp = mname.replace("temp", "crit_temp", 1), v
            if s.max_name in self.exclude:
                s.max_temp = 0
            if s.crit_name in self.exclude:
                s.crit_temp = 0
            self._sensors.append(s)
        if not self._sensors:
            raise CollectorInitError(f"tempstat: no usable temperature sensors below {base}")
        self._meta = {**self.meta, "unit": "degC"}
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        meta = self._meta
        excl = self.exclude
        for s in self._sensors:
            if s.name not in excl:
                v = _read_millidegrees(s.file)
                if v is None:
                    self.log.error("Read(): failed to read temperature from %s", s.file)
                    continue
                emit(CCMessage(s.name, s.tags.copy(), meta.copy(), {"value": v}, self.clock()))
            if s.max_temp:
                emit(CCMessage(s.max_name, s.tags.copy(), meta.copy(), {"value": s.max_temp}, self.clock()))
            if s.crit_temp:
                emit(CCMessage(s.crit_name, s.tags.copy(), meta.copy(), {"value": s.crit_temp}, self.clock()))
