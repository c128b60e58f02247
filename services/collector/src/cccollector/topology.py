"""Hardware topology of the node from sysfs (upstream `pkg/ccTopology`), read below a filesystem root.

Collectors that report per core or per socket (cpufreq, likwid, …) need to know which hardware
threads share a core, a die, a socket and a NUMA domain; the kernel exposes that under
`/sys/devices/system/cpu/cpu<N>/topology/`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HWThread", "Topology", "TopologyError", "parse_cpu_list", "read_topology", "CPU_BASE"]

CPU_BASE = "/sys/devices/system/cpu"


class TopologyError(OSError):
    """The CPU topology cannot be read (no sysfs, or no cpu directories)."""


def parse_cpu_list(text: str) -> list[int]:
    """Kernel list syntax (`0-3,8,10-11`) → [0, 1, 2, 3, 8, 10, 11]; ValueError on garbage."""
    out: list[int] = []
    text = text.strip()
    if not text:
        return out
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        if sep:
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


@dataclass(frozen=True, slots=True)
class HWThread:
    id: int
    core: int  # topology/core_id (socket-local)
    socket: int  # topology/physical_package_id
    die: int  # topology/die_id, or the socket when absent
    numa: int  # node<N> inside the cpu directory, -1 if none
    smt: int  # position of the thread in its core's thread list
    core_cpus: tuple[int, ...]  # all threads of the core, ascending


@dataclass(frozen=True)
class Topology:
    hwthreads: tuple[HWThread, ...]
    by_id: dict[int, HWThread] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {t.id: t for t in self.hwthreads})

    @property
    def num_hwthreads(self) -> int:
        return len(self.hwthreads)

    @property
    def num_sockets(self) -> int:
        return len({t.socket for t in self.hwthreads})

    @property
    def num_dies(self) -> int:
        return len({(t.socket, t.die) for t in self.hwthreads})

    @property
    def num_cores(self) -> int:
        return len({t.core_cpus for t in self.hwthreads})

    @property
    def num_numa_domains(self) -> int:
        return len({t.numa for t in self.hwthreads})

    @property
    def smt_width(self) -> int:
        return len({t.smt for t in self.hwthreads})

    def first_threads_of_cores(self) -> list[HWThread]:
        """One thread per physical core: the first entry of its core_cpus_list."""
        return [t for t in self.hwthreads if not t.core_cpus or t.core_cpus[0] == t.id]


def _read_int(path: str, default: int = -1) -> int:
    try:
        with open(path, "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def _read_list(path: str) -> list[int] | None:
    try:
        with open(path) as f:
            return parse_cpu_list(f.read())
    except (OSError, ValueError):
        return None


def read_topology(root: str = "/") -> Topology:
    """Read all hardware threads below `root`; raise TopologyError if there are none."""
    base = os.path.join(root, CPU_BASE.lstrip("/"))
    try:
        names = os.listdir(base)
    except OSError as e:
        raise TopologyError(f"cannot list {base}: {e.strerror}") from None
    ids = sorted(int(n[3:]) for n in names if n.startswith("cpu") and n[3:].isdigit())
    if not ids:
        raise TopologyError(f"no cpu<N> directories in {base}")
    threads: list[HWThread] = []
    for cpu in ids:
        cdir = os.path.join(base, f"cpu{cpu}")
        tdir = os.path.join(cdir, "topology")
        socket = _read_int(os.path.join(tdir, "physical_package_id"))
        die = _read_int(os.path.join(tdir, "die_id"))
        if die < 0:
            die = socket
        core_cpus = _read_list(os.path.join(tdir, "core_cpus_list"))
        if core_cpus is None:  # kernels before 5.7
            core_cpus = _read_list(os.path.join(tdir, "thread_siblings_list"))
        if not core_cpus:
            core_cpus = [cpu]
        core_cpus = sorted(core_cpus)
        smt = core_cpus.index(cpu) if cpu in core_cpus else 0
        numa = -1
        try:
            for n in os.listdir(cdir):
                if n.startswith("node") and n[4:].isdigit():
                    numa = int(n[4:])
                    break
        except OSError:
            pass
        threads.append(
            HWThread(
                id=cpu,
                core=_read_int(os.path.join(tdir, "core_id")),
                socket=socket,
                die=die,
                numa=numa,
                smt=smt,
                core_cpus=tuple(core_cpus),
            )
        )
    return Topology(tuple(threads))


def topology_functions(topo: Topology) -> dict[str, Any]:
    """The topology helpers of the expression language (spec §5.6), bound to `topo`."""
    by_id = topo.by_id

    def attr(cpu: Any, name: str) -> int:
        t = by_id.get(int(cpu)) if isinstance(cpu, int | float) else None
        return getattr(t, name) if t is not None else -1

    def cpus(pred: Any) -> list[int]:
        return [t.id for t in topo.hwthreads if pred(t)]

    def of_type(typ: Any, ident: Any) -> list[int]:
        kind = str(typ).lower()
        i = int(ident)
        if kind == "node":
            return cpus(lambda t: True)
        if kind == "socket":
            return cpus(lambda t: t.socket == i)
        if kind in ("numadomain", "memorydomain"):
            return cpus(lambda t: t.numa == i)
        if kind == "die":
            return cpus(lambda t: t.die == i)
        if kind == "core":
            return cpus(lambda t: t.core_cpus and t.core_cpus[0] == i or t.core == i)
        if kind == "hwthread":
            return cpus(lambda t: t.id == i)
        return []

    return {
        "getCpuCore": lambda c: attr(c, "core"),
        "getCpuSocket": lambda c: attr(c, "socket"),
        "getCpuNuma": lambda c: attr(c, "numa"),
        "getCpuDie": lambda c: attr(c, "die"),
        "getSockCpuList": lambda s: cpus(lambda t: t.socket == s),
        "getNumaCpuList": lambda n: cpus(lambda t: t.numa == n),
        "getDieCpuList": lambda d: cpus(lambda t: t.die == d),
        "getCoreCpuList": lambda c: cpus(lambda t: t.core == c),
        "getCpuList": lambda: [t.id for t in topo.hwthreads],
        "getCpuListOfType": of_type,
    }


def topology_constants(topo: Topology | None) -> dict[str, int]:
    """numHWThreads, numSockets, numNumaDomains, numDies, smtWidth (spec §5.8); -1 when unknown."""
    if topo is None:
        return {k: -1 for k in ("numHWThreads", "numSockets", "numNumaDomains", "numDies", "smtWidth")}
    return {
        "numHWThreads": topo.num_hwthreads,
        "numSockets": topo.num_sockets,
        "numNumaDomains": topo.num_numa_domains,
        "numDies": topo.num_dies,
        "smtWidth": topo.smt_width,
    }
