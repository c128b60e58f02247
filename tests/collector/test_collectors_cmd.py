"""Collectors that wrap programs or vendor libraries (spec §6.16–6.19, 6.21, 6.22, 6.24–6.27).

Programs are the fakes in tests/data/collector/bin (they replay recorded real output, see
fakes/replay.py) put on the collector's PATH; NVML is the fake `pynvml` module; LIKWID and
ROCm SMI get fake backends; clocks are injected where rates are derived.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from cccollector.collectors import CollectorInitError, load_all
from cccollector.collectors.beegfs import META_OPS, STORAGE_OPS, BeegfsMetaCollector, BeegfsStorageCollector
from cccollector.collectors.customcmd import CustomCmdCollector, timestamp_ns
from cccollector.collectors.gpfs import GpfsCollector
from cccollector.collectors.ipmistat import IpmiCollector
from cccollector.collectors.likwid import Formula, FormulaError, LikwidCollector
from cccollector.collectors.lustrestat import LustreCollector
from cccollector.collectors.nfsstat import Nfs3Collector, Nfs4Collector
from cccollector.collectors.nvidia import NvidiaCollector
from cccollector.collectors.rocm_smi import (
    GpuSource,
    RocmSmiCollector,
    parse_gpu_metrics,
    pci_id_from_bdf,
)
from cccollector.collectors.smartmon import SmartMonCollector
from cccollector.collectors.topprocs import TopProcsCollector
from cccommon.message import CCMessage, UInt

DATA = Path(__file__).resolve().parents[1] / "data" / "collector"
BIN = DATA / "bin"
FAKES = DATA / "fakes"
T0 = 1_700_000_000 * 10**9


class Clock:
    """Injected collector clock (ns)."""

    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += int(seconds * 1e9)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    state = tmp_path / "fakestate"
    state.mkdir()
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "FAKE_STATE_DIR": str(state),
        "FAKE_PYTHON": sys.executable,
    }


def make(cls: type, env: dict[str, str], clock: Clock | None = None, root: str = "/", **attrs: Any) -> Any:
    c = cls(root=root, env=env)
    c.clock = clock or Clock()
    for k, v in attrs.items():
        setattr(c, k, v)
    return c


def collect(c: Any, interval: float = 10.0) -> list[CCMessage]:
    out: list[CCMessage] = []
    c.read(interval, out.append)
    return out


def values(msgs: list[CCMessage], *tag_keys: str) -> dict[Any, Any]:
    """name (plus the given tag values) → value; fails on duplicates."""
    out: dict[Any, Any] = {}
    for m in msgs:
        key = (m.name, *(m.tags.get(k) for k in tag_keys)) if tag_keys else m.name
        assert key not in out, f"duplicate message {key}"
        out[key] = m.value
    return out


def kind(v: Any) -> str:
    return "uint" if isinstance(v, UInt) else type(v).__name__


def calls(env: dict[str, str]) -> list[str]:
    p = Path(env["FAKE_STATE_DIR"]) / "calls.log"
    return p.read_text().splitlines() if p.exists() else []


def fail(env: dict[str, str], prog: str) -> None:
    (Path(env["FAKE_STATE_DIR"]) / f"{prog}.fail").touch()


def test_all_types_registered() -> None:
    reg = load_all()
    for t in (
        "customcmd",
        "topprocs",
        "ipmistat",
        "lustrestat",
        "nfs3stat",
        "nfs4stat",
        "gpfs",
        "beegfs_meta",
        "beegfs_storage",
        "smartmon",
        "nvidia",
        "rocm_smi",
        "likwid",
    ):
        assert t in reg
    assert not reg["nvidia"].parallel and not reg["rocm_smi"].parallel and not reg["likwid"].parallel
    assert reg["customcmd"].parallel and reg["gpfs"].parallel


# ----------------------------------------------------------------------------- customcmd


def test_timestamp_precision() -> None:
    assert timestamp_ns(1_700_000_000, "auto") == T0
    assert timestamp_ns(1_700_000_000_000, "auto") == T0
    assert timestamp_ns(1_700_000_000_000_000, "auto") == T0
    assert timestamp_ns(T0, "auto") == T0
    assert timestamp_ns(99_999_999_999, "auto") == 99_999_999_999 * 10**9  # < 1e11: seconds
    assert timestamp_ns(100_000_000_000, "auto") == 100_000_000_000 * 10**6  # ms from 1e11
    assert timestamp_ns(5, "ms") == 5_000_000
    assert timestamp_ns(5, "us") == 5_000
    assert timestamp_ns(5, "ns") == 5
    assert timestamp_ns(5, "s") == 5 * 10**9


def _script(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text("#!/bin/sh\ncat <<'EOF'\n" + text + "EOF\n")
    p.chmod(0o755)
    return p


def test_customcmd_command_output(tmp_path: Path, env: dict[str, str]) -> None:
    script = _script(
        tmp_path,
        "site-metrics",
        "temp_x,type=node value=42i 1700000000\n"
        "temp_y,type=socket,type-id=0 value=1.5 1700000000000\n"
        "# a comment\n"
        "this is not line protocol\n"
        'no_time,type=node value="text"\n'
        "drop_me,type=node value=1u 1700000000\n"
        "flag,type=node value=true 1700000000\n",
    )
    clock = Clock(T0 + 123)
    c = make(CustomCmdCollector, env, clock)
    c.init({"commands": [f"{script} --flag", "/nonexistent/tool"], "exclude_metrics": ["drop_me"]})
    msgs = collect(c)
    assert [m.name for m in msgs] == ["temp_x", "temp_y", "no_time", "flag"]
    x, y, nt, fl = msgs
    assert x.value == 42 and kind(x.value) == "int" and x.time == T0
    assert x.tags == {"type": "node"} and x.meta == {}
    assert y.value == 1.5 and y.time == T0 and y.tags == {"type": "socket", "type-id": "0"}
    assert nt.value == "text" and nt.time == T0 + 123  # no timestamp: read time
    assert fl.value is True


def test_customcmd_files_and_precision(tmp_path: Path, env: dict[str, str]) -> None:
    f = tmp_path / "metrics.lp"
    f.write_text("a,type=node value=1u 1700000000000\nb,type=node value=2.5 1\n")
    c = make(CustomCmdCollector, env)
    c.init({"files": [str(f), str(tmp_path / "missing.lp")], "precision": "ms"})
    msgs = collect(c)
    assert [(m.name, m.value, m.time) for m in msgs] == [("a", 1, T0), ("b", 2.5, 10**6)]
    assert kind(msgs[0].value) == "uint"
    f.write_text("c,type=node value=3i\n")  # files are re-read on every read
    assert [m.name for m in collect(c)] == ["c"]


def test_customcmd_init_failures(env: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(CollectorInitError, match="no metrics to collect"):
        make(CustomCmdCollector, env).init(
            {"commands": ["/nonexistent/x"], "files": [str(tmp_path / "nope")]}
        )
    with pytest.raises(CollectorInitError, match="precision"):
        make(CustomCmdCollector, env).init({"files": [], "precision": "minutes"})
    with pytest.raises(CollectorInitError, match="unknown option"):
        make(CustomCmdCollector, env).init({"commands": [], "send_meta": True})


# ----------------------------------------------------------------------------- topprocs


def test_topprocs(env: dict[str, str]) -> None:
    c = make(TopProcsCollector, env)
    c.init({"num_procs": 3})
    msgs = collect(c)
    assert values(msgs) == {"topproc1": "stress-ng", "topproc2": "python3", "topproc3": "slurmstepd"}
    assert all(m.tags == {"type": "node"} for m in msgs)
    assert msgs[0].meta == {"source": "TopProcsCollector", "group": "TopProcs"}
    assert calls(env)[-1] == "ps -Ao comm --sort=-pcpu"


def test_topprocs_options(env: dict[str, str], tmp_path: Path) -> None:
    c = make(TopProcsCollector, env)
    c.init(None)  # no options at all: the default of 2
    assert [m.name for m in collect(c)] == ["topproc1", "topproc2"]
    with pytest.raises(CollectorInitError, match="num_procs option must be set"):
        make(TopProcsCollector, env).init({})  # upstream quirk kept
    with pytest.raises(CollectorInitError, match="range: 1-10"):
        make(TopProcsCollector, env).init({"num_procs": 11})
    with pytest.raises(CollectorInitError, match="'ps'"):
        make(TopProcsCollector, {**env, "PATH": str(tmp_path)}).init({"num_procs": 2})


# ----------------------------------------------------------------------------- ipmistat


def test_ipmistat_ipmi_sensors(env: dict[str, str]) -> None:
    c = make(IpmiCollector, env)
    c.init({})
    msgs = collect(c)
    assert values(msgs) == {"cpu1_temp": 45.0, "ps1_input_power": 120.0, "fan1": 5400.0, "12v": 12.19}
    units = {m.name: m.meta["unit"] for m in msgs}
    assert units == {"cpu1_temp": "C", "ps1_input_power": "W", "fan1": "RPM", "12v": "V"}
    assert all(kind(m.value) == "float" and m.tags == {"type": "node"} for m in msgs)
    assert msgs[0].meta["source"] == "IpmiCollector" and msgs[0].meta["group"] == "IPMI"
    assert calls(env)[-1] == "ipmi-sensors --comma-separated-output --sdr-cache-recreate"


def test_ipmistat_ipmitool_fallback(env: dict[str, str]) -> None:
    fail(env, "ipmi-sensors")
    c = make(IpmiCollector, env)
    c.init({})
    msgs = collect(c)
    assert values(msgs) == {
        "cpu1_temp": 45.0,
        "inlet_temp": 75.2,
        "fan1": 5400.0,
        "ps1_input_power": 120.0,
        "12v": 12.19,
    }
    units = {m.name: m.meta["unit"] for m in msgs}
    assert units == {
        "cpu1_temp": "degC",
        "inlet_temp": "degF",
        "fan1": "RPM",
        "ps1_input_power": "Watts",
        "12v": "Volts",
    }
    assert calls(env)[-1] == "ipmitool sensor"


def test_ipmistat_include_sudo_and_missing(env: dict[str, str], tmp_path: Path) -> None:
    c = make(IpmiCollector, env)
    c.init({"include_metrics": ["CPU1_Temp", "fan1"], "use_sudo": True})
    assert sorted(m.name for m in collect(c)) == ["cpu1_temp", "fan1"]
    assert calls(env)[-2] == f"sudo -n {BIN}/ipmi-sensors --comma-separated-output --sdr-cache-recreate"
    with pytest.raises(CollectorInitError, match="no usable IPMI reader"):
        make(IpmiCollector, env).init({"ipmisensors_path": "/nonexistent/a", "ipmitool_path": "no-such-tool"})


# ----------------------------------------------------------------------------- lustrestat

SCRATCH = "scratch-ffff8f4e5b5c8000"
HOME = "home-ffff8f4e5b5c9000"


def test_lustre_abs_diff_derived(env: dict[str, str]) -> None:
    clock = Clock()
    c = make(LustreCollector, env, clock)
    c.init({"send_abs_values": True, "send_diff_values": True, "send_derived_values": True})
    clock.advance(10)
    msgs = collect(c)
    got = values(msgs, "device")
    s = {name: v for (name, dev), v in got.items() if dev == SCRATCH}
    assert s == {
        "lustre_read_requests": 1300,
        "lustre_write_requests": 350,
        "lustre_read_bytes": 534773760,
        "lustre_write_bytes": 110100480,
        "lustre_open": 520,
        "lustre_close": 470,
        "lustre_setattr": 20,
        "lustre_getattr": 2100,
        "lustre_statfs": 15,
        "lustre_inode_permission": 4400,
        "lustre_read_requests_diff": 100,
        "lustre_write_requests_diff": 50,
        "lustre_read_bytes_diff": 10485760,
        "lustre_write_bytes_diff": 5242880,
        "lustre_open_diff": 20,
        "lustre_close_diff": 0,  # went down: clamped
        "lustre_setattr_diff": 0,
        "lustre_getattr_diff": 100,
        "lustre_statfs_diff": 5,
        "lustre_inode_permission_diff": 400,
        "lustre_read_requests_rate": 10.0,
        "lustre_write_requests_rate": 5.0,
        "lustre_read_bw": 1048576.0,
        "lustre_write_bw": 524288.0,
    }
    h = {name: v for (name, dev), v in got.items() if dev == HOME}
    assert h["lustre_open"] == 9 and h["lustre_open_diff"] == 2
    assert h["lustre_read_requests"] == 4 and h["lustre_read_bytes_diff"] == 16384
    assert h["lustre_write_bytes"] == 0 and h["lustre_read_bw"] == 1638.4
    byname = {(m.name, m.tags["device"]): m for m in msgs}
    m = byname[("lustre_read_bytes", SCRATCH)]
    assert m.tags == {"type": "node", "device": SCRATCH}
    assert m.meta == {"source": "LustreCollector", "group": "Lustre", "unit": "bytes"}
    assert byname[("lustre_read_bw", SCRATCH)].meta["unit"] == "bytes/sec"
    assert byname[("lustre_read_requests_rate", SCRATCH)].meta["unit"] == "requests/sec"
    assert "unit" not in byname[("lustre_open", SCRATCH)].meta
    for (name, _), v in got.items():
        assert kind(v) == ("float" if name.endswith(("_rate", "_bw")) else "int"), name
    assert all(m.time == clock.t for m in msgs)


def test_lustre_options_and_root(env: dict[str, str]) -> None:
    c = make(LustreCollector, env, geteuid=lambda: 1000)
    with pytest.raises(CollectorInitError, match="root"):
        c.init({"send_abs_values": True})
    with pytest.raises(CollectorInitError, match="no metrics to collect"):
        make(LustreCollector, env).init({})
    c = make(LustreCollector, env, geteuid=lambda: 1000)
    c.init({"send_abs_values": True, "use_sudo": True, "exclude_metrics": ["lustre_open", "lustre_close"]})
    names = {m.name for m in collect(c)}
    assert "lustre_open" not in names and "lustre_close" not in names and "lustre_getattr" in names
    assert f"sudo -n {BIN}/lctl get_param llite.*.stats" in calls(env)
    with pytest.raises(CollectorInitError, match="not found"):
        make(LustreCollector, {**env, "PATH": "/nonexistent"}).init({"send_abs_values": True})


# ----------------------------------------------------------------------------- nfs3stat / nfs4stat


def test_nfs3stat(env: dict[str, str]) -> None:
    c = make(Nfs3Collector, env)
    c.init({})
    msgs = collect(c)
    assert values(msgs) == {
        "nfs3_total": 100,
        "nfs3_null": 0,
        "nfs3_getattr": 50,
        "nfs3_setattr": 2,
        "nfs3_lookup": 30,
        "nfs3_read": 10,
        "nfs3_write": 8,
    }
    assert all(kind(m.value) == "int" and m.tags == {"type": "node"} for m in msgs)
    assert msgs[0].meta == {"source": "Nfs3Collector", "group": "NFS", "version": "v3"}
    assert calls(env)[-1] == "nfsstat -l --all"


def test_nfs4stat_server_lines_share_names(env: dict[str, str]) -> None:
    c = make(Nfs4Collector, env)
    c.init({"exclude_metrics": ["write"]})
    msgs = collect(c)
    # the servop lines come later and overwrite the client's total and getattr
    assert values(msgs) == {"nfs4_total": 10, "nfs4_read": 50, "nfs4_getattr": 5, "nfs4_open": 50}
    assert msgs[0].meta == {"source": "Nfs4Collector", "group": "NFS", "version": "v4"}


def test_nfsstat_missing(env: dict[str, str]) -> None:
    with pytest.raises(CollectorInitError, match="nfsstat"):
        make(Nfs3Collector, env).init({"nfsstat": "/nonexistent/nfsstat"})


# ----------------------------------------------------------------------------- gpfs

ALL_GPFS = {
    "send_abs_values": True,
    "send_diff_values": True,
    "send_derived_values": True,
    "send_total_values": True,
    "exclude_filesystem": ["test_fs"],
}


def test_gpfs_all_groups(env: dict[str, str]) -> None:
    c = make(GpfsCollector, env)
    c.init(ALL_GPFS)
    first = collect(c)
    t1 = 1_700_000_000 * 10**9 + 500_000_000
    assert {m.tags["filesystem"] for m in first} == {"gpfs01"}  # test_fs excluded, rc != 0 skipped
    assert all(m.time == t1 for m in first)
    # first read: no previous state, only absolute values and absolute totals
    assert values(first) == {
        "gpfs_num_opens": 1000,
        "gpfs_num_closes": 990,
        "gpfs_num_reads": 5000,
        "gpfs_num_writes": 2500,
        "gpfs_num_readdirs": 100,
        "gpfs_num_inode_updates": 300,
        "gpfs_bytes_read": 1048576000,
        "gpfs_bytes_written": 524288000,
        "gpfs_bytes_total": 1572864000,
        "gpfs_iops": 7500,
        "gpfs_metaops": 2390,
    }
    second = collect(c)
    assert all(m.time == t1 + 10 * 10**9 for m in second)
    got = values(second)
    assert got == {
        "gpfs_num_opens": 1100,
        "gpfs_num_closes": 1040,
        "gpfs_num_reads": 5600,
        "gpfs_num_writes": 2700,
        "gpfs_num_readdirs": 110,
        "gpfs_num_inode_updates": 330,
        "gpfs_bytes_read": 1153433600,
        "gpfs_bytes_written": 545259520,
        "gpfs_num_opens_diff": 100,
        "gpfs_num_closes_diff": 50,
        "gpfs_num_reads_diff": 600,
        "gpfs_num_writes_diff": 200,
        "gpfs_num_readdirs_diff": 10,
        "gpfs_num_inode_updates_diff": 30,
        "gpfs_bytes_read_diff": 104857600,
        "gpfs_bytes_written_diff": 20971520,
        "gpfs_opens_rate": 10.0,
        "gpfs_closes_rate": 5.0,  # from the closes counter (upstream used opens)
        "gpfs_reads_rate": 60.0,
        "gpfs_writes_rate": 20.0,
        "gpfs_readdirs_rate": 1.0,
        "gpfs_inode_updates_rate": 3.0,
        "gpfs_bw_read": 10485760.0,
        "gpfs_bw_write": 2097152.0,
        "gpfs_bytes_total": 1698693120,
        "gpfs_bytes_total_diff": 125829120,
        "gpfs_bw_total": 12582912.0,
        "gpfs_iops": 8300,
        "gpfs_iops_diff": 800,
        "gpfs_iops_rate": 80.0,
        "gpfs_metaops": 2580,
        "gpfs_metaops_diff": 190,
        "gpfs_metaops_rate": 19.0,
    }
    for name, v in got.items():
        is_rate = name.endswith("_rate") or name.startswith("gpfs_bw_")
        assert kind(v) == ("float" if is_rate else "int"), name
    m = {x.name: x for x in second}
    assert m["gpfs_bytes_read"].tags == {"type": "node", "filesystem": "gpfs01"}
    assert m["gpfs_bytes_read"].meta == {"source": "GpfsCollector", "group": "GPFS", "unit": "bytes"}
    assert m["gpfs_bw_read"].meta["unit"] == "bytes/sec"
    assert m["gpfs_opens_rate"].meta["unit"] == "requests/sec"
    assert m["gpfs_num_opens_diff"].meta["unit"] == "requests"
    assert calls(env)[-1] == "mmpmon -p -s"


def test_gpfs_bandwidths_only(env: dict[str, str]) -> None:
    c = make(GpfsCollector, env)
    c.init({"send_bandwidths": True})
    assert collect(c) == []  # no previous state yet
    got = values(collect(c), "filesystem")
    assert got == {
        ("gpfs_bw_read", "gpfs01"): 10485760.0,
        ("gpfs_bw_write", "gpfs01"): 2097152.0,
        ("gpfs_bw_total", "gpfs01"): 12582912.0,
        ("gpfs_bw_read", "test_fs"): 0.0,
        ("gpfs_bw_write", "test_fs"): 0.0,
        ("gpfs_bw_total", "test_fs"): 0.0,
    }


def test_gpfs_init_failures(env: dict[str, str]) -> None:
    with pytest.raises(CollectorInitError, match="no metrics to collect"):
        make(GpfsCollector, env).init({"exclude_filesystem": ["test_fs"]})  # the upstream example config
    with pytest.raises(CollectorInitError, match="root"):
        make(GpfsCollector, env, geteuid=lambda: 1000).init({"send_abs_values": True})
    with pytest.raises(CollectorInitError, match="absolute path"):
        make(GpfsCollector, env).init({"send_abs_values": True, "use_sudo": True})
    with pytest.raises(CollectorInitError, match="mmpmon"):
        make(GpfsCollector, env).init({"send_abs_values": True, "mmpmon_path": "/nonexistent/mmpmon"})
    c = make(GpfsCollector, env, geteuid=lambda: 1000)
    c.init({"send_abs_values": True, "use_sudo": True, "mmpmon_path": str(BIN / "mmpmon")})
    assert len(collect(c)) == 16
    assert calls(env)[0] == f"sudo -n {BIN}/mmpmon -p -s"


# ----------------------------------------------------------------------------- beegfs


@pytest.fixture
def beeond_root(tmp_path: Path) -> str:
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "mounts").write_text(
        "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
        "beegfs_ondemand /mnt/beeond beegfs rw,relatime,cfgFile=/etc/beegfs/beeond-client.conf 0 0\n"
        "beegfs_ondemand /mnt/beeond2 beegfs rw,relatime,cfgFile=/etc/beegfs/beeond2-client.conf 0 0\n"
        "storage01:/home /home nfs4 rw 0 0\n"
    )
    return str(root)


def test_beegfs_meta(env: dict[str, str], beeond_root: str) -> None:
    c = make(BeegfsMetaCollector, env, root=beeond_root)
    c.init({"exclude_filesystem": ["/mnt/beeond2"], "exclude_metrics": ["ack"]})
    msgs = collect(c)
    got = values(msgs)
    expected = {f"beegfs_cmeta_{op}": 0.0 for op in META_OPS if op != "ack"}
    expected.update(
        {
            "beegfs_cmeta_sum": 120.0,
            "beegfs_cmeta_close": 30.0,
            "beegfs_cmeta_entInf": 25.0,
            "beegfs_cmeta_mkdir": 5.0,
            "beegfs_cmeta_open": 30.0,
            "beegfs_cmeta_stat": 12.0,
            "beegfs_cmeta_unlnk": 5.0,
            "beegfs_cstorage_other": 13.0,  # the excluded ack (10) and the unknown newOp (3)
        }
    )
    assert got == expected
    assert all(m.tags == {"type": "node", "filesystem": "/mnt/beeond"} for m in msgs)
    assert all(kind(v) == "float" for v in got.values())
    assert msgs[0].meta == {"source": "BeegfsMetaCollector", "group": "BeegfsMeta"}
    assert calls(env) == ["beegfs-ctl --clientstats --nodetype=meta --mount=/mnt/beeond --allstats"]


def test_beegfs_storage(env: dict[str, str], beeond_root: str) -> None:
    c = make(BeegfsStorageCollector, env, root=beeond_root)
    c.init({})
    msgs = collect(c)
    assert {m.tags["filesystem"] for m in msgs} == {"/mnt/beeond", "/mnt/beeond2"}
    got = values([m for m in msgs if m.tags["filesystem"] == "/mnt/beeond"])
    expected = {f"beegfs_cstorage_{op}": 0.0 for op in STORAGE_OPS}
    expected.update(
        {
            "beegfs_cstorage_sum": 220.0,
            "beegfs_cstorage_ops-rd": 100.0,
            "beegfs_cstorage_MiB-rd/s": 25.0,
            "beegfs_cstorage_ops-wr": 80.0,
            "beegfs_cstorage_MiB-wr/s": 15.0,
            "beegfs_cstorage_other": 0.0,
        }
    )
    assert got == expected
    assert msgs[0].meta == {"source": "BeegfsStorageCollector", "group": "BeegfsStorage"}


def test_beegfs_init_failures(env: dict[str, str], beeond_root: str) -> None:
    with pytest.raises(CollectorInitError, match="root"):
        make(BeegfsMetaCollector, env, root=beeond_root, geteuid=lambda: 1000).init({})
    with pytest.raises(CollectorInitError, match="beegfs-ctl"):
        make(BeegfsStorageCollector, {**env, "PATH": "/nonexistent"}, root=beeond_root).init({})


# ----------------------------------------------------------------------------- smartmon

NVME0 = {
    "smartmon_temp": 38,
    "smartmon_percent_used": 3,
    "smartmon_avail_spare": 100,
    "smartmon_data_units_read": 12345678,
    "smartmon_data_units_write": 23456789,
    "smartmon_host_reads": 345678901,
    "smartmon_host_writes": 456789012,
    "smartmon_power_cycles": 42,
    "smartmon_power_on": 8760 * 3600,
    "smartmon_unsafe_shutdowns": 7,
    "smartmon_media_errors": 0,
    "smartmon_errlog_entries": 12,
    "smartmon_warn_temp_time": 1,
    "smartmon_crit_comp_time": 2,
}


def test_smartmon_scan(env: dict[str, str]) -> None:
    c = make(SmartMonCollector, env)
    c.init({})
    msgs = collect(c)
    got = values(msgs, "stype-id")
    # exit status 64 (error log entries) still has usable output; the SATA disk has no NVMe log
    assert {k[1] for k in got} == {"/dev/nvme0", "/dev/nvme1"}
    assert {k[0]: v for k, v in got.items() if k[1] == "/dev/nvme0"} == NVME0
    assert got[("smartmon_temp", "/dev/nvme1")] == 41
    assert all(kind(v) == "int" for v in got.values())
    m = {(x.name, x.tags["stype-id"]): x for x in msgs}
    assert m[("smartmon_temp", "/dev/nvme0")].tags == {
        "type": "node",
        "stype": "disk",
        "stype-id": "/dev/nvme0",
    }
    assert m[("smartmon_temp", "/dev/nvme0")].meta == {
        "source": "SmartMonCollector",
        "group": "Disk",
        "unit": "degC",
    }
    assert m[("smartmon_percent_used", "/dev/nvme0")].meta["unit"] == "percent"
    assert m[("smartmon_power_on", "/dev/nvme0")].meta["unit"] == "sec"
    assert "unit" not in m[("smartmon_host_reads", "/dev/nvme0")].meta
    assert calls(env)[0] == "smartctl --scan --json=c"
    assert "smartctl --json=c --device=nvme --all /dev/nvme0" in calls(env)
    assert "smartctl --json=c --device=sat --all /dev/sda" in calls(env)


def test_smartmon_options(env: dict[str, str]) -> None:
    c = make(SmartMonCollector, env)
    c.init(
        {
            "devices": [{"name": "/dev/nvme1", "type": "nvme"}],
            "excludeMetrics": ["smartmon_temp"],
            "use_sudo": True,
        }
    )
    msgs = collect(c)
    assert {m.tags["stype-id"] for m in msgs} == {"/dev/nvme1"}
    assert "smartmon_temp" not in {m.name for m in msgs} and len(msgs) == 13
    assert not any("--scan" in line for line in calls(env))
    assert calls(env)[0] == f"sudo -n {BIN}/smartctl --json=c --device=nvme --all /dev/nvme1"
    c = make(SmartMonCollector, env)
    c.init({"exclude_devices": ["/dev/nvme0", "/dev/sda"]})
    assert {m.tags["stype-id"] for m in collect(c)} == {"/dev/nvme1"}
    with pytest.raises(CollectorInitError, match="unknown metric"):
        make(SmartMonCollector, env).init({"excludeMetrics": ["smartmon_bogus"]})
    with pytest.raises(CollectorInitError, match="smartctl"):
        make(SmartMonCollector, {**env, "PATH": "/nonexistent"}).init({})


# ----------------------------------------------------------------------------- nvidia


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Any:
    spec = importlib.util.spec_from_file_location("pynvml", FAKES / "pynvml.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    return mod


GPU0 = {
    "nv_fb_mem_total": 40960.0,
    "nv_fb_mem_used": 1024.0,
    "nv_util": 87.0,
    "nv_mem_util": 45.0,
    "nv_temp": 54.0,
    "nv_ecc_mode": "ON",
    "nv_perf_state": "P0",
    "nv_power_usage": 251.234,
    "nv_energy_abs": 1_000_000,
    "nv_graphics_clock": 1410.0,
    "nv_sm_clock": 1410.0,
    "nv_mem_clock": 1215.0,
    "nv_video_clock": 1275.0,
    "nv_max_graphics_clock": 1410.0,
    "nv_max_sm_clock": 1410.0,
    "nv_max_mem_clock": 1215.0,
    "nv_max_video_clock": 1290.0,
    "nv_ecc_uncorrected_error": 0.0,
    "nv_ecc_corrected_error": 5.0,
    "nv_power_max_limit": 400.0,
    "nv_encoder_util": 0.0,
    "nv_decoder_util": 2.0,
    "nv_remapped_rows_corrected": 1.0,
    "nv_remapped_rows_uncorrected": 2.0,
    "nv_remapped_rows_pending": 0,
    "nv_remapped_rows_failure": 1,
    "nv_bar1_mem_total": 65536.0,
    "nv_bar1_mem_used": 3.0,
    "nv_compute_processes": 3,
    "nv_graphics_processes": 0,
    # ns × 1e-9 as upstream computes it (250_000_000_000 × 1e-9 = 250.00000000000003)
    "nv_violation_power": 1_500_000_000 * 1e-9,
    "nv_violation_thermal": 0.0,
    "nv_violation_sync_boost": 0.0,
    "nv_violation_board_limit": 0.0,
    "nv_violation_low_util": 250_000_000_000 * 1e-9,
    "nv_violation_reliability": 0.0,
    "nv_violation_below_app_clock": 251_500_000_000 * 1e-9,
    "nv_violation_below_base_clock": 2_000_000_000 * 1e-9,
}
NVLINK0 = {
    ("nv_nvlink_crc_errors", "0"): 1,
    ("nv_nvlink_ecc_errors", "0"): 0,
    ("nv_nvlink_replay_errors", "0"): 2,
    ("nv_nvlink_recovery_errors", "0"): 0,
    ("nv_nvlink_crc_flit_errors", "0"): 3,
    ("nv_nvlink_crc_errors", "2"): 4,
    ("nv_nvlink_ecc_errors", "2"): 0,
    ("nv_nvlink_replay_errors", "2"): 5,
    ("nv_nvlink_recovery_errors", "2"): 1,
    ("nv_nvlink_crc_flit_errors", "2"): 6,
    ("nv_nvlink_crc_errors_sum", None): 5,
    ("nv_nvlink_ecc_errors_sum", None): 0,
    ("nv_nvlink_replay_errors_sum", None): 7,
    ("nv_nvlink_recovery_errors_sum", None): 1,
    ("nv_nvlink_crc_flit_errors_sum", None): 9,
}
GPU1 = {
    "nv_fb_mem_total": 16376.0,
    "nv_fb_mem_used": 512.0,
    "nv_util": 12.0,
    "nv_mem_util": 3.0,
    "nv_temp": 41.0,
    "nv_fan": 30.0,
    "nv_ecc_mode": "N/A",
    "nv_perf_state": "P8",
    "nv_power_usage": 35.5,
    "nv_energy_abs": 50_000,
    "nv_graphics_clock": 210.0,
    "nv_sm_clock": 210.0,
    "nv_mem_clock": 405.0,
    "nv_video_clock": 555.0,
    "nv_max_graphics_clock": 2100.0,
    "nv_max_sm_clock": 2100.0,
    "nv_max_mem_clock": 7001.0,
    "nv_max_video_clock": 1950.0,
    "nv_power_max_limit": 140.0,
    "nv_encoder_util": 0.0,
    "nv_decoder_util": 0.0,
    "nv_bar1_mem_total": 256.0,
    "nv_bar1_mem_used": 5.0,
    "nv_compute_processes": 0,
    "nv_graphics_processes": 1,
}
NV_UNITS = {
    "nv_fb_mem_total": "MByte",
    "nv_bar1_mem_used": "MByte",
    "nv_util": "%",
    "nv_fan": "%",
    "nv_decoder_util": "%",
    "nv_temp": "degC",
    "nv_power_usage": "watts",
    "nv_power_max_limit": "watts",
    "nv_average_power": "watts",
    "nv_energy": "Joules",
    "nv_energy_abs": "Joules",
    "nv_sm_clock": "MHz",
    "nv_max_video_clock": "MHz",
    "nv_violation_power": "sec",
}
NV_UINT = {"nv_energy", "nv_energy_abs", "nv_average_power"}
NV_INT = {
    "nv_remapped_rows_pending",
    "nv_remapped_rows_failure",
    "nv_compute_processes",
    "nv_graphics_processes",
}


def _per_gpu(msgs: list[CCMessage], type_id: str) -> tuple[dict[str, Any], dict[Any, Any]]:
    plain, links = {}, {}
    for m in msgs:
        if m.tags["type-id"] != type_id:
            continue
        if m.tags.get("stype") == "nvlink":
            links[(m.name, m.tags.get("stype-id"))] = m.value
        else:
            assert m.name not in plain
            plain[m.name] = m.value
    return plain, links


def test_nvidia_metrics(nvml: Any) -> None:
    clock = Clock()
    c = make(NvidiaCollector, {}, clock)
    c.init({})
    msgs = collect(c)
    p0, l0 = _per_gpu(msgs, "0")
    p1, l1 = _per_gpu(msgs, "1")
    assert p0 == GPU0
    assert l0 == NVLINK0
    assert p1 == GPU1
    assert l1 == {(name, None): 0 for name, sid in NVLINK0 if sid is None}
    for m in msgs:
        name = m.name
        expected = (
            "uint"
            if name in NV_UINT or name.startswith("nv_nvlink")
            else "int"
            if name in NV_INT
            else "str"
            if name in ("nv_ecc_mode", "nv_perf_state")
            else "float"
        )
        assert kind(m.value) == expected, name
        if name in NV_UNITS:
            assert m.meta["unit"] == NV_UNITS[name], name
        elif name.startswith(("nv_nvlink", "nv_ecc", "nv_perf", "nv_remapped", "nv_compute")):
            assert "unit" not in m.meta, name
        assert m.meta["source"] == "NvidiaCollector" and m.meta["group"] == "Nvidia"
        assert m.tags["type"] == "accelerator"
    link = next(m for m in msgs if m.name == "nv_nvlink_crc_errors" and m.tags["type-id"] == "0")
    assert link.tags == {"type": "accelerator", "type-id": "0", "stype": "nvlink", "stype-id": "0"}
    total = next(m for m in msgs if m.name == "nv_nvlink_crc_errors_sum" and m.tags["type-id"] == "0")
    assert total.tags == {"type": "accelerator", "type-id": "0", "stype": "nvlink"}

    # energy: difference and average power (whole seconds, integer division) from the second read
    nvml.GPUS[0]["energy"] += 2_500_000
    nvml.GPUS[1]["energy"] += 355_000
    clock.advance(10)
    p0, _ = _per_gpu(collect(c), "0")
    assert (p0["nv_energy"], p0["nv_average_power"], p0["nv_energy_abs"]) == (2500, 250, 1_002_500)
    nvml.GPUS[0]["energy"] += 2_500_000
    clock.advance(7.9)
    msgs = collect(c)
    p0, _ = _per_gpu(msgs, "0")
    p1, _ = _per_gpu(msgs, "1")
    assert (p0["nv_energy"], p0["nv_average_power"]) == (2500, 357)
    assert (p1["nv_energy"], p1["nv_average_power"]) == (0, 0)
    assert kind(p0["nv_energy"]) == "uint"
    c.close()
    assert not nvml.initialized


def test_nvidia_options(nvml: Any) -> None:
    c = make(NvidiaCollector, {})
    c.init(
        {
            "use_pci_info_as_type_id": True,
            "add_pci_info_tag": True,  # ignored: the PCI id is already the type-id
            "add_uuid_meta": True,
            "add_serial_meta": True,
            "add_board_number_meta": True,
            "exclude_metrics": ["nv_energy", "nv_fb_mem_used"],
        }
    )
    msgs = collect(c)
    assert {m.tags["type-id"] for m in msgs} == {"00000000:07:00.0", "00000000:81:00.0"}
    assert not any("pci_identifier" in m.tags for m in msgs)
    names = {m.name for m in msgs}
    assert not names & {"nv_energy", "nv_energy_abs", "nv_average_power", "nv_fb_mem_used"}
    m0 = next(m for m in msgs if m.tags["type-id"] == "00000000:07:00.0")
    assert m0.meta["uuid"] == "GPU-11111111-2222-3333-4444-555555555555"
    assert m0.meta["serial"] == "1320221012345" and m0.meta["board_number"] == "692-2G506-0200-002"
    m1 = next(m for m in msgs if m.tags["type-id"] == "00000000:81:00.0")
    assert "board_number" not in m1.meta and m1.meta["serial"] == "1325021098765"

    for excl in (["1"], ["00000000:81:00.0"]):
        c = make(NvidiaCollector, {})
        c.init({"exclude_devices": excl, "add_pci_info_tag": True})
        msgs = collect(c)
        assert {m.tags["type-id"] for m in msgs} == {"0"}
        assert all(m.tags["pci_identifier"] == "00000000:07:00.0" for m in msgs)
        c.close()


def test_nvidia_mig(nvml: Any) -> None:
    c = make(NvidiaCollector, {})
    c.init({"process_mig_devices": True, "add_uuid_meta": True})
    msgs = collect(c)
    mig = [m for m in msgs if m.tags.get("stype") == "mig"]
    assert values(mig, "stype-id") == {
        ("nv_fb_mem_total", "0"): 4864.0,
        ("nv_fb_mem_used", "0"): 13.0,
        ("nv_temp", "0"): 54.0,
        ("nv_ecc_mode", "0"): "N/A",  # not supported on the instance
        ("nv_fb_mem_total", "2"): 19968.0,
        ("nv_fb_mem_used", "2"): 2048.0,
        ("nv_temp", "2"): 54.0,
        ("nv_ecc_mode", "2"): "N/A",
    }
    # no NVLink sums for MIG instances (upstream sends zeros tagged with the MIG's stype-id)
    sums = [m for m in msgs if m.name == "nv_nvlink_crc_errors_sum"]
    assert [m.tags for m in sums] == [
        {"type": "accelerator", "type-id": "0", "stype": "nvlink"},
        {"type": "accelerator", "type-id": "1", "stype": "nvlink"},
    ]
    assert all(m.tags["type-id"] == "0" for m in mig)
    assert {m.meta["uuid"] for m in mig} == {
        "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "MIG-ffffffff-1111-2222-3333-444444444444",
    }
    c = make(NvidiaCollector, {})
    c.init({"process_mig_devices": True, "use_slice_for_mig_device": True})
    assert {m.tags["stype-id"] for m in collect(c) if m.tags.get("stype") == "mig"} == {"1g.5gb", "3g.20gb"}
    c = make(NvidiaCollector, {})
    c.init({"process_mig_devices": True, "use_uuid_for_mig_device": True})
    assert {m.tags["stype-id"] for m in collect(c) if m.tags.get("stype") == "mig"} == {
        "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "MIG-ffffffff-1111-2222-3333-444444444444",
    }


def test_nvidia_library_missing(nvml: Any) -> None:
    c = make(NvidiaCollector, {})

    def no_module() -> Any:
        raise ImportError("No module named 'pynvml'")

    c.nvml_loader = no_module
    with pytest.raises(CollectorInitError) as e:
        c.init({})
    assert str(e.value) == "nvidia: NVML library not found (install nvidia-ml-py and the NVIDIA driver)"
    nvml.INIT_ERROR = nvml.NVML_ERROR_LIBRARY_NOT_FOUND
    with pytest.raises(CollectorInitError, match=r"^nvidia: NVML library not found \(install nvidia-ml-py"):
        make(NvidiaCollector, {}).init({})
    with pytest.raises(CollectorInitError, match="unknown option"):
        make(NvidiaCollector, {}).init({"send_meta": True})


# ----------------------------------------------------------------------------- rocm_smi


def gpu_metrics_v1_3(**over: int) -> bytes:
    """A kernel gpu_metrics_v1_3 table (v1_1 layout + firmware timestamp + voltages + throttle)."""
    f = {
        "temperature_edge": 35,
        "temperature_hotspot": 40,
        "temperature_mem": 38,
        "temperature_vrgfx": 33,
        "temperature_vrsoc": 34,
        "temperature_vrmem": 32,
        "average_gfx_activity": 75,
        "average_umc_activity": 20,
        "average_mm_activity": 0,
        "average_socket_power": 300,
        "average_gfxclk_frequency": 1700,
        "average_socclk_frequency": 1090,
        "average_uclk_frequency": 1600,
        "average_vclk0_frequency": 0,
        "average_dclk0_frequency": 0,
        "average_vclk1_frequency": 0,
        "average_dclk1_frequency": 0,
    }
    f.update(over)
    body = struct.pack(
        "<HBB6H3HHQQ7H7HIHHHHII4H",
        120,
        1,
        3,
        f["temperature_edge"],
        f["temperature_hotspot"],
        f["temperature_mem"],
        f["temperature_vrgfx"],
        f["temperature_vrsoc"],
        f["temperature_vrmem"],
        f["average_gfx_activity"],
        f["average_umc_activity"],
        f["average_mm_activity"],
        f["average_socket_power"],
        123456789,  # energy_accumulator
        987654321,  # system_clock_counter
        f["average_gfxclk_frequency"],
        f["average_socclk_frequency"],
        f["average_uclk_frequency"],
        f["average_vclk0_frequency"],
        f["average_dclk0_frequency"],
        f["average_vclk1_frequency"],
        f["average_dclk1_frequency"],
        *(0,) * 7,  # current clocks
        0,  # throttle_status
        0,  # fan
        16,  # pcie width
        160,  # pcie speed
        0,  # padding
        1000,  # gfx_activity_acc
        2000,  # mem_activity_acc
        45,
        46,
        47,
        48,  # temperature_hbm
    )
    return body + struct.pack("<QHHHHQ", 1, 800, 900, 1200, 0, 0)  # v1_2/v1_3 additions


ROCM_EXPECTED = {
    "rocm_gfx_util": 75,
    "rocm_umc_util": 20,
    "rocm_mm_util": 0,
    "rocm_avg_power": 300,
    "rocm_temp_mem": 38,
    "rocm_temp_hotspot": 40,
    "rocm_temp_edge": 35,
    "rocm_temp_vrgfx": 33,
    "rocm_temp_vrsoc": 34,
    "rocm_temp_vrmem": 32,
    "rocm_gfx_clock": 1700,
    "rocm_soc_clock": 1090,
    "rocm_u_clock": 1600,
    "rocm_v0_clock": 0,
    "rocm_v1_clock": 0,
    "rocm_d0_clock": 0,
    "rocm_d1_clock": 0,
}


def _no_library() -> Any:
    raise OSError("librocm_smi64.so: cannot open shared object file")


@pytest.fixture
def drm_root(tmp_path: Path) -> str:
    root = tmp_path / "root"
    cls = root / "sys" / "class" / "drm"
    cls.mkdir(parents=True)
    for card, addr, vendor, blob in (
        ("card0", "0000:03:00.0", "0x1a03", None),  # BMC VGA
        ("card1", "0000:c1:00.0", "0x1002", gpu_metrics_v1_3()),
        ("card2", "0000:e1:00.0", "0x1002", gpu_metrics_v1_3(average_gfx_activity=5)),
    ):
        dev = root / "sys" / "devices" / "pci0000:00" / addr
        dev.mkdir(parents=True)
        (dev / "vendor").write_text(vendor + "\n")
        if blob is not None:
            (dev / "gpu_metrics").write_bytes(blob)
            (dev / "serial_number").write_text(f"SERIAL-{addr}\n")
        (cls / card).mkdir()
        (cls / card / "device").symlink_to(dev)
    (cls / "card1-DP-1").mkdir()
    return str(root)


def test_rocm_smi_sysfs(drm_root: str) -> None:
    c = make(RocmSmiCollector, {}, root=drm_root, library_loader=_no_library)
    c.init({"add_serial_meta": True})
    msgs = collect(c)
    g0 = [m for m in msgs if m.tags["type-id"] == "0"]
    assert {m.name: m.value for m in g0 if m.name != "rocm_temp_hbm"} == ROCM_EXPECTED
    assert values([m for m in g0 if m.name == "rocm_temp_hbm"], "stype-id") == {
        ("rocm_temp_hbm", str(i)): 45 + i for i in range(4)
    }
    hbm = next(m for m in g0 if m.name == "rocm_temp_hbm")
    assert hbm.tags == {"type": "accelerator", "type-id": "0", "stype": "device", "stype-id": "0"}
    assert all(kind(m.value) == "uint" for m in msgs)
    assert g0[0].meta == {"source": "RocmSmiCollector", "group": "AMD", "serial": "SERIAL-0000:c1:00.0"}
    assert next(m.value for m in msgs if m.name == "rocm_gfx_util" and m.tags["type-id"] == "1") == 5

    c = make(RocmSmiCollector, {}, root=drm_root, library_loader=_no_library)
    c.init({"use_pci_info_as_type_id": True, "exclude_devices": ["1"], "exclude_metrics": ["rocm_temp_hbm"]})
    msgs = collect(c)
    assert {m.tags["type-id"] for m in msgs} == {"00000000:C1:00.0"} and len(msgs) == 17
    c = make(RocmSmiCollector, {}, root=drm_root, library_loader=_no_library)
    c.init({"add_pci_info_tag": True, "exclude_devices": ["00000000:C1:00.0"]})
    msgs = collect(c)
    assert {(m.tags["type-id"], m.tags["pci_identifier"]) for m in msgs} == {("1", "00000000:E1:00.0")}


class FakeRocmLibrary:
    """Stands in for the ctypes binding: one GPU whose table is ROCm SMI's structure."""

    closed = False

    def sources(self) -> list[GpuSource]:
        blob = gpu_metrics_v1_3() + bytes(4096)  # the library structure is longer than the v1_3 prefix
        blob = blob[:2] + bytes([1, 5]) + blob[4:]  # its header may report a newer kernel table revision
        return [
            GpuSource(
                0, pci_id_from_bdf((0 << 32) | (0xC1 << 8) | (0 << 3) | 0), "LIBSERIAL", lambda: blob, True
            )
        ]

    def close(self) -> None:
        FakeRocmLibrary.closed = True


