"""likwid (spec §6.27): hardware performance counters through LIKWID (liblikwid via ctypes); serial.

Each event set is measured for `main.duration` seconds, one after another; the metric formulas
(arithmetic over counter names, `time`, `inverseClock`, `gotime`) are evaluated per hardware
thread (per socket for `type: socket`), then the global metrics over the event-set results.
All library calls run on one dedicated thread, as LIKWID keeps per-thread state (access daemon
connections).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import math
import os
import pwd
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cccommon import expr
from cccommon.message import CCMessage

from ..topology import Topology, TopologyError, read_topology
from ._files import FileCollector
from .base import CollectorInitError, Emit, register

VALID_TYPES = ("hwthread", "socket", "node", "core", "memoryDomain")
ACCESS_MODES = ("direct", "accessdaemon", "perf_event")
BASE_FREQ_FILES = (
    "/sys/devices/system/cpu/cpu0/cpufreq/bios_limit",
    "/sys/devices/system/cpu/cpu0/cpufreq/base_frequency",
)

# ----------------------------------------------------------------------------- formulas


class FormulaError(ValueError):
    pass


class Formula:
    """A metric formula over event counts and `time` (upstream: gval), via `cccommon.expr`.

    Compiled once; evaluation is arithmetic only (the shared safe evaluator never runs Python
    code). Division by zero gives ±Inf/NaN as in Go.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self._expr = expr.compile_expr(text.strip())
        except expr.ExprError as e:
            raise FormulaError(f"syntax error in {text!r}: {e}") from None
        self.variables: set[str] = set(self._expr.names)

    def __call__(self, env: Mapping[str, float]) -> float:
        try:
            v = self._expr.evaluate(env)
        except expr.ExprError as e:
            raise FormulaError(f"{self.text!r}: {e}") from None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise FormulaError(f"{self.text!r} gave {v!r}, not a number")
        return float(v)


# ----------------------------------------------------------------------------- the library


class LikwidLibrary:
    """The liblikwid calls the collector needs (ctypes); every method runs on the measuring thread."""

    def __init__(self, path: str) -> None:
        self.lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        lib = self.lib
        lib.perfmon_getLastResult.restype = ctypes.c_double
        lib.perfmon_getLastResult.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.perfmon_getLastTimeOfGroup.restype = ctypes.c_double
        lib.perfmon_getLastTimeOfGroup.argtypes = [ctypes.c_int]
        lib.perfmon_addEventSet.argtypes = [ctypes.c_char_p]
        lib.timer_getCycleClock.restype = ctypes.c_uint64

    def topology_init(self) -> int:
        return int(self.lib.topology_init())

    def setup_access(self, mode: str, cpus: Sequence[int]) -> None:
        if mode == "direct":
            self.lib.HPMmode(0)
        elif mode == "accessdaemon":
            self.lib.HPMmode(1)
            if self.lib.HPMinit() != 0:
                raise RuntimeError("HPMinit() failed (is likwid-accessD reachable?)")
            for c in cpus:
                if self.lib.HPMaddThread(c) != 0:
                    raise RuntimeError(f"HPMaddThread({c}) failed")

    def cycle_clock(self) -> float:
        self.lib.timer_init()
        return float(self.lib.timer_getCycleClock())

    def measure(
        self, events: str, ncounters: int, cpus: Sequence[int], duration: float
    ) -> tuple[list[list[float]], float]:
        """Counter values [counter index][thread index] over `duration` seconds, and the measured time."""
        lib = self.lib
        arr = (ctypes.c_int * len(cpus))(*cpus)
        ret = lib.perfmon_init(len(cpus), arr)
        if ret != 0:
            raise RuntimeError(f"failed to initialize the LIKWID perfmon module, error {ret}")
        try:
            gid = lib.perfmon_addEventSet(events.encode())
            if gid < 0:
                raise RuntimeError(f"failed to add events {events}, error {gid}")
            for step, fn in (
                ("setup", lambda: lib.perfmon_setupCounters(gid)),
                ("start", lib.perfmon_startCounters),
            ):
                ret = fn()
                if ret != 0:
                    raise RuntimeError(f"failed to {step} events '{events}', error {ret}")
            if lib.perfmon_readCounters() != 0:
                raise RuntimeError(f"failed to read events '{events}'")
            time.sleep(duration)
            if lib.perfmon_readCounters() != 0:
                raise RuntimeError(f"failed to read events '{events}'")
            results = [
                [float(lib.perfmon_getLastResult(gid, e, t)) for t in range(len(cpus))]
                for e in range(ncounters)
            ]
            measured = float(lib.perfmon_getLastTimeOfGroup(gid))
            if lib.perfmon_stopCounters() != 0:
                raise RuntimeError(f"failed to stop events '{events}'")
            return results, measured
        finally:
            lib.perfmon_finalize()

    def close(self) -> None:
        self.lib.topology_finalize()


