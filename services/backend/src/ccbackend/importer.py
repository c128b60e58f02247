"""Filling the job table from archived jobs: `-init-db` (whole archive) and `-import-job` (file pairs).

Both paths (spec §3.8, §6.1) set `monitoringStatus` 3, require a valid `subCluster`, compute the
footprint and energy from the meta.json statistics the way upstream's importer does (footprint keys
are always `<metric>_avg` with the average, energy metrics of type `power` give
round2(avg × nodes × duration / 3.6e6) kWh), and apply the sanity checks of start_job.  Jobs that fail
are skipped and counted by `-init-db`; `-import-job` stops at the first bad pair.

`init_db` is built for large archives: worker processes (threads for small archives) read the
meta.json files and turn them into final `job` rows while the parent inserts the previous batch.
Well-formed files are decoded by msgspec straight into typed structs (`RowConverter`); every file the
fast path does not accept as-is goes through the Job model, which decides and words the skip.
Repositories with `insert_job_rows` (SQLite) insert the rows as they are (one executemany per batch);
others get Jobs rebuilt from the rows (`row_job`) through `insert_jobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TextIO

import msgspec
import orjson
from pydantic import BaseModel, ValidationError

from .model import JOB_STATES, SHARED_VALUES, BadRequest, Job, JobTag, MonitoringStatus

__all__ = [
    "BATCH_SIZE",
    "ImportError_",
    "JobCheckError",
    "JobConverter",
    "RowBatch",
    "RowConverter",
    "import_jobs",
    "init_db",
    "parse_import_flag",
    "round2",
    "row_job",
]

log = logging.getLogger("ccbackend.importer")

BATCH_SIZE = 1000
"""Jobs per `insert_jobs` call (one transaction each) for repositories without `insert_job_rows`."""

_ARCHIVED = int(MonitoringStatus.ARCHIVING_SUCCESSFUL)
_EXCLUSIVE_TO_SHARED = {0: "multi_user", 1: "none", 2: "single_user"}
_STATES = frozenset(JOB_STATES)
_SHARED = frozenset(SHARED_VALUES)


class JobCheckError(ValueError):
    """A job that cannot go into the database; the message names the file and what is wrong."""


class ImportError_(Exception):  # noqa: N801 - `ImportError` is a builtin
    """`-import-job` failed; the message names the file and the problem."""


def round2(x: float) -> float:
    """Round to two decimals, halves away from zero (Go's math.Round(x*100)/100)."""
    return math.copysign(math.floor(abs(x) * 100.0 + 0.5), x) / 100.0


# ------------------------------------------------------------------------------ meta.json → Job


def _int(d: dict[str, Any], key: str, where: str, default: int = 0) -> int:
    v = d.get(key)
    if v is None:
        return default
    t = type(v)
    if t is int:
        return v  # type: ignore[no-any-return]
    if t is float and v.is_integer():
        return int(v)
    raise JobCheckError(f"{where}: field '{key}': expected an integer, got {v!r}")


def _str(d: dict[str, Any], key: str, where: str) -> str:
    v = d.get(key)
    if v is None:
        return ""
    if type(v) is not str:
        raise JobCheckError(f"{where}: field '{key}': expected a string, got {v!r}")
    return v  # type: ignore[no-any-return]


_WARNED: set[tuple[str, str, str]] = set()
"""Energy metrics already reported as not computable (one warning per process)."""


@dataclass(frozen=True)
class _Plan:
    """What a subcluster needs per job: footprint metrics, and energy metrics with their kind."""

    footprint: tuple[str, ...]
    energy: tuple[tuple[str, str], ...]


class JobConverter:
    """Turns meta.json objects into `Job`s ready for `insert_jobs`, with the importer's checks.

    Thread-safe for concurrent use (the plan cache is filled idempotently).
    """

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self._plans: dict[tuple[str, str], _Plan | str] = {}

    def _plan(self, cluster: str, sub_cluster: str) -> _Plan:
        key = (cluster, sub_cluster)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._make_plan(cluster, sub_cluster)
            self._plans[key] = plan
        if isinstance(plan, str):
            raise JobCheckError(plan)
        return plan

    def _make_plan(self, cluster: str, sub_cluster: str) -> _Plan | str:
        reg = self.registry
        if cluster not in reg:
            return f"no such cluster: {cluster!r} (no cluster.json in the archive)"
        if not sub_cluster:
            return f"cannot get subcluster: 'subCluster' is empty (cluster {cluster!r})"
        try:
            reg.sub_cluster(cluster, sub_cluster)
            fp = tuple(m for m, _stat in reg.footprint_metrics(cluster, sub_cluster))
            energy = tuple(reg.energy_metrics(cluster, sub_cluster))
        except LookupError as e:
            return f"cannot get subcluster: {e}"
        for name, kind in energy:
            if kind == "energy" and (cluster, sub_cluster, name) not in _WARNED:
                _WARNED.add((cluster, sub_cluster, name))
                log.warning(
                    "energy metric %s of %s/%s has energy type 'energy': its energy is not computed (0), as upstream",
                    name,
                    cluster,
                    sub_cluster,
                )
        return _Plan(fp, energy)

    def convert(self, d: dict[str, Any], where: str) -> Job:
        """A Job from a meta.json object; JobCheckError (naming `where`) when it must be skipped."""
        obj = self.prepare(d, where)
        try:
            return Job.model_validate(obj)
        except ValidationError as e:
            raise JobCheckError(f"{where}: {_describe(e)}") from None

    def prepare(self, d: dict[str, Any], where: str) -> dict[str, Any]:
        """The checks and computed fields of `convert`, as the JSON object the Job model validates."""
        if type(d) is not dict:
            raise JobCheckError(f"{where}: not a JSON object")
        cluster = _str(d, "cluster", where)
        sub_cluster = _str(d, "subCluster", where)
        try:
            plan = self._plan(cluster, sub_cluster)
        except JobCheckError as e:
            raise JobCheckError(f"{where}: {e}") from None
        # sanity checks of start_job, in upstream's order
        state = d.get("jobState")
        if state not in _STATES:
            raise JobCheckError(f"{where}: not a valid job state: {state!r}")
        resources = d.get("resources")
        user = _str(d, "user", where)
        if not resources or type(resources) is not list or not user:
            raise JobCheckError(f"{where}: 'resources' and 'user' should not be empty")
        num_nodes = _int(d, "numNodes", where)
        num_hw = _int(d, "numHwthreads", where)
        num_acc = _int(d, "numAcc", where)
        if num_acc < 0 or num_hw < 0 or num_nodes < 1:
            raise JobCheckError(f"{where}: 'numNodes', 'numAcc' or 'numHWThreads' invalid")
        if len(resources) != num_nodes:
            raise JobCheckError(
                f"{where}: len(resources) does not equal numNodes ({len(resources)} vs {num_nodes})"
            )
        shared = d.get("shared")
        if shared is None:
            shared = _EXCLUSIVE_TO_SHARED.get(d.get("exclusive", 1), "none")  # type: ignore[arg-type]
        if shared not in _SHARED:
            raise JobCheckError(
                f"{where}: field 'shared': must be one of {', '.join(SHARED_VALUES)}, got {shared!r}"
            )
        duration = _int(d, "duration", where)
        stats = d.get("statistics")
        if stats is not None and type(stats) is not dict:
            raise JobCheckError(f"{where}: field 'statistics': expected an object")
        footprint = {f"{m}_avg": self._avg(stats, m, where) for m in plan.footprint}
        energy_fp: dict[str, float] = {}
        total = 0.0
        for m, kind in plan.energy:
            e = (
                round2(self._avg(stats, m, where) * num_nodes * (duration / 3600.0) / 1000.0)
                if kind == "power"
                else 0.0
            )
            energy_fp[m] = e
            total += e
        for r in resources:
            if type(r) is not dict or not r.keys() <= _RESOURCE_KEYS:
                resources = [_clean_resource(x) for x in resources]
                break
        tags = d.get("tags")
        if tags:
            if type(tags) is not list:
                raise JobCheckError(f"{where}: field 'tags': expected a list")
            tags = [_clean_tag(t) for t in tags]
        obj = {k: d[k] for k in _COPIED if k in d}
        obj.update(
            cluster=cluster,
            subCluster=sub_cluster,
            user=user,
            shared=shared,
            jobState=state,
            tags=tags or None,
            resources=resources,
            energyFootprint=energy_fp,
            footprint=footprint,
            energy=round2(total),
            monitoringStatus=_ARCHIVED,
            numNodes=num_nodes,
            numHwthreads=num_hw,
            numAcc=num_acc,
            duration=duration,
        )
        return obj

    @staticmethod
    def _avg(stats: dict[str, Any] | None, metric: str, where: str) -> float:
        if not stats:
            return 0.0
        s = stats.get(metric)
        if s is None:
            return 0.0
        v = s.get("avg") if type(s) is dict else None
        if v is None:
            return 0.0
        if type(v) is float or type(v) is int:
            return float(v)
        raise JobCheckError(f"{where}: field 'statistics.{metric}.avg': expected a number, got {v!r}")


_RESOURCE_KEYS = frozenset(("hostname", "hwthreads", "accelerators", "configuration"))
_COPIED = (
    "partition",
    "project",
    "metaData",
    "arrayJobId",
    "walltime",
    "requestedMemory",
    "jobId",
    "smt",
    "statistics",
    "submitTime",
    "startTime",
)
"""meta.json keys passed on unchanged (validated by the Job model); all others are set explicitly."""


def _clean_resource(r: Any) -> Any:
    """Drop keys a Resource does not have (legacy archives); non-objects are left for validation."""
    return {k: v for k, v in r.items() if k in _RESOURCE_KEYS} if isinstance(r, dict) else r


def _clean_tag(t: Any) -> Any:
    if not isinstance(t, dict):
        return t
    scope = t.get("scope")
    return {
        "type": t.get("type"),
        "name": t.get("name"),
        "scope": scope if isinstance(scope, str) and scope else "global",
    }


def _describe(e: ValidationError) -> str:
    """The first validation problem as `field 'a.b[0].c': message`, with meta.json key names."""
    err = e.errors(include_url=False)[0]
    path = ""
    for el in err["loc"]:
        path += f"[{el}]" if isinstance(el, int) else (f".{el}" if path else str(el))
    msg = err["msg"]
    if err["type"] != "missing" and "input" in err:
        msg += f" (got {err['input']!r:.60})"
    return f"field '{path}': {msg}"


# ------------------------------------------------------------------------------- meta.json → row

_I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class _Stat(msgspec.Struct, gc=False):
    avg: float | None = None


class _Resource(msgspec.Struct, omit_defaults=True, gc=False):
    """A meta.json resource; field order and omitted nulls as the `resources` column stores it."""

    hostname: str
    hwthreads: list[_I64] | None = None
    accelerators: list[str] | None = None
    configuration: str | None = None


class _Tag(msgspec.Struct, gc=False):
    type: str
    name: str


class _Meta(msgspec.Struct, gc=False):
    """The meta.json keys a job row needs, with exactly the types the Job model accepts (no coercion)."""

    jobId: _I64
    cluster: str = ""
    subCluster: str = ""
    user: str = ""
    project: str = ""
    partition: str = ""
    jobState: str | None = None
    shared: str | None = None
    exclusive: int = 1
    arrayJobId: _I64 = 0
    numNodes: _I64 | None = None
    numHwthreads: _I64 | None = None
    numAcc: _I64 | None = None
    smt: _I64 = 0
    duration: _I64 | None = None
    walltime: _I64 = 0
    requestedMemory: _I64 = 0
    submitTime: _I64 = 0
    startTime: _I64 = 0
    resources: list[_Resource] | None = None
    metaData: dict[str, str] | None = None
    statistics: dict[str, _Stat] | None = None
    tags: list[_Tag] | None = None


Row = tuple[Any, ...]
"""Values of one `job` row in `repository._query.INSERT_COLUMNS` order."""
TagKeys = tuple[tuple[str, str], ...]
"""(type, name) of the tags of one job (created with scope global)."""


class RowConverter:
    """meta.json → (job row, tag keys), with the checks and results of `JobConverter.convert`.

    Well-formed files take a fast path (msgspec decodes straight into typed structs); anything the fast
    path does not accept as-is is handed to `JobConverter` (orjson + pydantic), so skip decisions and
    their messages are exactly those of the model path.  Thread-safe.
    """

    def __init__(self, conv: JobConverter, *, plan_all: bool = True) -> None:
        self.conv = conv
        reg = conv.registry
        for c in reg.names() if plan_all else ():  # every plan up front (one warning per problem)
            for sc in reg.get(c).sub_clusters:
                with contextlib.suppress(JobCheckError):
                    conv._plan(c, sc.name)
        # statistics are decoded only for the metrics some plan needs (the rest is skipped unparsed)
        needed: set[str] = set()
        for plan in conv._plans.values():
            if isinstance(plan, _Plan):
                needed.update(plan.footprint)
                needed.update(m for m, kind in plan.energy if kind == "power")
        self._attr = {metric: f"m{i}" for i, metric in enumerate(sorted(needed))}
        stats = msgspec.defstruct(
            "_Stats",
            [(a, _Stat | None, None) for a in self._attr.values()],
            rename={a: metric for metric, a in self._attr.items()},
            gc=False,
        )
        self._type = msgspec.defstruct(
            "_MetaStats", [("statistics", stats | None, None)], bases=(_Meta,), gc=False
        )
        self._decoder = msgspec.json.Decoder(self._type)
        self._encode = msgspec.json.Encoder().encode

    def from_json(
        self, raw: bytes | memoryview, cluster: str, job_id: int, start_time: int, where: str
    ) -> tuple[Row, TagKeys]:
        """Row of the meta.json text `raw` found at <cluster>/<job_id>/<start_time>; JobCheckError to skip it."""
        try:
            m = self._decoder.decode(raw)
        except msgspec.MsgspecError:
            m = None
        if m is not None and m.jobId == job_id and m.startTime == start_time and m.cluster == cluster:
            out = self._fast(m)
            if out is not None:
                return out
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise JobCheckError(f"{where}: corrupt meta.json: invalid JSON: {e}") from None
        return self.from_dict(d, cluster, job_id, start_time, where, fast=False)

    def from_dict(
        self, d: Any, cluster: str, job_id: int, start_time: int, where: str, *, fast: bool = True
    ) -> tuple[Row, TagKeys]:
        """Row of a decoded meta.json object (archives that hand out dicts); JobCheckError to skip it."""
        _check_location(d, cluster, job_id, start_time, where)
        if fast:
            try:
                out = self._fast(msgspec.convert(d, self._type))
            except msgspec.MsgspecError:
                out = None
            if out is not None:
                return out
        return self.slow(d, where)

    def slow(self, d: Any, where: str) -> tuple[Row, TagKeys]:
        """The model path: JobConverter.convert, then the row the repository would store for the Job."""
        from .repository import _query as q

        job = self.conv.convert(d, where)
        row = q.job_row(job)
        for col, v in zip(q.INSERT_COLUMNS, row, strict=True):
            if type(v) is int and not _I64_MIN <= v <= _I64_MAX:
                raise JobCheckError(f"{where}: {col}: integer {v} out of the 64-bit range")
        return row, tuple((t.type, t.name) for t in job.tags or ())

    def _fast(self, m: Any) -> tuple[Row, TagKeys] | None:
        """The row of an already type-checked job, or None when any check fails (the model path decides)."""
        plan = self.conv._plans.get((m.cluster, m.subCluster))
        if plan is None:
            with contextlib.suppress(JobCheckError):
                plan = self.conv._plan(m.cluster, m.subCluster)
        if type(plan) is not _Plan:
            return None
        resources = m.resources
        num_nodes = m.numNodes or 0
        num_hw = m.numHwthreads or 0
        num_acc = m.numAcc or 0
        shared = m.shared
        if shared is None:
            shared = _EXCLUSIVE_TO_SHARED.get(m.exclusive, "none")
        if (
            m.jobState not in _STATES
            or not resources
            or not m.user
            or num_nodes < 1
            or num_hw < 0
            or num_acc < 0
            or len(resources) != num_nodes
            or shared not in _SHARED
        ):
            return None
        duration = m.duration or 0
        stats = m.statistics
        attr = self._attr
        footprint = {}
        for metric in plan.footprint:
            a = attr.get(metric)
            if a is None:  # a plan made after this converter: not decoded
                return None
            s = getattr(stats, a) if stats is not None else None
            footprint[f"{metric}_avg"] = 0.0 if s is None or s.avg is None else s.avg
        energy_fp = {}
        total = 0.0
        for metric, kind in plan.energy:
            if kind == "power":
                a = attr.get(metric)
                if a is None:
                    return None
                s = getattr(stats, a) if stats is not None else None
                avg = 0.0 if s is None or s.avg is None else s.avg
                e = round2(avg * num_nodes * (duration / 3600.0) / 1000.0)
            else:
                e = 0.0
            energy_fp[metric] = e
            total += e
        row = (
            m.jobId,
            m.cluster,
            m.subCluster,
            m.submitTime,
            m.startTime,
            m.user,
            m.project,
            m.partition,
            m.arrayJobId,
            duration,
            m.walltime,
            m.jobState,
            orjson.dumps(m.metaData).decode(),
            self._encode(resources).decode(),
            num_nodes,
            num_hw,
            num_acc,
            m.smt,
            shared,
            _ARCHIVED,
            round2(total),
            orjson.dumps(energy_fp).decode(),
            orjson.dumps(footprint).decode(),
        )
        tags = m.tags
        return row, (tuple((t.type, t.name) for t in tags) if tags else ())


def row_job(row: Row, tags: TagKeys) -> Job:
    """The Job a row stands for (repositories without `insert_job_rows` take Jobs)."""
    from .repository import _query as q

    d = dict(zip(q.INSERT_COLUMNS, row, strict=True))
    return Job(
        job_id=d["job_id"],
        cluster=d["cluster"],
        sub_cluster=d["subcluster"],
        submit_time=d["submit_time"],
        start_time=d["start_time"],
        user=d["hpc_user"],
        project=d["project"],
        partition=d["cluster_partition"],
        array_job_id=d["array_job_id"],
        duration=d["duration"],
        walltime=d["walltime"],
        job_state=d["job_state"],
        meta_data=orjson.loads(d["meta_data"]),
        resources=orjson.loads(d["resources"]),
        num_nodes=d["num_nodes"],
        num_hwthreads=d["num_hwthreads"],
        num_acc=d["num_acc"],
        smt=d["smt"],
        shared=d["shared"],
        monitoring_status=d["monitoring_status"],
        energy=d["energy"],
        energy_footprint=orjson.loads(d["energy_footprint"]),
        footprint=orjson.loads(d["footprint"]),
        tags=[JobTag(type=t, name=n, scope="global") for t, n in tags] or None,
    )


# ------------------------------------------------------------------------------------- progress


class _Progress:
    """A bar on a terminal, else one log line every few seconds; `frac` is the share of work done."""

    def __init__(self, enabled: bool, stream: TextIO | None = None, interval: float = 5.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval
        self.t0 = time.monotonic()
        self.last = self.t0

    def update(self, done: int, frac: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if now - self.last < 0.1 and frac < 1.0:
                return
            width = 40
            bar = "#" * int(frac * width)
            self.stream.write(f"\r[{bar:<{width}}] {frac:6.1%}  {done} jobs processed")
            self.stream.flush()
        elif now - self.last >= self.interval:
            rate = done / (now - self.t0) if now > self.t0 else 0.0
            log.info(
                "init-db: %d jobs processed, %.0f%% of the archive (%.0f jobs/s)", done, frac * 100, rate
            )
        else:
            return
        self.last = now

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# -------------------------------------------------------------------------------------- init-db


class RowBatch(NamedTuple):
    """What a unit of work returns: ready rows, their tags as (row index, type, name), skip messages."""

    rows: list[Row]
    tags: list[tuple[int, str, str]]
    errors: list[str]


def _check_location(d: Any, cluster: str, job_id: int, start_time: int, where: str) -> None:
    if type(d) is dict and (
        d.get("startTime") != start_time or d.get("jobId") != job_id or d.get("cluster") != cluster
    ):
        raise JobCheckError(
            f"{where}: jobId/cluster/startTime in meta.json ({d.get('jobId')}/{d.get('cluster')}/"
            f"{d.get('startTime')}) do not match the archive location"
        )


def _add(out: RowBatch, converted: tuple[Row, TagKeys]) -> None:
    row, tags = converted
    for t, n in tags:
        out.tags.append((len(out.rows), t, n))
    out.rows.append(row)


def _load_keys(rc: RowConverter, archive: Any, keys: Sequence[Any]) -> RowBatch:
    """Rows for `keys`, read through the archive interface (non-file archives; a worker thread)."""
    out = RowBatch([], [], [])
    load = archive.load_meta_dict
    for cluster, job_id, start_time in keys:
        where = f"{cluster}/{job_id // 1000}/{job_id % 1000:03d}/{start_time}/meta.json"
        try:
            _add(out, rc.from_dict(load(cluster, job_id, start_time), cluster, job_id, start_time, where))
        except JobCheckError as e:
            out.errors.append(str(e))
        except Exception as e:  # noqa: BLE001 - ArchiveError and decoding problems: skip the job
            out.errors.append(str(e) or f"{where}: {type(e).__name__}")
    return out


def _numeric_dirs(path: str) -> list[tuple[int, str]]:
    """(number, path) of the numeric sub-directories of `path`, sorted; others are ignored."""
    out = []
    with os.scandir(path) as it:
        for e in it:
            if e.name.isdigit() and e.is_dir(follow_symlinks=False):
                out.append((int(e.name), e.path))
    out.sort()
    return out


_READ_SIZE = 1 << 16
"""First read of a meta.json; larger files are read in full separately."""

_READERS = 8
"""Threads that list directories and read meta.json files for one unit of work: with the archive not
in the page cache each read waits for the disk, and several outstanding reads per worker cut a cold
import by about a third."""

_READ_POOL: ThreadPoolExecutor | None = None

# (job id, start time, meta.json path, its bytes or None, error message or None)
_RawJob = tuple[int, int, str, bytes | None, str | None]


def _read_meta(fd: int) -> bytes:
    data = os.read(fd, _READ_SIZE)
    if len(data) < _READ_SIZE:
        return data
    chunks = [data]
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_jobs(l1: int, l2_dirs: Sequence[tuple[int, str]]) -> list[_RawJob]:
    """The meta.json bytes of every job directory below `l2_dirs`, in directory order."""
    out: list[_RawJob] = []
    for l2, l2_path in l2_dirs:
        job_id = l1 * 1000 + l2
        try:
            starts = _numeric_dirs(l2_path)
        except OSError as e:
            out.append((job_id, 0, l2_path, None, f"{l2_path}: cannot list directory: {e.strerror or e}"))
            continue
        for start_time, d in starts:
            where = f"{d}/meta.json"
            try:
                fd = os.open(where, os.O_RDONLY)
            except FileNotFoundError:
                out.append((job_id, start_time, where, None, f"{where}: job not found (no meta.json)"))
                continue
            except OSError as e:
                out.append((job_id, start_time, where, None, f"{where}: cannot read: {e.strerror or e}"))
                continue
            try:
                out.append((job_id, start_time, where, _read_meta(fd), None))
            except OSError as e:
                out.append((job_id, start_time, where, None, f"{where}: cannot read: {e.strerror or e}"))
            finally:
                os.close(fd)
    return out


def _read_l1(l1: int, l2_dirs: list[tuple[int, str]]) -> list[_RawJob]:
    """`_read_jobs` split over the reader threads (in contiguous parts, so the order is kept)."""
    global _READ_POOL
    if len(l2_dirs) < 2 * _READERS:
        return _read_jobs(l1, l2_dirs)
    if _READ_POOL is None:
        _READ_POOL = ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="init-db-read")
    step = -(-len(l2_dirs) // _READERS)
    parts = [l2_dirs[i : i + step] for i in range(0, len(l2_dirs), step)]
    out: list[_RawJob] = []
    for part in _READ_POOL.map(_read_jobs, [l1] * len(parts), parts):
        out.extend(part)
    return out


def _load_l1(rc: RowConverter, cluster: str, l1: int, l1_path: str) -> RowBatch:
    """Rows for every job below one `<cluster>/<jobId // 1000>` directory of a file archive."""
    out = RowBatch([], [], [])
    errors = out.errors
    try:
        l2_dirs = _numeric_dirs(l1_path)
    except OSError as e:
        errors.append(f"{l1_path}: cannot list directory: {e.strerror or e}")
        return out
    convert = rc.from_json
    for job_id, start_time, where, raw, error in _read_l1(l1, l2_dirs):
        if raw is None:
            errors.append(error or f"{where}: cannot read")
            continue
        try:
            _add(out, convert(raw, cluster, job_id, start_time, where))
        except JobCheckError as e:
            errors.append(str(e))
    return out


# worker processes (large file archives): they read, check and build final rows; the parent inserts
_PROC_RC: RowConverter | None = None


class _LazyRegistry:
    """The archive's cluster registry, loaded on first use: workers get the plans from the parent and
    need the registry only for a subcluster no plan was made for (a job that will be skipped)."""

    def __init__(self, root: str) -> None:
        self._root = root
        self._registry: Any = None

    def _get(self) -> Any:
        if self._registry is None:
            from .archive.fs import FsArchive
            from .clusters import ClusterRegistry

            self._registry = ClusterRegistry.from_archive(FsArchive(self._root))
        return self._registry

    def __contains__(self, cluster: object) -> bool:
        return cluster in self._get()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


def _proc_init(root: str, plans: dict[tuple[str, str], _Plan | str]) -> None:
    """Initializer of a worker process: the parent's plans, the archive's clusters on demand, quiet logging."""
    global _PROC_RC
    logging.disable(logging.CRITICAL)  # problems come back as messages; the parent logs them once
    conv = JobConverter(_LazyRegistry(root))
    conv._plans.update(plans)
    _PROC_RC = RowConverter(conv, plan_all=False)
    gc.freeze()  # the plans and decoders are permanent: keep them out of every collection


def _proc_ready() -> None:
    """A no-op task: submitted once per worker so that all of them start (and load) right away."""


def _proc_load_l1(cluster: str, l1: int, l1_path: str) -> RowBatch:
    assert _PROC_RC is not None
    return _load_l1(_PROC_RC, cluster, l1, l1_path)


def _tasks(archive: Any, batch_size: int) -> tuple[list[tuple[str, int, str]], list[Sequence[Any]]]:
    """Units of work in archive order: L1 directories of a file archive, else chunks of job keys."""
    from .archive.fs import FsArchive

    if isinstance(archive, FsArchive):
        dirs = []
        for cluster in archive.clusters():
            for l1, l1_path in _numeric_dirs(os.path.join(archive.root, cluster)):
                dirs.append((cluster, l1, l1_path))
        return dirs, []
    keys = archive.job_keys()
    return [], [keys[i : i + batch_size] for i in range(0, len(keys), batch_size)]


PROCESS_THRESHOLD = 8
"""File archives with at least this many `<jobId // 1000>` directories are read by worker processes."""


async def init_db(
    repo: Any,
    archive: Any,
    registry: Any,
    progress: bool = True,
    *,
    batch_size: int = BATCH_SIZE,
    workers: int | None = None,
    processes: bool | None = None,
    stream: TextIO | None = None,
) -> tuple[int, int, float]:
    """Rebuild job/tag/jobtag from the archive; returns (imported, skipped, seconds).

    All rows of job, tag and jobtag are deleted first (running jobs in `job` are lost, `job_cache` is
    untouched).  Bad jobs are logged, skipped and counted.  meta.json files are read and turned into
    final rows by `workers` threads, or worker processes for large file archives (`processes`: None =
    automatic, from PROCESS_THRESHOLD directories on; default workers: 2 threads, or one process per
    CPU up to 8), while the parent inserts the previous batch (`insert_job_rows` when the repository
    has it, else `insert_jobs`; at most `batch_size` jobs per transaction with `insert_jobs`).
    """
    t0 = time.perf_counter()
    dirs, chunks = await asyncio.to_thread(_tasks, archive, batch_size)
    use_procs = bool(dirs) and (processes if processes is not None else len(dirs) >= PROCESS_THRESHOLD)
    if workers is None:
        workers = max(2, min(8, os.cpu_count() or 2)) if use_procs else 2
    workers = max(1, workers)
    rc = RowConverter(JobConverter(registry))
    pool: Executor
    if use_procs:
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_proc_init,
            initargs=(os.fspath(archive.root), dict(rc.conv._plans)),
        )
        for _ in range(workers):  # start the workers now: they import and load while the tables are emptied
            pool.submit(_proc_ready)
    else:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="init-db")
    pending: deque[asyncio.Future[RowBatch]] = deque()
    try:
        await repo.delete_all_jobs()
        log.info("Building job table...")
        if use_procs:
            submit = [(_proc_load_l1, t) for t in dirs]
        else:
            submit = [(_load_l1, (rc, *t)) for t in dirs]
            submit += [(_load_keys, (rc, archive, keys)) for keys in chunks]
        bar = _Progress(progress, stream)
        ntasks = len(submit)
        imported = skipped = done = finished = 0
        loop = asyncio.get_running_loop()
        insert_rows = getattr(repo, "insert_job_rows", None)

        async def insert(rows: list[Row], tags: list[tuple[int, str, str]]) -> None:
            nonlocal imported, skipped
            if insert_rows is not None:
                ids = await insert_rows(rows, tags)
            else:
                per_job: list[list[tuple[str, str]]] = [[] for _ in rows]
                for i, t, n in tags:
                    per_job[i].append((t, n))
                ids = []
                for i in range(0, len(rows), batch_size):
                    jobs = [row_job(r, tuple(per_job[i + k])) for k, r in enumerate(rows[i : i + batch_size])]
                    ids += await repo.insert_jobs(jobs)
            for row, id_ in zip(rows, ids, strict=True):
                if id_ is None:
                    skipped += 1
                    log.error(
                        "init-db: skipping job %d on %s started at %d: already in the database (duplicate)",
                        row[0],
                        row[1],
                        row[4],
                    )
            imported += len(rows) - ids.count(None)

        async def drain_one() -> None:
            nonlocal skipped, done, finished
            batch = await pending.popleft()
            for msg in batch.errors:
                log.error("init-db: skipping job: %s", msg)
            skipped += len(batch.errors)
            if batch.rows:
                await insert(batch.rows, batch.tags)
            done += len(batch.errors) + len(batch.rows)
            finished += 1
            bar.update(done, finished / ntasks)

        ahead = workers + 1
        # the job table is empty now: let the repository drop its indexes and build them once at the end
        bulk = getattr(repo, "bulk_import", None)
        async with bulk() if bulk is not None else contextlib.nullcontext():
            for fn, args in submit:
                pending.append(loop.run_in_executor(pool, fn, *args))
                if len(pending) > ahead:
                    await drain_one()
            while pending:
                await drain_one()
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    bar.finish()
    seconds = time.perf_counter() - t0
    if skipped:
        log.warning("Error in import of %d jobs!", skipped)
    log.info("A total of %d jobs have been registered in %.3f seconds.", imported, seconds)
    return imported, skipped, seconds


# ----------------------------------------------------------------------------------- import-job


def parse_import_flag(flag: str) -> list[tuple[str, str]]:
    """`meta.json:data.json[,meta2:data2...]` into pairs; ImportError_ for a malformed flag."""
    pairs = []
    for pair in flag.split(","):
        files = pair.split(":")
        if len(files) != 2 or not files[0] or not files[1]:
            raise ImportError_(
                f"invalid import flag format {pair!r}: want <path-to-meta.json>:<path-to-data.json>"
            )
        pairs.append((files[0], files[1]))
    return pairs


def _read_json(path: str, what: str) -> Any:
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ImportError_(f"{path}: cannot read {what}: {e.strerror or e}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ImportError_(f"{path}: invalid JSON in {what}: {e}") from None


def _reject_unknown(model: Any, where: str, prefix: str = "") -> None:
    """Strict decoding: any key the schema does not know is an error (upstream DisallowUnknownFields)."""
    if isinstance(model, BaseModel):
        extra = model.model_extra or {}
        if extra:
            key = next(iter(extra))
            raise ImportError_(f'{where}: json: unknown field "{prefix}{key}"')
        for name in type(model).model_fields:
            _reject_unknown(getattr(model, name), where, prefix)
    elif isinstance(model, dict):
        for v in model.values():
            _reject_unknown(v, where, prefix)
    elif isinstance(model, list):
        for v in model:
            _reject_unknown(v, where, prefix)


def _decode_pair(meta_path: str, data_path: str, validate: bool) -> tuple[dict[str, Any], Any]:
    """Read and strictly decode one meta.json / data.json pair (runs in a thread)."""
    from cccommon.schema import JobData, JobMeta

    meta = _read_json(meta_path, "job metadata")
    if not isinstance(meta, dict):
        raise ImportError_(f"{meta_path}: job metadata must be a JSON object")
    try:
        Job.parse_api(meta)
    except BadRequest as e:
        raise ImportError_(f"{meta_path}: {e}") from None
    if validate:
        try:
            JobMeta.model_validate(meta)
        except ValueError as e:
            raise ImportError_(f"{meta_path}: validate job meta: {e}") from None
    raw_data = _read_json(data_path, "job data")
    try:
        data = JobData.model_validate(raw_data)
    except ValueError as e:
        raise ImportError_(f"{data_path}: cannot decode job data: {e}") from None
    _reject_unknown(data, data_path)
    return meta, data


async def import_jobs(
    repo: Any, archive: Any, registry: Any, flag: str, *, validate: bool = False
) -> list[int]:
    """`-import-job`: decode each pair strictly, check it, write it into the archive, insert it, tag it.

    Returns the new database ids.  Stops with ImportError_ at the first pair that fails.
    """
    conv = JobConverter(registry)
    ids: list[int] = []
    for meta_path, data_path in parse_import_flag(flag):
        meta, data = await asyncio.to_thread(_decode_pair, meta_path, data_path, validate)
        try:
            job = conv.convert(meta, meta_path)
        except JobCheckError as e:
            raise ImportError_(str(e)) from None
        if await repo.find_job(job.job_id, job.cluster, job.start_time) is not None:
            raise ImportError_(
                f"{meta_path}: job {job.job_id} on {job.cluster} started at {job.start_time} is already in the database"
            )
        tags = job.tags or []
        archived = job.model_copy(update={"tags": [t.model_copy(update={"id": 0}) for t in tags] or None})
        try:
            await asyncio.to_thread(archive.store_job, archived, data, overwrite=True)
        except Exception as e:  # noqa: BLE001 - ArchiveError and I/O problems
            raise ImportError_(f"{meta_path}: writing the job into the archive failed: {e}") from None
        db_job = job.model_copy(update={"tags": None})
        id_ = await repo.insert_job(db_job)
        for t in tags:
            tag = await repo.find_tag(t.type, t.name, t.scope)
            if tag is None:
                tag = await repo.create_tag(t.type, t.name, t.scope)
            await repo.attach_tag(id_, tag.id)
        log.info(
            "successfully imported a new job (jobId: %d, cluster: %s, dbid: %d)", job.job_id, job.cluster, id_
        )
        ids.append(id_)
    return ids