def test_rocm_smi_library(tmp_path: Path) -> None:
    c = make(RocmSmiCollector, {}, root=str(tmp_path), library_loader=FakeRocmLibrary)
    c.init({"use_pci_info_as_type_id": True, "add_serial_meta": True})
    msgs = collect(c)
    assert {m.name: m.value for m in msgs if m.name != "rocm_temp_hbm"} == ROCM_EXPECTED
    assert {m.tags["type-id"] for m in msgs} == {"00000000:C1:00.0"}
    assert msgs[0].meta["serial"] == "LIBSERIAL"
    c.close()
    assert FakeRocmLibrary.closed


def test_rocm_smi_parsing_and_missing(tmp_path: Path) -> None:
    assert pci_id_from_bdf((0x1 << 32) | (0x2A << 8) | (0x3 << 3) | 0x1) == "00000001:2A:03.1"
    v1_0 = struct.pack(
        "<HBB4xQ6H3HHI7H7HIHBB",
        76,
        1,
        0,
        5,
        *range(1, 7),
        50,
        10,
        0,
        200,
        77,
        *range(100, 107),
        *(0,) * 7,
        0,
        0,
        16,
        80,
    )
    t = parse_gpu_metrics(v1_0)
    assert t is not None and t["temperature_edge"] == 1 and t["average_gfx_activity"] == 50
    assert (
        t["average_socket_power"] == 200
        and t["average_gfxclk_frequency"] == 100
        and "temperature_hbm" not in t
    )
    assert (
        parse_gpu_metrics(struct.pack("<HBB", 100, 1, 4) + bytes(100)) is None
    )  # v1_4 layout not understood
    assert parse_gpu_metrics(struct.pack("<HBB", 100, 2, 1) + bytes(100)) is None
    c = make(RocmSmiCollector, {}, root=str(tmp_path), library_loader=_no_library)
    with pytest.raises(CollectorInitError) as e:
        c.init({})
    assert "ROCm SMI library (librocm_smi64.so) not found" in str(e.value)