# ----------------------------------------------------------------------------- the collector


@dataclass
class LikwidMetric:
    name: str
    formula: Formula
    type: str
    publish: bool
    unit: str | None
    core_total: bool
    socket_total: bool
    node_total: bool


@dataclass
class EventSet:
    counters: list[str]  # sorted
    events: str  # "EVENT:COUNTER,…"
    metrics: list[LikwidMetric]


def _parse_metric(obj: Any, where: str) -> dict[str, Any]:
    if (
        not isinstance(obj, Mapping)
        or not isinstance(obj.get("name"), str)
        or not isinstance(obj.get("calc"), str)
    ):
        raise CollectorInitError(f"likwid: {where}: a metric needs string fields name and calc")
    unknown = set(obj) - {
        "name",
        "calc",
        "type",
        "publish",
        "unit",
        "send_core_total_values",
        "send_socket_total_values",
        "send_node_total_values",
    }
    if unknown:
        raise CollectorInitError(f"likwid: {where}: unknown key(s) {', '.join(sorted(unknown))}")
    return dict(obj)


@register
class LikwidCollector(FileCollector):
    type = "likwid"
    source = "LikwidCollector"
    group = "PerfCounter"
    parallel = False
    options = frozenset(
        {
            "eventsets",
            "globalmetrics",
            "force_overwrite",
            "invalid_to_zero",
            "access_mode",
            "accessdaemon_path",
            "liblikwid_path",
            "lockfile_path",
        }
    )

    #: opens liblikwid; tests replace it with a fake
    library_loader: Callable[[str], Any] = LikwidLibrary

    def __init__(self, root: str = "/", env: Mapping[str, str] | None = None) -> None:
        super().__init__(root, env)
        self.getuid: Callable[[], int] = os.getuid
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lib: Any = None

    # ----------------------------------------------------------------- init

    def _make_metric(self, obj: dict[str, Any], variables: set[str], where: str) -> LikwidMetric | None:
        name = obj["name"]
        mtype = obj.get("type", "")
        if mtype not in VALID_TYPES:
            self.log.error("Metric %s uses invalid type %r: disabled", name, mtype)
            return None
        try:
            f = Formula(obj["calc"])
            f(dict.fromkeys(variables, 1.0))
        except FormulaError as e:
            self.log.error("Metric %s cannot be calculated with the given counters (%s): disabled", name, e)
            return None
        flags = {}
        for k in ("publish", "send_core_total_values", "send_socket_total_values", "send_node_total_values"):
            v = obj.get(k, False)
            if not isinstance(v, bool):
                raise CollectorInitError(f"likwid: {where}: {k} of metric {name} must be true or false")
            flags[k] = v
        unit = obj.get("unit")
        if unit is not None and not isinstance(unit, str):
            raise CollectorInitError(f"likwid: {where}: unit of metric {name} must be a string")
        return LikwidMetric(
            name,
            f,
            mtype,
            flags["publish"],
            unit or None,
            flags["send_core_total_values"],
            flags["send_socket_total_values"],
            flags["send_node_total_values"],
        )

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._invalid_to_zero = self.opt_bool("invalid_to_zero", False)
        self._access_mode = self.opt_str("access_mode", "direct")
        if self._access_mode not in ACCESS_MODES:
            raise CollectorInitError(
                f"likwid: access_mode must be one of {', '.join(ACCESS_MODES)}, not {self._access_mode!r}"
            )
        daemon_path = self.opt_str("accessdaemon_path", "")
        libpath = self.opt_str("liblikwid_path", "liblikwid.so")
        self._lockfile = self.opt_str("lockfile_path", "/var/run/likwid.lock")
        force = self.opt_bool("force_overwrite", False)

        eventsets_cfg = self.config.get("eventsets") or []
        if not isinstance(eventsets_cfg, list):
            raise CollectorInitError("likwid: eventsets must be a list")
        self._eventsets: list[EventSet] = []
        global_vars = {"gotime"}
        total = 0
        for i, es in enumerate(eventsets_cfg):
            where = f"eventset {i}"
            if not isinstance(es, Mapping):
                raise CollectorInitError(f"likwid: {where} must be an object")
            events = es.get("events") or {}
            if not isinstance(events, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in events.items()
            ):
                raise CollectorInitError(f"likwid: {where}: events must map counter names to event names")
            if not events:
                self.log.error("Invalid LIKWID eventset config %d: no events given", i)
                continue
            mlist = es.get("metrics") or []
            if not isinstance(mlist, list):
                raise CollectorInitError(f"likwid: {where}: metrics must be a list")
            counters = sorted(events)
            variables = {"time", "inverseClock", "gotime", *counters}
            metrics = []
            for obj in mlist:
                m = self._make_metric(_parse_metric(obj, where), variables, where)
                if m is not None:
                    metrics.append(m)
                    global_vars.add(m.name)
            total += len(metrics)
            self._eventsets.append(
                EventSet(counters, ",".join(f"{events[c]}:{c}" for c in counters), metrics)
            )
        gcfg = self.config.get("globalmetrics") or []
        if not isinstance(gcfg, list):
            raise CollectorInitError("likwid: globalmetrics must be a list")
        self._globals = []
        for obj in gcfg:
            m = self._make_metric(_parse_metric(obj, "globalmetrics"), global_vars, "globalmetrics")
            if m is not None:
                self._globals.append(m)
        total += len(self._globals)
        if total == 0:
            raise CollectorInitError("likwid: no LIKWID eventset or metric usable")

        try:
            self._topo: Topology = read_topology(self.root)
        except TopologyError as e:
            raise CollectorInitError(f"likwid: {e}") from None
        self._cpus = [t.id for t in self._topo.hwthreads]
        self._tid = {c: i for i, c in enumerate(self._cpus)}
        # socket → its first hardware thread; hardware thread → core (first thread of the core) and socket
        self._sock_first: dict[int, int] = {}
        for t in self._topo.hwthreads:
            self._sock_first.setdefault(t.socket, t.id)
        self._core_of = {t.id: (t.core_cpus[0] if t.core_cpus else t.id) for t in self._topo.hwthreads}
        self._socket_of = {t.id: t.socket for t in self._topo.hwthreads}

        if force:
            os.environ["LIKWID_FORCE"] = "1"
        if self._access_mode == "accessdaemon" and daemon_path:
            os.environ["PATH"] = daemon_path + (":" + os.environ["PATH"] if os.environ.get("PATH") else "")
        try:
            self._lib = self.library_loader(libpath)
        except (OSError, AttributeError) as e:
            raise CollectorInitError(
                f"likwid: cannot load {libpath} (install LIKWID or set liblikwid_path): {e}"
            ) from None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="likwid")
        try:
            if self._on_thread(self._lib.topology_init) != 0:
                raise CollectorInitError("likwid: failed to initialize the LIKWID topology module")
            self._on_thread(self._lib.setup_access, self._access_mode, self._cpus)
        except (RuntimeError, OSError) as e:
            self._shutdown()
            raise CollectorInitError(f"likwid: {e}") from None
        except CollectorInitError:
            self._shutdown()
            raise
        self._inverse_clock = 1.0 / self._base_freq()
        self._lock_reported = False
        self.initialized = True

    def _on_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self._pool is not None
        return self._pool.submit(fn, *args).result()

    def _base_freq(self) -> float:
        """Base frequency in Hz: cpufreq's bios_limit/base_frequency (kHz), else LIKWID's cycle clock."""
        for f in BASE_FREQ_FILES:
            try:
                with open(self.path(f)) as fh:
                    khz = int(fh.read().strip(), 0)
                if khz > 0:
                    return khz * 1e3
            except (OSError, ValueError):
                continue
        return float(self._on_thread(self._lib.cycle_clock))

    def _shutdown(self) -> None:
        if self._pool is not None:
            if self._lib is not None:
                try:
                    self._on_thread(self._lib.close)
                except (RuntimeError, OSError) as e:
                    self.log.error("Close(): %s", e)
            self._pool.shutdown()
            self._pool = None

    def close(self) -> None:
        self._shutdown()
        super().close()

    # ----------------------------------------------------------------- reading

    def _locked(self) -> bool:
        """True when another user owns the lock file (they took over the counters)."""
        if not self._lockfile:
            return False
        try:
            if not os.path.exists(self._lockfile):
                with open(self._lockfile, "a"):
                    pass
            uid = os.stat(self._lockfile).st_uid
        except OSError as e:
            self.log.error("Read(): lock file %s: %s", self._lockfile, e.strerror or e)
            return True
        if uid != self.getuid():
            if not self._lock_reported:
                try:
                    who = pwd.getpwuid(uid).pw_name
                except KeyError:
                    who = str(uid)
                self.log.error("Read(): access to performance counters locked by %s", who)
                self._lock_reported = True
            return True
        self._lock_reported = False
        return False

    def _scope(self, mtype: str) -> list[tuple[int, int]]:
        """(type-id, hardware thread) pairs a metric of this type is evaluated at."""
        if mtype == "socket":
            return sorted(self._sock_first.items())
        return [(c, c) for c in self._cpus]

    def _message(
        self, m: LikwidMetric, mtype: str, type_id: int | None, value: float, t: int
    ) -> CCMessage | None:
        if not math.isfinite(value):
            return None
        tags = {"type": mtype}
        if type_id is not None:
            tags["type-id"] = str(type_id)
        meta = {"group": self.group}
        if m.unit:
            meta["unit"] = m.unit
        return CCMessage(m.name, tags, meta, {"value": value}, t)

    def _fix(self, v: float) -> float:
        return 0.0 if self._invalid_to_zero and not math.isfinite(v) else v

    def read(self, interval: float, emit: Emit) -> None:
        if self._pool is None or self._locked():
            return
        # per hardware thread: the event-set metric values of this read (input of the global metrics)
        values: dict[int, dict[str, float]] = {c: {} for c in self._cpus}
        measured_any = False
        for es in self._eventsets:
            try:
                results, measured = self._on_thread(
                    self._lib.measure, es.events, len(es.counters), self._cpus, interval
                )
            except (RuntimeError, OSError) as e:
                self.log.error("Read(): %s", e)
                continue
            if self._locked():  # taken over while measuring: the counters are not ours
                return
            measured_any = True
            envs = {}
            for cpu in self._cpus:
                tid = self._tid[cpu]
                env = {c: self._fix(results[i][tid]) for i, c in enumerate(es.counters)}
                env.update(time=measured, inverseClock=self._inverse_clock, gotime=interval)
                envs[cpu] = env
            for m in es.metrics:
                self._emit_metric(m, envs, values, emit)
        if measured_any:
            for m in self._globals:
                envs = {c: {**values[c], "gotime": interval} for c in self._cpus}
                self._emit_metric(m, envs, None, emit)

    def _emit_metric(
        self,
        m: LikwidMetric,
        envs: Mapping[int, Mapping[str, float]],
        store: dict[int, dict[str, float]] | None,
        emit: Emit,
    ) -> None:
        now = self.clock()
        results: list[tuple[int, float]] = []  # (hardware thread, value)
        for type_id, cpu in self._scope(m.type):
            try:
                v = self._fix(m.formula(envs[cpu]))
            except FormulaError as e:
                self.log.debug("Read(): calculation of metric %s failed: %s", m.name, e)
                continue
            if store is not None:
                store[cpu][m.name] = v
            if math.isnan(v) or not m.publish:
                continue
            results.append((cpu, v))
            msg = self._message(m, m.type, None if m.type == "node" else type_id, v, now)
            if msg is not None:
                emit(msg)
        if not results or store is None:
            return
        if m.core_total:
            cores: dict[int, float] = {}
            for cpu, v in results:
                cores[self._core_of[cpu]] = cores.get(self._core_of[cpu], 0.0) + v
            for core, v in cores.items():
                msg = self._message(m, "core", core, v, now)
                if msg is not None:
                    emit(msg)
        if m.socket_total:
            sockets: dict[int, float] = {}
            for cpu, v in results:
                sockets[self._socket_of[cpu]] = sockets.get(self._socket_of[cpu], 0.0) + v
            for sock, v in sockets.items():
                msg = self._message(m, "socket", sock, v, now)
                if msg is not None:
                    emit(msg)
        if m.node_total:
            msg = self._message(m, "node", None, math.fsum(v for _, v in results), now)
            if msg is not None:
                emit(msg)
