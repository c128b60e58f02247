"""smartmon (spec §6.24): NVMe S.M.A.R.T. health counters from `smartctl --json=c`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._cmd import CommandCollector, metric
from .base import CollectorInitError, Emit, register

#: metric, key in nvme_smart_health_information_log, unit, factor
METRICS = (
    ("smartmon_temp", "temperature", "degC", 1),
    ("smartmon_percent_used", "percentage_used", "percent", 1),
    ("smartmon_avail_spare", "available_spare", "percent", 1),
    ("smartmon_data_units_read", "data_units_read", None, 1),
    ("smartmon_data_units_write", "data_units_written", None, 1),
    ("smartmon_host_reads", "host_reads", None, 1),
    ("smartmon_host_writes", "host_writes", None, 1),
    ("smartmon_power_cycles", "power_cycles", None, 1),
    ("smartmon_power_on", "power_on_hours", "sec", 3600),
    ("smartmon_unsafe_shutdowns", "unsafe_shutdowns", None, 1),
    ("smartmon_media_errors", "media_errors", None, 1),
    ("smartmon_errlog_entries", "num_err_log_entries", None, 1),
    ("smartmon_warn_temp_time", "warning_temp_time", None, 1),
    ("smartmon_crit_comp_time", "critical_comp_time", None, 1),
)
METRIC_NAMES = frozenset(m[0] for m in METRICS)
#: smartctl exit status bits that mean "no usable output" (command line error, device open failed)
_FATAL_BITS = 0x03


@register
class SmartMonCollector(CommandCollector):
    type = "smartmon"
    source = "SmartMonCollector"
    group = "Disk"
    # upstream spells the metric exclusion `excludeMetrics`; `exclude_metrics` is accepted too
    options = frozenset({"use_sudo", "exclude_devices", "excludeMetrics", "devices"})

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        excluded = set(self.opt_strlist("excludeMetrics")) | self.exclude
        unknown = sorted(excluded - METRIC_NAMES)
        if unknown:
            raise CollectorInitError(f"smartmon: unknown metric(s) in excludeMetrics: {', '.join(unknown)}")
        self._metrics = [
            (name, key, {**self.meta, "unit": unit} if unit else self.meta, factor)
            for name, key, unit, factor in METRICS
            if name not in excluded
        ]
        self.setup_sudo(self.opt_bool("use_sudo", False), root_required=False, what="")
        self._smartctl = self.find_program("smartctl")
        skip = set(self.opt_strlist("exclude_devices"))
        configured = self.config.get("devices") or []
        if not isinstance(configured, list) or not all(
            isinstance(d, Mapping) and isinstance(d.get("name"), str) for d in configured
        ):
            raise CollectorInitError('smartmon: devices must be a list of {"name": ..., "type": ...} objects')
        devices = [(d["name"], str(d.get("type") or "")) for d in configured]
        if not devices:
            devices = self._scan()
        self._devices = [(n, t) for n, t in devices if n and n not in skip]
        self.initialized = True

    def _scan(self) -> list[tuple[str, str]]:
        try:
            data = json.loads(self.output([self._smartctl, "--scan", "--json=c"]))
        except RuntimeError as e:
            raise CollectorInitError(f"smartmon: device scan failed: {e}") from None
        except ValueError as e:
            raise CollectorInitError(f"smartmon: cannot decode the output of smartctl --scan: {e}") from None
        devs = data.get("devices") if isinstance(data, dict) else None
        return [
            (str(d.get("name") or ""), str(d.get("type") or "")) for d in devs or [] if isinstance(d, dict)
        ]

    def _query(self, name: str, dtype: str) -> dict[str, Any] | None:
        argv = [self._smartctl, "--json=c"]
        if dtype:
            argv.append(f"--device={dtype}")
        argv += ["--all", name]
        try:
            r = self.run(argv)
        except RuntimeError as e:
            self.log.error("Read(): cannot read data for device %s: %s", name, e)
            return None
        # smartctl's exit status is a bit mask; most bits report disk conditions, not failures
        if r.returncode & _FATAL_BITS:
            self.log.error("Read(): smartctl failed for device %s (exit status %d)", name, r.returncode)
            return None
        try:
            data = json.loads(r.stdout)
        except ValueError:
            self.log.error("Read(): cannot decode the smartctl output for device %s", name)
            return None
        log = data.get("nvme_smart_health_information_log") if isinstance(data, dict) else None
        if not isinstance(log, dict):
            self.log.debug("Read(): device %s has no NVMe health log", name)
            return None
        return log

    def read(self, interval: float, emit: Emit) -> None:
        now = self.clock()
        for name, dtype in self._devices:
            log = self._query(name, dtype)
            if log is None:
                continue
            tags = {"type": "node", "stype": "disk", "stype-id": name}
            for metric_name, key, meta, factor in self._metrics:
                v = log.get(key)
                if isinstance(v, bool) or not isinstance(v, int | float):
                    continue
                m = metric(metric_name, tags, meta, int(v) * factor, now)
                if m is not None:
                    emit(m)