# ----------------------------------------------------------------------------- likwid


def test_formula() -> None:
    assert Formula("1.0E-06*(A+B*2)/time")({"A": 1e6, "B": 2e6, "time": 2.0}) == 2.5
    # gval precedence (the shared evaluator): unary minus binds tighter than **, % is fmod
    assert Formula("-a ** 2 % 5")({"a": 3.0}) == 4.0
    assert Formula("-(a ** 2) % 5")({"a": 3.0}) == -4.0
    assert Formula("a/b")({"a": 1.0, "b": 0.0}) == float("inf")
    assert Formula("a/b")({"a": -1.0, "b": 0.0}) == float("-inf")
    nan = Formula("a/b")({"a": 0.0, "b": 0.0})
    assert nan != nan
    assert Formula("PMC0+FIXC1").variables == {"PMC0", "FIXC1"}
    env = {"a": 1.0, "b": 2.0, "c": 3.0}
    for bad in ("__import__('os').system('x')", "a if b else c", "a.b", "f(a)", "[a]", "a < b", "'s'", "a +"):
        with pytest.raises(FormulaError):  # rejected when compiled or, at the latest, when evaluated
            Formula(bad)(env)
    with pytest.raises(FormulaError, match="b"):
        Formula("a+b")({"a": 1.0})


