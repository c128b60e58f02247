"""slurm_cgroup (spec §6.23): per-CPU share of each Slurm job's memory and CPU time (cgroup v2)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage

from ..topology import parse_cpu_list
from ._files import FileCollector
from .base import CollectorInitError, Emit, register

DEFAULT_CGROUP_BASE = "/sys/fs/cgroup/system.slice/slurmstepd.scope"
CPU_ONLINE = "/sys/devices/system/cpu/online"
#: `job_<id>`, or (Slurm >= 26.05) `s` + 13 Crockford base-32 characters
JOB_DIR = re.compile(r"job_\d+|s[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{13}")
METRICS = (
    ("job_mem_used", "Bytes"),
    ("job_max_mem_used", "Bytes"),
    ("job_mem_limit", "Bytes"),
    ("job_user_cpu", "%"),
    ("job_sys_cpu", "%"),
)


def _float(text: str | None) -> float:
    """A cgroup value; unreadable or `max` (no limit) → 0."""
    if text is None:
        return 0.0
    try:
        return float(text.strip())
    except ValueError:
        return 0.0


@register
class SlurmCgroupCollector(FileCollector):
    type = "slurm_cgroup"
    source = "SlurmCgroupCollector"
    group = "SLURM"
    options = frozenset({"cgroup_base", "use_sudo"})

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._base = self.path(self.opt_str("cgroup_base", "") or DEFAULT_CGROUP_BASE)
        self._sudo = self.opt_bool("use_sudo", False)
        if self._sudo:
            sudo = self.which("sudo")
            if sudo is None:
                raise CollectorInitError("slurm_cgroup: use_sudo is set but sudo is not in PATH")
            self._sudo_cmd = sudo
        elif os.geteuid() != 0:
            raise CollectorInitError(
                "slurm_cgroup: reading cgroup files requires root privileges (or enable use_sudo)"
            )
        try:
            self._all_cpus = parse_cpu_list(self.read_source(CPU_ONLINE))
        except ValueError:
            raise CollectorInitError(f"slurm_cgroup: cannot parse {self.path(CPU_ONLINE)}") from None
        if not os.path.isdir(self._base):
            self.log.warning("cgroup_base %s does not exist (yet); no job metrics until it does", self._base)
        self._metrics = [(n, {**self.meta, "unit": u}) for n, u in METRICS if n not in self.exclude]
        self.initialized = True

    def _read(self, path: str) -> str | None:
        if self._sudo:
            try:
                return self.run_command([self._sudo_cmd, "-n", "cat", path])  # -n: never wait for a password
            except RuntimeError:
                return None
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return None

    def _job(self, jdir: str) -> tuple[list[float], list[int]]:
        """(the five per-job values before division by #cpus, the job's CPUs)."""
        rd = self._read
        used = _float(rd(os.path.join(jdir, "memory.current")))
        peak = _float(rd(os.path.join(jdir, "memory.peak")))
        limit = _float(rd(os.path.join(jdir, "memory.max")))
        user = sys_ = 0.0
        stat = rd(os.path.join(jdir, "cpu.stat"))
        if stat:
            v: dict[str, float] = {}
            for line in stat.split("\n"):
                f = line.split()
                if len(f) >= 2:
                    try:
                        v[f[0]] = float(f[1])
                    except ValueError:
                        pass
            usage = v.get("usage_usec", 0.0)
            if usage > 0:
                user = v.get("user_usec", 0.0) * 100.0 / usage
                sys_ = v.get("system_usec", 0.0) * 100.0 / usage
        cpus: list[int] = []
        cs = rd(os.path.join(jdir, "cpuset.cpus"))
        if cs:
            try:
                cpus = parse_cpu_list(cs)
            except ValueError:
                cpus = []
        return [used, peak, limit, user, sys_], cpus

    def read(self, interval: float, emit: Emit) -> None:
        now = self.clock()
        try:
            jobs = sorted(n for n in os.listdir(self._base) if JOB_DIR.fullmatch(n))
        except OSError:
            jobs = []
        used_cpus: set[int] = set()
        for job in jobs:
            values, cpus = self._job(os.path.join(self._base, job))
            if not cpus:
                continue
            n = float(len(cpus))
            per_cpu = self._values([x / n for x in values])
            for cpu in cpus:
                tags = {"type": "hwthread", "type-id": str(cpu)}
                for (name, meta), x in zip(self._metrics, per_cpu, strict=True):
                    emit(CCMessage(name, tags.copy(), meta.copy(), {"value": x}, now))
                used_cpus.add(cpu)
        for cpu in self._all_cpus:
            if cpu in used_cpus:
                continue
            tags = {"type": "hwthread", "type-id": str(cpu)}
            for name, meta in self._metrics:
                emit(CCMessage(name, tags.copy(), meta.copy(), {"value": 0}, now))

    def _values(self, per_cpu: list[float]) -> list[float]:
        """The per-CPU values of the metrics that are not excluded, in METRICS order."""
        return [x for (name, _), x in zip(METRICS, per_cpu, strict=True) if name not in self.exclude]
