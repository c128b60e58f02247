"""gpfs (spec §6.21): per-file-system I/O counters of GPFS / IBM Storage Scale from `mmpmon fs_io_s`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._cmd import CommandCollector, metric
from .base import CollectorInitError, Emit, register

#: counter → mmpmon key of the `_fs_io_s_` line
KEYS = {
    "opens": "_oc_",
    "closes": "_cc_",
    "reads": "_rdc_",
    "writes": "_wc_",
    "readdirs": "_dir_",
    "inode_updates": "_iu_",
    "bytes_read": "_br_",
    "bytes_written": "_bw_",
}

# (metric, counter, calc, unit); calc: abs | diff | rate
ABS = [
    ("gpfs_num_opens", "opens", "abs", "requests"),
    ("gpfs_num_closes", "closes", "abs", "requests"),
    ("gpfs_num_reads", "reads", "abs", "requests"),
    ("gpfs_num_writes", "writes", "abs", "requests"),
    ("gpfs_num_readdirs", "readdirs", "abs", "requests"),
    ("gpfs_num_inode_updates", "inode_updates", "abs", "requests"),
    ("gpfs_bytes_read", "bytes_read", "abs", "bytes"),
    ("gpfs_bytes_written", "bytes_written", "abs", "bytes"),
]
DIFF = [(f"{name}_diff", counter, "diff", unit) for name, counter, _, unit in ABS]
DERIVED = [
    ("gpfs_opens_rate", "opens", "rate", "requests/sec"),
    ("gpfs_closes_rate", "closes", "rate", "requests/sec"),  # upstream reads the opens counter here
    ("gpfs_reads_rate", "reads", "rate", "requests/sec"),
    ("gpfs_writes_rate", "writes", "rate", "requests/sec"),
    ("gpfs_readdirs_rate", "readdirs", "rate", "requests/sec"),
    ("gpfs_inode_updates_rate", "inode_updates", "rate", "requests/sec"),
    ("gpfs_bw_read", "bytes_read", "rate", "bytes/sec"),
    ("gpfs_bw_write", "bytes_written", "rate", "bytes/sec"),
]
TOTALS = [
    ("gpfs_bytes_total", "bytes_total", "abs", "bytes"),
    ("gpfs_bytes_total_diff", "bytes_total", "diff", "bytes"),
    ("gpfs_bw_total", "bytes_total", "rate", "bytes/sec"),
    ("gpfs_iops", "iops", "abs", "requests"),
    ("gpfs_iops_diff", "iops", "diff", "requests"),
    ("gpfs_iops_rate", "iops", "rate", "requests/sec"),
    ("gpfs_metaops", "metaops", "abs", "requests"),
    ("gpfs_metaops_diff", "metaops", "diff", "requests"),
    ("gpfs_metaops_rate", "metaops", "rate", "requests/sec"),
]
#: derived sums → their parts
SUMS = {
    "bytes_total": ("bytes_read", "bytes_written"),
    "iops": ("reads", "writes"),
    "metaops": ("opens", "closes", "readdirs", "inode_updates"),
}


def parse_fs_io_s(text: str) -> list[dict[str, str]]:
    """Key/value maps of the `_fs_io_s_` lines of `mmpmon -p` output."""
    out = []
    for line in text.split("\n"):
        f = line.split()
        if not f or f[0] != "_fs_io_s_":
            continue
        out.append({f[i]: f[i + 1] for i in range(1, len(f) - 1, 2)})
    return out


def counters_of(kv: Mapping[str, str]) -> dict[str, int]:
    """Counters present in one line, plus the sums of those present."""
    state: dict[str, int] = {}
    for counter, key in KEYS.items():
        try:
            state[counter] = int(kv[key])
        except (KeyError, ValueError):
            continue
    for total, parts in SUMS.items():
        present = [state[p] for p in parts if p in state]
        if present:
            state[total] = sum(present)
    return state


@register
class GpfsCollector(CommandCollector):
    type = "gpfs"
    source = "GpfsCollector"
    group = "GPFS"
    options = frozenset(
        {
            "mmpmon_path",
            "use_sudo",
            "exclude_filesystem",
            "send_abs_values",
            "send_diff_values",
            "send_derived_values",
            "send_total_values",
            "send_bandwidths",
        }
    )

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        use_sudo = self.opt_bool("use_sudo", False)
        self.setup_sudo(use_sudo, root_required=True, what="GPFS file system statistics")
        mmpmon = self.opt_str("mmpmon_path", "mmpmon")
        if use_sudo and not mmpmon.startswith("/"):
            raise CollectorInitError(
                f"gpfs: when using sudo, mmpmon_path must be provided and an absolute path: {mmpmon}"
            )
        path = self.which(mmpmon)
        if path is None:
            if not use_sudo:  # with sudo, mmpmon is typically not executable for this user
                raise CollectorInitError(
                    f"gpfs: failed to find mmpmon binary '{mmpmon}' (option mmpmon_path)"
                )
            path = mmpmon
        self._mmpmon = path
        self._skip_fs = set(self.opt_strlist("exclude_filesystem"))

        send_abs = self.opt_bool("send_abs_values", False)
        send_diff = self.opt_bool("send_diff_values", False)
        send_derived = self.opt_bool("send_derived_values", False)
        send_totals = self.opt_bool("send_total_values", False)
        send_bw = self.opt_bool("send_bandwidths", False)
        defs = []
        if send_abs:
            defs += ABS
        if send_diff:
            defs += DIFF
        if send_derived:
            defs += DERIVED
        elif send_bw:
            defs += [d for d in DERIVED if d[3] == "bytes/sec"]
        wanted = {"abs": send_abs, "diff": send_diff, "rate": send_derived}
        if send_totals:
            defs += [d for d in TOTALS if wanted[d[2]]]
        if send_bw and not send_derived:
            defs += [d for d in TOTALS if d[3] == "bytes/sec"]
        self._defs = [
            (name, counter, calc, {**self.meta, "unit": unit})
            for name, counter, calc, unit in defs
            if name not in self.exclude
        ]
        if not self._defs:
            raise CollectorInitError(
                "gpfs: no metrics to collect (set send_abs_values, send_diff_values, "
                "send_derived_values, send_total_values or send_bandwidths)"
            )
        #: per file system: last counters and their mmpmon time (ns)
        self._last: dict[str, tuple[dict[str, int], int]] = {}
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        try:
            out = self.output([self._mmpmon, "-p", "-s"], stdin="once fs_io_s\n")
        except RuntimeError as e:
            self.log.error("Read(): %s", e)
            return
        for kv in parse_fs_io_s(out):
            fs = kv.get("_fs_")
            if fs is None:
                self.log.error("Read(): failed to get the file system name")
                continue
            if fs in self._skip_fs:
                continue
            try:
                rc = int(kv.get("_rc_", ""))
                t_ns = int(kv.get("_t_", "")) * 1_000_000_000 + int(kv.get("_tu_", "")) * 1000
            except ValueError:
                self.log.error("Read(): bad return code or time for file system %s", fs)
                continue
            if rc != 0:
                self.log.error("Read(): file system '%s' is not ok (rc %d)", fs, rc)
                continue
            self._emit_fs(fs, counters_of(kv), t_ns, emit)

    def _emit_fs(self, fs: str, new: dict[str, int], t_ns: int, emit: Emit) -> None:
        old, old_t = self._last.get(fs, ({}, 0))
        dt = (t_ns - old_t) / 1e9 if old_t else 0.0
        tags = {"type": "node", "filesystem": fs}
        for name, counter, calc, meta in self._defs:
            vnew, vold = new.get(counter), old.get(counter)
            value: int | float
            if calc == "abs":
                if vnew is not None:
                    value = vnew
                elif vold is not None:
                    value = vold  # not reported this time: no change
                else:
                    continue
            elif vold is None:
                self.log.debug("Read(): no previous value of %s for file system %s", name, fs)
                continue
            elif calc == "diff":
                value = max(vnew - vold, 0) if vnew is not None else 0
            else:
                value = max((vnew - vold) / dt, 0.0) if vnew is not None and dt > 0 else 0.0
            m = metric(name, tags, meta, value, t_ns)
            if m is not None:
                emit(m)
        if new:
            self._last[fs] = (new, t_ns)