def _cpu_tree(root: Path) -> None:
    """Two sockets with one 2-way SMT core each: cpu0/cpu2 on socket 0, cpu1/cpu3 on socket 1."""
    base = root / "sys" / "devices" / "system" / "cpu"
    for cpu in range(4):
        topo = base / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        sock = cpu % 2
        (topo / "physical_package_id").write_text(f"{sock}\n")
        (topo / "core_id").write_text("0\n")
        (topo / "die_id").write_text("0\n")
        (topo / "core_cpus_list").write_text(f"{sock},{sock + 2}\n")
    freq = base / "cpu0" / "cpufreq"
    freq.mkdir()
    (freq / "base_frequency").write_text("2000000\n")  # kHz


class FakeLikwid:
    """Stands in for liblikwid: fixed counter values per hardware-thread index."""

    VALUES = {
        "INSTR_RETIRED_ANY": lambda tid: (tid + 1) * 1e9,
        "CPU_CLK_UNHALTED_CORE": lambda tid: 2e9,
        "FP_ARITH_INST_RETIRED_SCALAR_DOUBLE": lambda tid: float("nan") if tid == 3 else (tid + 1) * 1e6,
    }

    def __init__(self, path: str) -> None:
        self.path = path
        self.measured: list[tuple[str, list[int], float]] = []
        self.threads: set[str] = set()
        self.access: tuple[str, list[int]] | None = None
        self.closed = False

    def _thread(self) -> None:
        import threading

        self.threads.add(threading.current_thread().name)

    def topology_init(self) -> int:
        self._thread()
        return 0

    def setup_access(self, mode: str, cpus: list[int]) -> None:
        self._thread()
        self.access = (mode, list(cpus))

    def cycle_clock(self) -> float:
        return 3e9

    def measure(
        self, events: str, ncounters: int, cpus: list[int], duration: float
    ) -> tuple[list[list[float]], float]:
        self._thread()
        self.measured.append((events, list(cpus), duration))
        names = [e.split(":")[0] for e in events.split(",")]
        assert len(names) == ncounters
        return [[self.VALUES[n](t) for t in range(len(cpus))] for n in names], 1.0

    def close(self) -> None:
        self.closed = True


