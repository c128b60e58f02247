"""File-based collectors (spec §6.1-6.7, 6.9-6.15, 6.20, 6.23) against fixture trees and the real /proc, /sys.

Fixture tests stage `tests/data/collector/sys/<collector>/snap1` as the collector's root, take the
baseline at T0, lay `snap2` over it and read at T0 + Δt with an injected clock, so rates and
percentages can be compared with hand-computed numbers exactly.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from cccollector.collectors import CollectorInitError, load_all
from cccollector.topology import parse_cpu_list, read_topology
from cccommon.message import CCMessage, UInt

DATA = Path(__file__).resolve().parents[1] / "data" / "collector" / "sys"
REGISTRY = load_all()
T0 = 1_719_840_000_000_000_000  # ns
SEC = 1_000_000_000


# ----------------------------------------------------------------------------- helpers


class Clock:
    """Injected time source (ns); tests move it forward explicitly."""

    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def stage(tmp_path: Path, name: str, snap: str = "snap1") -> Path:
    """Copy (or lay over) a fixture snapshot into tmp_path/root and return the root."""
    root = tmp_path / "root"
    shutil.copytree(DATA / name / snap, root, dirs_exist_ok=True, symlinks=True)
    return root


def make(kind: str, root: Path | str, config: dict[str, Any] | None = None, clock: Clock | None = None):
    c = REGISTRY[kind](root=str(root))
    c.clock = clock or Clock()
    c.init({} if config is None else config)
    return c


def collect(c, interval: float = 10.0) -> list[CCMessage]:
    out: list[CCMessage] = []
    c.read(interval, out.append)
    return out


def pick(msgs: Iterable[CCMessage], name: str, **tags: str) -> list[CCMessage]:
    return [m for m in msgs if m.name == name and all(m.tags.get(k) == v for k, v in tags.items())]


def one(msgs: Iterable[CCMessage], name: str, **tags: str) -> CCMessage:
    found = pick(msgs, name, **tags)
    assert len(found) == 1, f"{name} {tags}: {len(found)} messages"
    return found[0]


def value(msgs: Iterable[CCMessage], name: str, **tags: str) -> Any:
    return one(msgs, name, **tags).fields["value"]


def kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, UInt):
        return "uint"
    if isinstance(v, int):
        return "int"
    return type(v).__name__


def check_common(msgs: Iterable[CCMessage], source: str, group: str) -> None:
    for m in msgs:
        assert m.meta["source"] == source and m.meta["group"] == group, m
        assert m.time > 0 and list(m.fields) == ["value"], m
        assert "hostname" not in m.tags


def real(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} not available on this machine")


def test_registry_has_all_file_collectors() -> None:
    mine = {
        "cpustat",
        "memstat",
        "loadavg",
        "netstat",
        "diskstat",
        "iostat",
        "ibstat",
        "tempstat",
        "cpufreq",
        "cpufreq_cpuinfo",
        "numastats",
        "schedstat",
        "rapl",
        "self",
        "nfsiostat",
        "slurm_cgroup",
    }
    assert mine <= set(REGISTRY)
    for k in mine:
        assert REGISTRY[k].type == k and REGISTRY[k].parallel


@pytest.mark.parametrize(
    "kind_,config",
    [
        ("cpustat", {}),
        ("memstat", {}),
        ("loadavg", {}),
        ("netstat", {"include_devices": ["lo"]}),
        ("diskstat", {}),
        ("iostat", {}),
        ("ibstat", {}),
        ("tempstat", {}),
        ("cpufreq", {}),
        ("cpufreq_cpuinfo", {}),
        ("numastats", {}),
        ("schedstat", {}),
        ("rapl", {}),
        ("self", {"read_mem_stats": True}),
        ("nfsiostat", {}),
        ("slurm_cgroup", {}),
    ],
)
def test_missing_tree_fails_init(tmp_path: Path, kind_: str, config: dict) -> None:
    with pytest.raises(CollectorInitError) as e:
        make(kind_, tmp_path / "nothing-here", config)
    msg = str(e.value)
    assert kind_ in msg and "\n" not in msg


@pytest.mark.parametrize(
    "kind_", ["cpustat", "memstat", "iostat", "tempstat", "rapl", "self", "slurm_cgroup"]
)
def test_strict_collectors_reject_unknown_options(tmp_path: Path, kind_: str) -> None:
    with pytest.raises(CollectorInitError, match="unknown option"):
        make(kind_, tmp_path, {"send_meta": True})


# ----------------------------------------------------------------------------- topology


def test_parse_cpu_list() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpu_list("") == []
    assert parse_cpu_list("5") == [5]
    with pytest.raises(ValueError):
        parse_cpu_list("a-b")


def test_topology_fixture(tmp_path: Path) -> None:
    topo = read_topology(str(stage(tmp_path, "cpufreq")))
    assert topo.num_hwthreads == 8
    assert (topo.num_sockets, topo.num_dies, topo.num_cores, topo.num_numa_domains, topo.smt_width) == (
        2,
        2,
        4,
        2,
        2,
    )
    t5 = topo.by_id[5]
    assert (t5.core, t5.socket, t5.die, t5.numa, t5.smt, t5.core_cpus) == (1, 0, 0, 0, 1, (1, 5))
    t2 = topo.by_id[2]
    assert (t2.core, t2.socket, t2.numa, t2.smt) == (0, 1, 1, 0)
    assert [t.id for t in topo.first_threads_of_cores()] == [0, 1, 2, 3]


def test_topology_real_machine() -> None:
    real("/sys/devices/system/cpu/cpu0/topology")
    topo = read_topology("/")
    online = parse_cpu_list(Path("/sys/devices/system/cpu/online").read_text())
    assert set(online) <= {t.id for t in topo.hwthreads}
    assert topo.num_sockets >= 1 and topo.num_cores >= 1 and topo.smt_width >= 1


# ----------------------------------------------------------------------------- cpustat


def test_cpustat_fixture_exact_percentages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cccollector.collectors.cpustat as mod

    monkeypatch.setattr(mod.os, "sysconf", lambda name: 100)  # SC_CLK_TCK
    clock = Clock()
    root = stage(tmp_path, "cpustat")
    c = make("cpustat", root, {}, clock)
    stage(tmp_path, "cpustat", "snap2")
    clock.t = T0 + 10 * SEC
    msgs = collect(c)
    check_common(msgs, "CpustatCollector", "CPU")
    # value = Δjiffies / 10 s / 100 Hz × 100
    # cpu0: user +250, system +250, idle +500
    assert value(msgs, "cpu_user", type="hwthread", **{"type-id": "0"}) == 25.0
    assert value(msgs, "cpu_system", type="hwthread", **{"type-id": "0"}) == 25.0
    assert value(msgs, "cpu_idle", type="hwthread", **{"type-id": "0"}) == 50.0
    assert value(msgs, "cpu_used", type="hwthread", **{"type-id": "0"}) == 50.0
    # cpu1: user +750, idle +250
    assert value(msgs, "cpu_user", **{"type-id": "1"}) == 75.0
    assert value(msgs, "cpu_used", **{"type-id": "1"}) == 75.0
    # cpu2: idle +1000
    assert value(msgs, "cpu_idle", **{"type-id": "2"}) == 100.0
    assert value(msgs, "cpu_used", **{"type-id": "2"}) == 0.0
    # cpu3: user +500 (of which guest 250), iowait +250, idle +250: guest counted twice (upstream)
    assert value(msgs, "cpu_iowait", **{"type-id": "3"}) == 25.0
    assert value(msgs, "cpu_guest", **{"type-id": "3"}) == 25.0
    assert value(msgs, "cpu_used", **{"type-id": "3"}) == 100.0
    # node line = sum over threads, not normalised: user 1500 → 150 %, idle 2000 → 200 %
    assert value(msgs, "cpu_user", type="node") == 150.0
    assert value(msgs, "cpu_idle", type="node") == 200.0
    assert value(msgs, "cpu_used", type="node") == 225.0  # 150 + 25 + 25 + 25 (guest) ; idle excluded
    assert value(msgs, "cpu_nice", type="node") == 0.0
    # unit is a tag, num_cpus an int without unit
    for m in msgs:
        if m.name != "num_cpus":
            assert m.tags["unit"] == "Percent" and "unit" not in m.meta and kind(m.value) == "float"
    n = one(msgs, "num_cpus")
    assert n.tags == {"type": "node"} and n.value == 4 and kind(n.value) == "int"
    assert len(msgs) == 5 * 11 + 1
    assert all(m.time == T0 + 10 * SEC for m in msgs)
    assert "type-id" not in one(msgs, "cpu_user", type="node").tags


def test_cpustat_exclude_and_hotplug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cccollector.collectors.cpustat as mod

    monkeypatch.setattr(mod.os, "sysconf", lambda name: 100)
    clock = Clock()
    root = stage(tmp_path, "cpustat")
    c = make("cpustat", root, {"exclude_metrics": ["cpu_idle", "cpu_nice"]}, clock)
    stage(tmp_path, "cpustat", "snap2")
    text = (root / "proc/stat").read_text().replace("intr ", "cpu4 10 0 10 100 0 0 0 0 0 0\nintr ", 1)
    (root / "proc/stat").write_text(text)
    clock.t += 10 * SEC
    msgs = collect(c)
    names = {m.name for m in msgs}
    assert "cpu_idle" not in names and "cpu_nice" not in names and "cpu_used" not in names
    assert value(msgs, "num_cpus") == 5  # the hot-plugged cpu4 is counted …
    assert not pick(msgs, "cpu_user", **{"type-id": "4"})  # … but has no baseline
    c2 = make("cpustat", root, {"exclude_metrics": ["num_cpus"]}, clock)
    assert not pick(collect(c2), "num_cpus")


def test_cpustat_real_machine() -> None:
    real("/proc/stat")
    c = make("cpustat", "/", {}, None)
    c.clock = time.time_ns
    time.sleep(0.05)
    collect(c)
    time.sleep(0.05)
    msgs = collect(c)
    ncpu = sum(
        1 for line in Path("/proc/stat").read_text().splitlines() if line[:3] == "cpu" and line[3].isdigit()
    )
    assert value(msgs, "num_cpus") == ncpu
    assert len(pick(msgs, "cpu_user", type="hwthread")) == ncpu
    for m in pick(msgs, "cpu_used", type="hwthread"):
        assert -1.0 <= m.value <= 300.0  # jiffy granularity over a short Δt
    assert {m.name for m in msgs} == {*mod_columns(), "cpu_used", "num_cpus"}


def mod_columns() -> tuple[str, ...]:
    from cccollector.collectors.cpustat import COLUMNS

    return COLUMNS


# ----------------------------------------------------------------------------- memstat


def test_memstat_fixture_node_and_numa(tmp_path: Path) -> None:
    root = stage(tmp_path, "memstat")
    c = make("memstat", root, {"numa_stats": True})
    msgs = collect(c)
    check_common(msgs, "MemstatCollector", "Memory")
    node = [m for m in msgs if m.tags == {"type": "node"}]
    assert len(node) == 33  # every listed metric + mem_used, also when the key is missing
    assert value(node, "mem_total") == 263856148.0
    assert one(node, "mem_total").meta["unit"] == "kB"
    # MemTotal − MemFree − Buffers − Cached − Shmem
    assert value(node, "mem_used") == 263856148.0 - 201234560 - 412348 - 30123456 - 2123456
    assert one(node, "mem_used").meta["unit"] == "kB"
    # unit-less HugePages_* lines are parsed (upstream quirk fixed), without meta unit
    assert value(node, "mem_hugepages_total") == 512.0
    assert value(node, "mem_hugepages_reserved") == 16.0
    assert "unit" not in one(node, "mem_hugepages_free").meta
    # missing key (no DirectMap4M on x86): 0 without unit
    assert value(node, "mem_direct_mapped_4m") == 0.0 and "unit" not in one(node, "mem_direct_mapped_4m").meta
    assert value(node, "mem_vmalloc_total") == 34359738367.0
    assert all(kind(m.value) == "float" for m in msgs)
    n0 = [m for m in msgs if m.tags == {"type": "memoryDomain", "type-id": "0"}]
    n1 = [m for m in msgs if m.tags == {"type": "memoryDomain", "type-id": "1"}]
    assert len(n0) == len(n1) == 33
    # NUMA meminfo has no Buffers: mem_used = MemTotal − MemFree only (upstream presence rule)
    assert value(n0, "mem_used") == 131928074.0 - 100617280
    assert value(n1, "mem_used") == 131928074.0 - 100000000
    assert value(n1, "mem_hugepages_free") == 100.0
    assert value(n0, "mem_cached") == 0.0  # not in node meminfo


def test_memstat_options(tmp_path: Path) -> None:
    root = stage(tmp_path, "memstat")
    msgs = collect(make("memstat", root, {"exclude_metrics": ["mem_used", "mem_free"], "node_stats": True}))
    assert not pick(msgs, "mem_used") and not pick(msgs, "mem_free") and len(msgs) == 31
    msgs = collect(make("memstat", root, {"node_stats": False, "numa_stats": True}))
    assert {m.tags["type"] for m in msgs} == {"memoryDomain"}
    from cccollector.collectors.memstat import METRICS

    with pytest.raises(CollectorInitError, match="no metrics"):
        make("memstat", root, {"exclude_metrics": [n for _, n in METRICS] + ["mem_used"]})
    with pytest.raises(CollectorInitError, match="node_stats"):
        make("memstat", root, {"node_stats": "yes"})


def test_memstat_real_machine() -> None:
    real("/proc/meminfo")
    c = make("memstat", "/", {"numa_stats": os.path.isdir("/sys/devices/system/node/node0")})
    for _ in range(2):
        msgs = collect(c)
    total = value(msgs, "mem_total", type="node")
    assert total > 0 and 0 < value(msgs, "mem_used", type="node") < total
    assert value(msgs, "mem_free", type="node") <= total


# ----------------------------------------------------------------------------- loadavg


def test_loadavg_fixture(tmp_path: Path) -> None:
    root = stage(tmp_path, "loadavg")
    c = make("loadavg", root, {"exclude_metrics": ["load_five"], "unknown_key": 1})  # lenient upstream
    msgs = collect(c)
    check_common(msgs, "LoadavgCollector", "LOAD")
    assert [(m.name, m.value, kind(m.value)) for m in msgs] == [
        ("load_one", 1.25, "float"),
        ("load_fifteen", 0.1, "float"),
        ("proc_run", 3, "int"),
        ("proc_total", 812, "int"),
    ]
    assert all(m.tags == {"type": "node"} and "unit" not in m.meta for m in msgs)
    stage(tmp_path, "loadavg", "snap2")
    assert value(collect(c), "proc_total") == 830


def test_loadavg_real_machine() -> None:
    real("/proc/loadavg")
    c = make("loadavg", "/")
    collect(c)
    msgs = collect(c)
    assert {m.name for m in msgs} == {"load_one", "load_five", "load_fifteen", "proc_run", "proc_total"}
    assert value(msgs, "proc_total") >= value(msgs, "proc_run") >= 0


# ----------------------------------------------------------------------------- netstat


def test_netstat_fixture_aliases_and_rates(tmp_path: Path) -> None:
    clock = Clock()
    root = stage(tmp_path, "netstat")
    cfg = {
        "include_devices": ["enp5s0", "lo"],
        "interface_aliases": {"enp5s0": ["eno1", "ens1f0"]},
        "send_derived_values": True,
    }
    c = make("netstat", root, cfg, clock)
    clock.t += 10 * SEC
    first = collect(c)
    check_common(first, "NetstatCollector", "Network")
    assert len(first) == 8 and not [m for m in first if m.name.endswith("_bw")]  # no baseline: no rates yet
    eno1 = {"type": "node", "stype": "network", "stype-id": "eno1"}
    assert one(first, "net_bytes_in", **eno1).value == 1000000
    assert kind(one(first, "net_bytes_in", **eno1).value) == "int"
    assert one(first, "net_pkts_out", **eno1).meta["unit"] == "packets"
    assert {m.tags["stype-id"] for m in first} == {"eno1", "lo"}  # eno2, ib0 not included
    stage(tmp_path, "netstat", "snap2")
    clock.t += 10 * SEC
    msgs = collect(c)
    assert len(msgs) == 16
    # eno1: rx bytes +250000, rx pkts +500, tx bytes +500000, tx pkts +100 over 10 s
    assert value(msgs, "net_bytes_in_bw", **eno1) == 25000.0
    assert value(msgs, "net_pkts_in_bw", **eno1) == 50.0
    assert value(msgs, "net_bytes_out_bw", **eno1) == 50000.0
    assert value(msgs, "net_pkts_out_bw", **eno1) == 10.0
    assert one(msgs, "net_bytes_out_bw", **eno1).meta["unit"] == "bytes/sec"
    assert one(msgs, "net_pkts_in_bw", **eno1).meta["unit"] == "packets/sec"
    assert value(msgs, "net_bytes_in", **eno1) == 1250000
    assert value(msgs, "net_bytes_in_bw", **{"stype-id": "lo"}) == 200.0
    assert all(kind(m.value) == "float" for m in msgs if m.name.endswith("_bw"))


def test_netstat_options(tmp_path: Path) -> None:
    clock = Clock()
    root = stage(tmp_path, "netstat")
    with pytest.raises(CollectorInitError, match="include_devices"):
        make("netstat", root, {})  # the how-to's "netstat": {} reports nothing
    with pytest.raises(CollectorInitError, match="wlan0"):
        make("netstat", root, {"include_devices": ["wlan0"]})
    c = make(
        "netstat",
        root,
        {"include_devices": ["eno2"], "send_abs_values": False, "send_derived_values": True},
        clock,
    )
    assert collect(c) == []
    clock.t += 5 * SEC
    msgs = collect(c)
    assert sorted(m.name for m in msgs) == sorted(
        ["net_bytes_in_bw", "net_pkts_in_bw", "net_bytes_out_bw", "net_pkts_out_bw"]
    )
    assert all(m.value == 0.0 for m in msgs)


def test_netstat_real_machine() -> None:
    real("/proc/net/dev")
    c = make("netstat", "/", {"include_devices": ["lo"], "send_derived_values": True})
    c.clock = time.time_ns
    collect(c)
    time.sleep(0.02)
    msgs = collect(c)
    assert {m.name for m in msgs} == {
        "net_bytes_in",
        "net_pkts_in",
        "net_bytes_out",
        "net_pkts_out",
        "net_bytes_in_bw",
        "net_pkts_in_bw",
        "net_bytes_out_bw",
        "net_pkts_out_bw",
    }
    assert value(msgs, "net_bytes_in_bw") >= 0.0


# ----------------------------------------------------------------------------- diskstat


class FakeStatvfs:
    def __init__(self, bsize: int, blocks: int, bfree: int) -> None:
        self.f_bsize, self.f_blocks, self.f_bfree = bsize, blocks, bfree
        self.f_frsize, self.f_bavail = bsize, bfree // 2  # must not be used


def test_diskstat_fixture(tmp_path: Path) -> None:
    root = stage(tmp_path, "diskstat")
    table = {
        "/": FakeStatvfs(4096, 250_000_000, 125_000_000),  # 1024 GB, 512 GB free → 50 %
        "/scratch": FakeStatvfs(4096, 1_000_000_000, 100_000_000),  # 4096 GB, 409 GB → 90 %
        "/home": FakeStatvfs(1_048_576, 2000, 1000),  # 2 GB, 1 GB → 50 %
        "/mnt/usb disk": FakeStatvfs(4096, 0, 0),  # 0 blocks: skipped
        "/boot/efi": FakeStatvfs(4096, 1, 1),
        "/var/spool/slurm-tmpfs": FakeStatvfs(4096, 10**9, 0),
    }
    asked: list[str] = []

    def statfs(path: str) -> FakeStatvfs:
        mnt = "/" + os.path.relpath(path, root) if path != str(root) else "/"
        mnt = "/" if mnt == "/." else mnt
        asked.append(mnt)
        if mnt not in table:
            raise FileNotFoundError(path)
        return table[mnt]

    c = REGISTRY["diskstat"](root=str(root))
    c.statfs = statfs
    c.init({"exclude_mounts": ["slurm-tmpfs"]})
    msgs = collect(c)
    check_common(msgs, "DiskstatCollector", "Disk")
    assert asked == [
        "/",
        "/scratch",
        "/home",
        "/mnt/usb disk",
        "/mnt/gone",
    ]  # loop, boot, excluded, nfs skipped
    got = [(m.name, m.tags.get("device"), m.value, kind(m.value), m.meta["unit"]) for m in msgs]
    assert got == [
        ("disk_total", "/dev/nvme0n1p2", 1024, "uint", "GBytes"),
        ("disk_free", "/dev/nvme0n1p2", 512, "uint", "GBytes"),
        ("disk_total", "/dev/sda1", 4096, "uint", "GBytes"),
        ("disk_free", "/dev/sda1", 409, "uint", "GBytes"),  # 409.6 truncated
        ("disk_total", "/dev/mapper/vg0-home", 2, "uint", "GBytes"),
        ("disk_free", "/dev/mapper/vg0-home", 1, "uint", "GBytes"),
        ("part_max_used", None, 90, "int", "percent"),  # 100·(4096−409)//4096
    ]
    assert one(msgs, "part_max_used").tags == {"type": "node"}
    c.init({"exclude_metrics": ["disk_total", "disk_free"]})
    assert [m.name for m in collect(c)] == ["part_max_used"]


def test_diskstat_real_machine() -> None:
    real("/proc/self/mounts")
    c = make("diskstat", "/")
    msgs = collect(c)
    m = one(msgs, "part_max_used")
    assert kind(m.value) == "int" and 0 <= m.value <= 100
    for t in pick(msgs, "disk_total"):
        assert kind(t.value) == "uint" and t.tags["device"].startswith("/dev")
        assert value(msgs, "disk_free", device=t.tags["device"]) <= t.value


def test_diskstat_rereads_the_mount_table_only_after_a_change(tmp_path: Path) -> None:
    """The kernel flags /proc/self/mounts after a mount: the table is parsed again then, and
    only then. Needs mount(2) (root in a namespace that allows it)."""
    import subprocess

    real("/proc/self/mounts")
    c = make("diskstat", "/")
    if c._watch is None:
        pytest.skip("/proc/self/mounts cannot be polled here")
    parsed: list[int] = []
    orig = c._parse
    c._parse = lambda text: parsed.append(1) or orig(text)  # type: ignore[method-assign]
    collect(c)
    collect(c)
    assert len(parsed) == 1
    target = tmp_path / "mnt"
    target.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "cctest", str(target)], capture_output=True, text=True)
    if r.returncode != 0:
        c.close()
        pytest.skip(f"mount not permitted here: {r.stderr.strip()}")
    try:
        collect(c)
        assert len(parsed) == 2
        collect(c)
        assert len(parsed) == 2
    finally:
        subprocess.run(["umount", str(target)], check=False)
    collect(c)
    assert len(parsed) == 3
    c.close()
    assert c._watch is None


# ----------------------------------------------------------------------------- iostat


def test_iostat_fixture_differences(tmp_path: Path) -> None:
    from cccollector.collectors.iostat import METRICS

    root = stage(tmp_path, "iostat")
    c = make("iostat", root, {"exclude_devices": ["dm-0"]})
    stage(tmp_path, "iostat", "snap2")
    msgs = collect(c)
    check_common(msgs, "IOstatCollector", "Disk")
    assert {m.tags["device"] for m in msgs} == {
        "nvme0n1",
        "nvme0n1p1",
        "nvme0n1p2",
        "sda",
    }  # no loop, dm-0, new sdb
    # nvme0n1: column k grew by 10·(k−2) between the snapshots
    for name, col in METRICS:
        m = one(msgs, name, device="nvme0n1")
        assert m.value == 10 * (col - 2) and kind(m.value) == "int" and m.tags["type"] == "node"
    # sda is an old-kernel line with 11 counters: discard/flush columns are not emitted
    sda = [m for m in msgs if m.tags["device"] == "sda"]
    assert [m.name for m in sda] == [n for n, col in METRICS if col <= 13]
    assert value(msgs, "io_read_sectors", device="sda") == 800
    assert value(msgs, "io_ioops", device="sda") == 1
    assert value(msgs, "io_read_sectors", device="nvme0n1p1") == 32
    # next read: difference to the previous read
    again = collect(c)
    assert all(m.value == 0 for m in again)


def test_iostat_options(tmp_path: Path) -> None:
    from cccollector.collectors.iostat import METRICS

    root = stage(tmp_path, "iostat")
    c = make("iostat", root, {"exclude_metrics": [n for n, _ in METRICS if n != "io_reads"]})
    msgs = collect(c)
    assert {m.name for m in msgs} == {"io_reads"} and len(msgs) == 5
    with pytest.raises(CollectorInitError, match="no metrics"):
        make("iostat", root, {"exclude_metrics": [n for n, _ in METRICS]})


def test_iostat_real_machine() -> None:
    real("/proc/diskstats")
    c = make("iostat", "/")
    collect(c)
    msgs = collect(c)
    assert all(kind(m.value) == "int" and "loop" not in m.tags["device"] for m in msgs)
    assert all(m.value >= 0 for m in msgs if m.name in ("io_reads", "io_writes"))


# ----------------------------------------------------------------------------- ibstat


def test_ibstat_fixture_totals_rates_and_wrap(tmp_path: Path) -> None:
    clock = Clock()
    root = stage(tmp_path, "ibstat")
    cfg = {"exclude_devices": ["mlx5_2"], "send_total_values": True, "send_derived_values": True}
    c = make("ibstat", root, cfg, clock)
    clock.t += 10 * SEC
    first = collect(c)
    check_common(first, "InfinibandCollector", "Network")
    tags = {"type": "node", "device": "mlx5_0", "port": "1", "lid": "0x2a"}
    assert all(m.tags == tags for m in first)  # mlx5_1 has no LID, mlx5_2 is excluded
    assert [m.name for m in first] == [
        "ib_recv",
        "ib_xmit",
        "ib_recv_pkts",
        "ib_xmit_pkts",
        "ib_total",
        "ib_total_pkts",
    ]
    assert value(first, "ib_recv") == 4_000_000  # 4-byte words
    assert value(first, "ib_xmit") == 2**64 - 2464  # (2^64 − 616)·4 mod 2^64
    assert all(kind(m.value) == "uint" for m in first)
    assert (
        one(first, "ib_recv").meta["unit"] == "bytes" and one(first, "ib_xmit_pkts").meta["unit"] == "packets"
    )
    stage(tmp_path, "ibstat", "snap2")
    clock.t += 10 * SEC
    msgs = collect(c)
    assert value(msgs, "ib_recv_bw") == 1_000_000.0  # +2.5 M words · 4 / 10 s
    assert value(msgs, "ib_xmit_bw") == 400.0  # wrapped: 616 + 384 words · 4 / 10 s
    assert value(msgs, "ib_recv_pkts_bw") == 500.0
    assert value(msgs, "ib_xmit_pkts_bw") == 10.0
    assert value(msgs, "ib_total") == 3_500_000 * 4 + 384 * 4
    assert value(msgs, "ib_total_pkts") == 35_100
    assert value(msgs, "ib_total_bw") == 1_000_400.0
    assert value(msgs, "ib_total_pkts_bw") == 510.0
    assert one(msgs, "ib_total_bw").meta["unit"] == "bytes/sec"
    assert one(msgs, "ib_total_pkts_bw").meta["unit"] == "packets/sec"
    assert all(kind(m.value) == "float" for m in msgs if m.name.endswith("_bw"))


def test_ibstat_defaults_and_failures(tmp_path: Path) -> None:
    root = stage(tmp_path, "ibstat")
    msgs = collect(make("ibstat", root))
    assert {m.tags["device"] for m in msgs} == {"mlx5_0", "mlx5_2"}
    assert {m.name for m in msgs} == {"ib_recv", "ib_xmit", "ib_recv_pkts", "ib_xmit_pkts"}
    with pytest.raises(CollectorInitError, match="no usable IB port"):
        make("ibstat", root, {"exclude_devices": ["mlx5_0", "mlx5_2"]})
    (root / "sys/class/infiniband/mlx5_2/ports/1/counters/port_xmit_packets").unlink()
    with pytest.raises(CollectorInitError, match="port_xmit_packets"):
        make("ibstat", root)


# ----------------------------------------------------------------------------- tempstat


def test_tempstat_fixture_names_overrides_thresholds(tmp_path: Path) -> None:
    root = stage(tmp_path, "tempstat")
    cfg = {
        "tag_override": {
            "hwmon0": {"type": "socket", "type-id": "0"},
            "hwmon1": {"type": "socket", "type-id": "1"},
        },
        "report_max_temperature": True,
        "report_critical_temperature": True,
        "exclude_metrics": ["temp_nvme_sensor_1"],
    }
    c = make("tempstat", root, cfg)
    msgs = collect(c)
    check_common(msgs, "TempCollector", "IPMI")
    s0, s1, node = {"type": "socket", "type-id": "0"}, {"type": "socket", "type-id": "1"}, {"type": "node"}
    got = [(m.name, m.tags, m.value) for m in msgs]
    assert got == [
        ("temp_package_id_0", s0, 45),
        ("max_temp_package_id_0", s0, 84),
        ("crit_temp_package_id_0", s0, 100),
        ("temp_core_0", s0, 43),
        ("max_temp_core_0", s0, 84),
        ("crit_temp_core_0", s0, 100),
        ("temp_core_1", s0, 44),  # 44500 truncated
        ("max_temp_core_1", s0, 84),
        ("crit_temp_core_1", s0, 100),
        ("temp_package_id_1", s1, 50),
        ("max_temp_package_id_1", s1, 84),
        ("crit_temp_package_id_1", s1, 100),
        ("temp_core_0", s1, 48),
        ("max_temp_core_0", s1, 84),
        ("crit_temp_core_0", s1, 100),
        ("temp_amdgpu_edge", s1, 52),  # hwmon10 contains "hwmon1" (upstream substring rule)
        ("crit_temp_amdgpu_edge", s1, 100),
        ("temp_nvme_composite", node, 38),
        ("max_temp_nvme_composite", node, 81),
        ("crit_temp_nvme_composite", node, 84),
        ("max_temp_nvme_sensor_1", node, 65261),  # only the excluded input metric is dropped (PX-9)
        ("temp_acpitz", node, 27),
        ("crit_temp_acpitz", node, 105),
        ("temp_nct6775_systin", node, -1),  # −1500 m°C truncated toward zero
        ("max_temp_nct6775_systin", node, 80),
        ("temp_nct6775_cputin", node, 35),
        ("max_temp_nct6775_cputin", node, 80),
    ]  # hwmon5 has neither name nor label: skipped
    assert all(kind(m.value) == "int" and m.meta["unit"] == "degC" for m in msgs)
    stage(tmp_path, "tempstat", "snap2")  # inputs +2 °C; temp1_max of hwmon0 changed too
    again = collect(c)
    assert value(again, "temp_package_id_0") == 47
    assert value(again, "max_temp_package_id_0") == 84  # thresholds are read once at start
    assert value(again, "temp_nct6775_systin") == 0  # 500 m°C


def test_tempstat_defaults(tmp_path: Path) -> None:
    root = stage(tmp_path, "tempstat")
    msgs = collect(make("tempstat", root))
    assert all(m.tags == {"type": "node"} for m in msgs)
    assert not [m for m in msgs if m.name.startswith(("max_", "crit_"))]
    assert len(msgs) == 11
    with pytest.raises(CollectorInitError, match="tag_override"):
        make("tempstat", root, {"tag_override": {"hwmon0": "socket"}})


# ----------------------------------------------------------------------------- cpufreq


def test_cpufreq_fixture(tmp_path: Path) -> None:
    root = stage(tmp_path, "cpufreq")
    c = make("cpufreq", root, {"exclude_metrics": ["cpufreq"], "whatever": True})  # lenient, exclude unused
    msgs = collect(c)
    check_common(msgs, "CPUFreqCollector", "CPU")
    assert [(m.tags["type-id"], m.tags["package_id"], m.value) for m in msgs] == [
        ("0", "0", 2400000),
        ("1", "0", 2500123),
        ("2", "1", 1200000),
        ("3", "1", 3000000),
    ]  # SMT siblings 4-7 not reported; the value is kHz, the unit says Hz (upstream)
    assert all(
        m.tags["type"] == "hwthread" and m.meta["unit"] == "Hz" and kind(m.value) == "int" for m in msgs
    )
    stage(tmp_path, "cpufreq", "snap2")
    assert [m.value for m in collect(c)] == [3100000, 800000, 1200000, 3900000]


def test_cpufreq_needs_every_core(tmp_path: Path) -> None:
    root = stage(tmp_path, "cpufreq")
    (root / "sys/devices/system/cpu/cpu4/cpufreq/scaling_cur_freq").unlink()
    make("cpufreq", root)  # a sibling thread's file is not needed
    (root / "sys/devices/system/cpu/cpu3/cpufreq/scaling_cur_freq").unlink()
    with pytest.raises(CollectorInitError, match="cpu3/cpufreq/scaling_cur_freq"):
        make("cpufreq", root)


def test_cpufreq_real_machine() -> None:
    real("/sys/devices/system/cpu/cpu0")
    if not os.path.exists("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"):
        with pytest.raises(CollectorInitError, match="scaling_cur_freq"):
            make("cpufreq", "/")
        return
    msgs = collect(make("cpufreq", "/"))
    assert msgs and all(m.value > 0 for m in msgs)


# ----------------------------------------------------------------------------- cpufreq_cpuinfo


def test_cpufreq_cpuinfo_fixture(tmp_path: Path) -> None:
    root = stage(tmp_path, "cpufreq_cpuinfo")
    c = make("cpufreq_cpuinfo", root, {"anything": [1, 2], "exclude_metrics": 5})  # options ignored
    msgs = collect(c)
    check_common(msgs, "CPUFreqCpuInfoCollector", "CPU")
    assert [(m.tags, m.value, kind(m.value), m.meta["unit"]) for m in msgs] == [
        ({"type": "hwthread", "type-id": "0", "package_id": "0"}, 2100.0, "float", "MHz"),
        ({"type": "hwthread", "type-id": "1", "package_id": "0"}, 2200.5, "float", "MHz"),
    ]  # processors 2 and 3 are the second threads of cores 0 and 1
    stage(tmp_path, "cpufreq_cpuinfo", "snap2")
    assert [m.value for m in collect(c)] == [3500.25, 1000.0]


def test_cpufreq_cpuinfo_without_mhz_fails(tmp_path: Path) -> None:
    root = stage(tmp_path, "cpufreq_cpuinfo", "arm")
    with pytest.raises(CollectorInitError, match="cpu MHz"):
        make("cpufreq_cpuinfo", root)


def test_cpufreq_cpuinfo_real_machine() -> None:
    real("/proc/cpuinfo")
    if "cpu MHz" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("no cpu MHz in /proc/cpuinfo here")
    c = make("cpufreq_cpuinfo", "/")
    collect(c)
    msgs = collect(c)
    assert 1 <= len(msgs) <= os.cpu_count()
    assert all(m.value > 0 and kind(m.value) == "float" for m in msgs)


# ----------------------------------------------------------------------------- numastats


def test_numastats_fixture(tmp_path: Path) -> None:
    clock = Clock()
    root = stage(tmp_path, "numastats")
    c = make("numastats", root, {"send_derived_values": True}, clock)
    clock.t += 10 * SEC
    first = collect(c)
    check_common(first, "NUMAStatsCollector", "NUMA")
    assert len(first) == 12 and all(kind(m.value) == "int" for m in first)
    assert value(first, "numastats_numa_hit", type="memoryDomain", **{"type-id": "0"}) == 1_000_000
    assert value(first, "numastats_other_node", **{"type-id": "1"}) == 10_000
    stage(tmp_path, "numastats", "snap2")
    clock.t += 10 * SEC
    msgs = collect(c)
    rates = {(m.tags["type-id"], m.name): m.value for m in msgs if m.name.endswith("_rate")}
    assert rates == {
        ("0", "numastats_numa_hit_rate"): 5000.0,
        ("0", "numastats_numa_miss_rate"): 0.0,
        ("0", "numastats_numa_foreign_rate"): 0.5,
        ("0", "numastats_interleave_hit_rate"): 0.0,
        ("0", "numastats_local_node_rate"): 5000.0,
        ("0", "numastats_other_node_rate"): 0.0,
        ("1", "numastats_numa_hit_rate"): 123.4,
        ("1", "numastats_numa_miss_rate"): 0.5,
        ("1", "numastats_numa_foreign_rate"): 0.0,
        ("1", "numastats_interleave_hit_rate"): 0.0,
        ("1", "numastats_local_node_rate"): 100.0,
        ("1", "numastats_other_node_rate"): 23.4,
    }
    assert all("unit" not in m.meta for m in msgs)
    c2 = make("numastats", root, {"send_abs_values": False})
    assert collect(c2) == []


def test_numastats_real_machine() -> None:
    real("/sys/devices/system/node/node0/numastat")
    c = make("numastats", "/", {"send_derived_values": True})
    c.clock = time.time_ns
    collect(c)
    msgs = collect(c)
    assert value(msgs, "numastats_numa_hit", type="memoryDomain", **{"type-id": "0"}) > 0
    assert pick(msgs, "numastats_numa_hit_rate")


# ----------------------------------------------------------------------------- schedstat


def test_schedstat_fixture(tmp_path: Path) -> None:
    clock = Clock()
    root = stage(tmp_path, "schedstat")
    c = make("schedstat", root, {"exclude_metrics": ["cpu_load_core"]}, clock)  # accepted, not used
    stage(tmp_path, "schedstat", "snap2")
    clock.t += 2 * SEC
    msgs = collect(c)
    check_common(msgs, "SchedstatCollector", "SCHEDSTAT")
    # (Δrunning + Δwaiting) / 2 s / 1e9
    assert [(m.tags, m.value) for m in msgs] == [
        ({"type": "hwthread", "type-id": "0"}, 0.75),
        ({"type": "hwthread", "type-id": "1"}, 1.0),
        ({"type": "hwthread", "type-id": "2"}, 2.0),
        ({"type": "hwthread", "type-id": "3"}, 0.0),
    ]
    assert all(m.name == "cpu_load_core" and kind(m.value) == "float" and "unit" not in m.meta for m in msgs)


def test_schedstat_real_machine() -> None:
    real("/proc/schedstat")
    c = make("schedstat", "/")
    c.clock = time.time_ns
    time.sleep(0.02)
    msgs = collect(c)
    assert msgs and all(m.value >= 0 for m in msgs)


# ----------------------------------------------------------------------------- rapl


def test_rapl_fixture_power_and_wrap(tmp_path: Path) -> None:
    clock = Clock()
    root = stage(tmp_path, "rapl")
    c = make("rapl", root, {"exclude_device_by_name": ["psys"]}, clock)
    stage(tmp_path, "rapl", "snap2")
    clock.t += 10 * SEC
    msgs = collect(c)
    check_common(msgs, "RAPLCollector", "energy")
    # ΔµJ / 10 000 000 µs
    assert [(m.tags, m.value) for m in msgs] == [
        ({"id": "0", "zone_name": "package-0"}, 150.0),
        ({"id": "0:0", "zone_name": "package-0", "sub_zone_name": "core"}, 80.0),
        ({"id": "1", "zone_name": "package-1"}, 100.0),  # wrapped: + max_energy_range_uj
        ({"id": "1:0", "zone_name": "package-1", "sub_zone_name": "dram"}, 20.0),
    ]  # no `type` tag (upstream)
    assert all(
        m.name == "rapl_average_power" and m.meta["unit"] == "Watt" and kind(m.value) == "float" for m in msgs
    )
    assert all(m.time == T0 + 10 * SEC for m in msgs)


def test_rapl_exclusions(tmp_path: Path) -> None:
    clock = Clock()
    root = stage(tmp_path, "rapl")
    c = make("rapl", root, {"exclude_device_by_id": ["0:0", "1"]}, clock)
    stage(tmp_path, "rapl", "snap2")
    clock.t += 10 * SEC
    msgs = collect(c)
    # excluding zone 1 keeps its sub-zone (upstream)
    assert [(m.tags["id"], m.value) for m in msgs] == [("0", 150.0), ("1:0", 20.0), ("2", 200.0)]
    base = root / "sys/devices/virtual/powercap/intel-rapl"
    for z in ("intel-rapl:0", "intel-rapl:0/intel-rapl:0:0", "intel-rapl:1", "intel-rapl:1/intel-rapl:1:0"):
        (base / z / "energy_uj").unlink()
    with pytest.raises(CollectorInitError, match="zone"):
        make("rapl", root, {"exclude_device_by_name": ["psys"]})


# ----------------------------------------------------------------------------- self


def test_self_fixture_and_options(tmp_path: Path) -> None:
    root = stage(tmp_path, "self")
    assert collect(make("self", root)) == []  # all options default false
    c = make(
        "self",
        root,
        {"read_mem_stats": True, "read_goroutines": True, "read_rusage": True, "read_cgo_calls": True},
    )
    msgs = collect(c)
    check_common(msgs, "SelfCollector", "Self")
    assert all(m.tags == {"type": "node"} for m in msgs)
    assert value(msgs, "heap_sys") == 102400 * 1024 and kind(value(msgs, "heap_sys")) == "uint"
    assert value(msgs, "heap_alloc") == value(msgs, "heap_inuse") == 51200 * 1024
    assert one(msgs, "heap_alloc").meta["unit"] == "Bytes"
    assert kind(value(msgs, "heap_objects")) == "uint" and value(msgs, "heap_objects") > 0
    assert "unit" not in one(msgs, "heap_objects").meta
    assert value(msgs, "num_goroutines") >= 1 and kind(value(msgs, "num_goroutines")) == "int"
    assert not pick(msgs, "num_cgo_calls")
    for n in ("rusage_user_time", "rusage_system_time"):
        assert kind(value(msgs, n)) == "float" and one(msgs, n).meta["unit"] == "seconds"
    for n in (
        "rusage_vol_ctx_switch",
        "rusage_invol_ctx_switch",
        "rusage_signals",
        "rusage_major_pgfaults",
        "rusage_minor_pgfaults",
    ):
        assert kind(value(msgs, n)) == "int"
    assert value(msgs, "rusage_minor_pgfaults") > 0
    with pytest.raises(CollectorInitError, match="read_rusage"):
        make("self", root, {"read_rusage": 1})


def test_self_real_machine() -> None:
    real("/proc/self/status")
    c = make("self", "/", {"read_mem_stats": True, "read_rusage": True})
    collect(c)
    msgs = collect(c)
    assert 1 << 20 < value(msgs, "heap_alloc") < 1 << 40
    assert value(msgs, "rusage_user_time") > 0


async def test_self_counts_asyncio_tasks() -> None:
    import asyncio

    c = make("self", "/", {"read_goroutines": True})
    threads = __import__("threading").active_count()
    extra = [asyncio.create_task(asyncio.sleep(10)) for _ in range(3)]
    try:
        n = value(await asyncio.to_thread(collect, c), "num_goroutines")
    finally:
        for t in extra:
            t.cancel()
    assert n >= threads + 1 + 3  # + the test's own task; to_thread adds a worker thread


# ----------------------------------------------------------------------------- nfsiostat


def test_nfsiostat_fixture(tmp_path: Path) -> None:
    clock = Clock()
    root = stage(tmp_path, "nfsiostat")
    c = make("nfsiostat", root, {"send_derived_values": True}, clock)
    stage(tmp_path, "nfsiostat", "snap2")
    clock.t += 10 * SEC
    msgs = collect(c)
    check_common(msgs, "NfsIOStatCollector", "NFS")
    home = {"type": "node", "stype": "filesystem", "stype-id": "/home"}
    assert {m.tags["stype-id"] for m in msgs} == {"/home", "/scratch"}  # /data appeared: baseline only
    assert (
        value(msgs, "nfsio_nread", **home) == 1_500_000 and kind(value(msgs, "nfsio_nread", **home)) == "int"
    )
    assert one(msgs, "nfsio_pageread", **home).meta["unit"] == "bytes"  # upstream: all absolute values
    # Δ over 10 s
    assert value(msgs, "nfsio_nread_bw", **home) == 50000.0
    assert value(msgs, "nfsio_nwrite_bw", **home) == 10000.0
    assert value(msgs, "nfsio_dread_bw", **home) == 409.6
    assert value(msgs, "nfsio_nfsread_bw", **home) == 50409.6
    assert value(msgs, "nfsio_pageread_bw", **home) == 12.3
    assert value(msgs, "nfsio_pagewrite_bw", **home) == 2.5
    assert one(msgs, "nfsio_pageread_bw", **home).meta["unit"] == "4K_pages/s"
    assert one(msgs, "nfsio_nread_bw", **home).meta["unit"] == "bytes/sec"
    assert value(msgs, "nfsio_nread_bw", **{"stype-id": "/scratch"}) == 0.0
    assert len(msgs) == 2 * 16
    clock.t += 10 * SEC
    again = collect(c)
    assert value(again, "nfsio_nread", **{"stype-id": "/data"}) == 4096
    assert value(again, "nfsio_nread_bw", **{"stype-id": "/data"}) == 0.0


def test_nfsiostat_options(tmp_path: Path) -> None:
    root = stage(tmp_path, "nfsiostat")
    cfg = {
        "use_server_as_stype": True,
        "exclude_filesystem": ["10.1.1.5:/scratch"],
        "exclude_metrics": ["dread", "pageread"],
    }
    c = make("nfsiostat", root, cfg)
    msgs = collect(c)
    assert {m.tags["stype-id"] for m in msgs} == {"nfs01:/export/home"}
    assert {m.name for m in msgs} == {
        "nfsio_" + n for n in ("nread", "nwrite", "dwrite", "nfsread", "nfswrite", "pagewrite")
    }


def test_nfsiostat_real_machine() -> None:
    real("/proc/self/mountstats")
    c = make("nfsiostat", "/", {"send_derived_values": True})
    for m in collect(c) + collect(c):
        assert m.tags["stype"] == "filesystem" and m.name.startswith("nfsio_")


# ----------------------------------------------------------------------------- slurm_cgroup


def slurm_expected() -> list[tuple[str, str, Any]]:
    names = ["job_mem_used", "job_max_mem_used", "job_mem_limit", "job_user_cpu", "job_sys_cpu"]
    out = []
    # job_4242 on CPUs 0-1: memory 2 GiB / 4 GiB peak / 8 GiB limit; user 75 %, system 25 % of its CPU time
    for cpu in ("0", "1"):
        out += zip([cpu] * 5, names, [1073741824.0, 2147483648.0, 4294967296.0, 37.5, 12.5], strict=True)
    # job_4243 has an empty cpuset: nothing. s04X7KQ2M9PZTR on CPUs 4,6: memory.max "max" → 0, no CPU time yet
    for cpu in ("4", "6"):
        out += zip([cpu] * 5, names, [500000.0, 1500000.0, 0.0, 0.0, 0.0], strict=True)
    for cpu in ("2", "3", "5", "7"):  # online CPUs without a job: int 0
        out += zip([cpu] * 5, names, [0] * 5, strict=True)
    return out


def test_slurm_cgroup_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    root = stage(tmp_path, "slurm_cgroup")
    c = make("slurm_cgroup", root)
    msgs = collect(c)
    check_common(msgs, "SlurmCgroupCollector", "SLURM")
    assert [(m.tags["type-id"], m.name, m.value) for m in msgs] == slurm_expected()
    for m in msgs:
        assert m.tags["type"] == "hwthread"
        assert m.meta["unit"] == ("%" if m.name.endswith("_cpu") else "Bytes")
        assert kind(m.value) == ("int" if m.tags["type-id"] in "2357" else "float")
    assert len({m.time for m in msgs}) == 1
    ex = collect(make("slurm_cgroup", root, {"exclude_metrics": ["job_mem_limit", "job_sys_cpu"]}))
    assert len(ex) == 8 * 3 and not pick(ex, "job_mem_limit")


def test_slurm_cgroup_privileges_and_sudo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = stage(tmp_path, "slurm_cgroup")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(CollectorInitError, match="root"):
        make("slurm_cgroup", root)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "sudo-calls"
    sudo = bindir / "sudo"
    sudo.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n[ "$1" = -n ] && shift\nexec "$@"\n')
    sudo.chmod(sudo.stat().st_mode | stat.S_IXUSR)
    c = REGISTRY["slurm_cgroup"](root=str(root), env={"PATH": f"{bindir}:/usr/bin:/bin"})
    c.init({"use_sudo": True, "cgroup_base": "/sys/fs/cgroup/system.slice/slurmstepd.scope"})
    msgs = collect(c)
    assert [(m.tags["type-id"], m.name, m.value) for m in msgs] == slurm_expected()
    assert calls.read_text().splitlines()[0].startswith("-n cat ")
    c = REGISTRY["slurm_cgroup"](root=str(root), env={"PATH": str(tmp_path / "empty")})
    with pytest.raises(CollectorInitError, match="sudo"):
        c.init({"use_sudo": True})


# ----------------------------------------------------------------------------- cost per sample


def test_cpustat_cost_per_message(tmp_path: Path) -> None:
    """A 128-thread /proc/stat: the per-message cost stays in the microseconds."""
    root = tmp_path / "big"
    (root / "proc").mkdir(parents=True)
    lines = ["cpu  " + " ".join(["1000"] * 10)] + [f"cpu{i} " + " ".join(["10"] * 10) for i in range(128)]
    (root / "proc/stat").write_text("\n".join(lines) + "\nintr 1 2 3\nctxt 5\n")
    clock = Clock()
    c = make("cpustat", root, {}, clock)
    best = float("inf")
    for _ in range(5):
        clock.t += 10 * SEC
        sink: list[CCMessage] = []
        t = time.perf_counter()
        c.read(10.0, sink.append)
        best = min(best, (time.perf_counter() - t) / len(sink))
    assert len(sink) == 129 * 11 + 1
    assert best < 20e-6, f"{best * 1e6:.1f} µs per message"


# ----------------------------------------------------------------------------- option decoding


def test_option_keys_match_case_insensitively(tmp_path: Path) -> None:
    clock = Clock()
    root = stage(tmp_path, "numastats")
    c = make("numastats", root, {"Send_Derived_Values": True, "SEND_ABS_VALUES": False}, clock)
    collect(c)
    clock.t += 10 * SEC
    assert {m.name for m in collect(c)} == {
        f"numastats_{k}_rate"
        for k in ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node", "other_node")
    }


def test_lenient_collectors_warn_about_unknown_options(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = stage(tmp_path, "netstat")
    with caplog.at_level("WARNING"):
        make("netstat", root, {"include_devices": ["lo"], "exclude_devices": ["eno1"]})
    assert "exclude_devices" in caplog.text
    with pytest.raises(CollectorInitError, match="send_derived_values"):
        make("netstat", root, {"include_devices": ["lo"], "send_derived_values": "yes"})