LIKWID_CONFIG = {
    "eventsets": [
        {
            "events": {"FIXC1": "CPU_CLK_UNHALTED_CORE", "FIXC0": "INSTR_RETIRED_ANY"},
            "metrics": [
                {
                    "name": "ipc",
                    "calc": "FIXC0/FIXC1",
                    "type": "hwthread",
                    "publish": True,
                    "send_core_total_values": True,
                    "send_socket_total_values": True,
                    "send_node_total_values": True,
                },
                {
                    "name": "clock",
                    "calc": "1.E-06*FIXC1/time",
                    "type": "hwthread",
                    "publish": True,
                    "unit": "MHz",
                },
                {"name": "instr", "calc": "FIXC0", "type": "socket", "publish": False},
                {
                    "name": "cycles_per_ns",
                    "calc": "FIXC1*inverseClock*gotime",
                    "type": "node",
                    "publish": True,
                },
                {"name": "bad", "calc": "FIXC9*2", "type": "hwthread", "publish": True},
                {"name": "badtype", "calc": "FIXC0", "type": "cluster", "publish": True},
            ],
        },
        {
            "events": {"PMC0": "FP_ARITH_INST_RETIRED_SCALAR_DOUBLE"},
            "metrics": [
                {
                    "name": "flops_dp",
                    "calc": "1.0E-06*PMC0/time",
                    "type": "hwthread",
                    "publish": True,
                    "unit": "MFLOP/s",
                }
            ],
        },
    ],
    "globalmetrics": [
        {"name": "instr_per_sec", "calc": "instr/gotime", "type": "socket", "publish": True},
        {"name": "bad_global", "calc": "nothing*2", "type": "socket", "publish": True},
    ],
    "lockfile_path": "",
}


def _likwid(tmp_path: Path, config: dict[str, Any], **attrs: Any) -> tuple[LikwidCollector, FakeLikwid]:
    root = tmp_path / "root"
    if not root.exists():
        _cpu_tree(root)
    holder: list[FakeLikwid] = []

    def loader(path: str) -> FakeLikwid:
        holder.append(FakeLikwid(path))
        return holder[0]

    c = make(LikwidCollector, {}, root=str(root), library_loader=loader, **attrs)
    c.init(config)
    return c, holder[0]


def test_likwid_metrics(tmp_path: Path) -> None:
    c, lib = _likwid(tmp_path, LIKWID_CONFIG)
    assert lib.path == "liblikwid.so" and lib.access == ("direct", [0, 1, 2, 3])
    msgs = collect(c, 0.5)
    assert [e for e, _, _ in lib.measured] == [
        "INSTR_RETIRED_ANY:FIXC0,CPU_CLK_UNHALTED_CORE:FIXC1",
        "FP_ARITH_INST_RETIRED_SCALAR_DOUBLE:PMC0",
    ]
    assert all(d == 0.5 and cpus == [0, 1, 2, 3] for _, cpus, d in lib.measured)
    assert len(lib.threads) == 1 and next(iter(lib.threads)).startswith("likwid")
    node = [m for m in msgs if m.name == "cycles_per_ns"]
    # upstream emits a `node` metric once per hardware thread, with identical tags
    assert len(node) == 4 and all(m.tags == {"type": "node"} and m.value == 0.5 for m in node)
    rest = [m for m in msgs if m.name != "cycles_per_ns"]
    assert values(rest, "type", "type-id") == {
        ("ipc", "hwthread", "0"): 0.5,
        ("ipc", "hwthread", "1"): 1.0,
        ("ipc", "hwthread", "2"): 1.5,
        ("ipc", "hwthread", "3"): 2.0,
        ("ipc", "core", "0"): 2.0,
        ("ipc", "core", "1"): 3.0,
        ("ipc", "socket", "0"): 2.0,
        ("ipc", "socket", "1"): 3.0,
        ("ipc", "node", None): 5.0,
        ("clock", "hwthread", "0"): 2000.0,
        ("clock", "hwthread", "1"): 2000.0,
        ("clock", "hwthread", "2"): 2000.0,
        ("clock", "hwthread", "3"): 2000.0,
        ("flops_dp", "hwthread", "0"): 1.0,
        ("flops_dp", "hwthread", "1"): 2.0,
        ("flops_dp", "hwthread", "2"): 3.0,
        ("instr_per_sec", "socket", "0"): 2e9,
        ("instr_per_sec", "socket", "1"): 4e9,
    }
    by = {(m.name, m.tags["type"], m.tags.get("type-id")): m for m in rest}
    assert by[("clock", "hwthread", "0")].meta == {"group": "PerfCounter", "unit": "MHz"}
    assert by[("ipc", "hwthread", "0")].meta == {"group": "PerfCounter"}
    assert by[("ipc", "node", None)].tags == {"type": "node"}
    assert all(kind(m.value) == "float" for m in msgs)
    c.close()
    assert lib.closed


def test_likwid_invalid_to_zero_and_lock(tmp_path: Path) -> None:
    c, lib = _likwid(tmp_path, {**LIKWID_CONFIG, "invalid_to_zero": True})
    got = values([m for m in collect(c, 1.0) if m.name == "flops_dp"], "type-id")
    assert got[("flops_dp", "3")] == 0.0
    c.close()

    lock = tmp_path / "likwid.lock"
    c, lib = _likwid(tmp_path, {**LIKWID_CONFIG, "lockfile_path": str(lock)})
    assert collect(c, 1.0) and lock.exists()  # created, owned by us
    c.getuid = lambda: os.getuid() + 1  # another user owns the counters now
    before = len(lib.measured)
    assert collect(c, 1.0) == [] and collect(c, 1.0) == []
    assert len(lib.measured) == before
    c.close()


def test_likwid_init_failures(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _cpu_tree(root)

    def missing(path: str) -> Any:
        raise OSError(f"{path}: cannot open shared object file: No such file or directory")

    c = make(LikwidCollector, {}, root=str(root), library_loader=missing)
    with pytest.raises(CollectorInitError) as e:
        c.init(LIKWID_CONFIG)
    assert str(e.value).startswith("likwid: cannot load liblikwid.so (install LIKWID or set liblikwid_path)")
    only_bad = {
        "eventsets": [
            {
                "events": {"PMC0": "X"},
                "metrics": [{"name": "b", "calc": "PMC1", "type": "hwthread", "publish": True}],
            }
        ]
    }
    with pytest.raises(CollectorInitError, match="no LIKWID eventset or metric usable"):
        make(LikwidCollector, {}, root=str(root), library_loader=FakeLikwid).init(only_bad)
    with pytest.raises(CollectorInitError, match="access_mode"):
        make(LikwidCollector, {}, root=str(root), library_loader=FakeLikwid).init(
            {**LIKWID_CONFIG, "access_mode": "magic"}
        )
    c, lib = _likwid(tmp_path, {**LIKWID_CONFIG, "access_mode": "accessdaemon"})
    assert lib.access == ("accessdaemon", [0, 1, 2, 3])
    c.close()


# ----------------------------------------------------------------------------- the real loaders


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="this machine has an NVIDIA driver")
def test_nvidia_real_binding_without_driver() -> None:
    """The real pynvml (when installed) or its absence both give the one clear message."""
    with pytest.raises(CollectorInitError, match=r"^nvidia: NVML library not found \(install nvidia-ml-py"):
        NvidiaCollector().init({})


def test_likwid_real_loader_missing_library(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _cpu_tree(root)
    c = LikwidCollector(root=str(root))
    cfg = {**LIKWID_CONFIG, "liblikwid_path": str(tmp_path / "liblikwid.so")}
    with pytest.raises(CollectorInitError, match=r"^likwid: cannot load .*liblikwid\.so \(install LIKWID"):
        c.init(cfg)


@pytest.mark.skipif(ctypes.util.find_library("rocm_smi64") is not None, reason="ROCm SMI is installed")
def test_rocm_smi_real_loader_without_rocm(tmp_path: Path, drm_root: str) -> None:
    with pytest.raises(CollectorInitError, match="ROCm SMI library"):
        RocmSmiCollector(root=str(tmp_path / "empty")).init({})
    c = RocmSmiCollector(root=drm_root)  # falls back to sysfs
    c.init({})
    assert len(collect(c)) == 2 * (17 + 4)
