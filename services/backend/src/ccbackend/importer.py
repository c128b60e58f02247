"""Filling the job table from archived jobs: `-init-db` (whole archive) and `-import-job` (file pairs).

Both paths (spec §3.8, §6.1) set `monitoringStatus` 3, require a valid `subCluster`, compute the
footprint and energy from the meta.json statistics the way upstream's importer does (footprint keys
are always `<metric>_avg` with the average, energy metrics of type `power` give
round2(avg × nodes × duration / 3.6e6) kWh), and apply the sanity checks of start_job.  Jobs that fail
are skipped and counted by `-init-db`; `-import-job` stops at the first bad pair.

`init_db` is built for large archives: meta.json files are read and turned into rows in worker
threads while the previous batch is inserted, and the per-job work is a handful of dict lookups
(footprint plans are computed once per subcluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson
from pydantic import BaseModel, ValidationError

from .model import JOB_STATES, SHARED_VALUES, BadRequest, Job, MonitoringStatus

__all__ = [
    "BATCH_SIZE",
    "ImportError_",
    "JobCheckError",
    "JobConverter",
    "import_jobs",
    "init_db",
    "parse_import_flag",
    "round2",
]

log = logging.getLogger("ccbackend.importer")

BATCH_SIZE = 1000
"""Jobs per `insert_jobs` call (one transaction each)."""

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
            raise JobCheckError(f"{where}: len(resources) does not equal numNodes ({len(resources)} vs {num_nodes})")
        shared = d.get("shared")
        if shared is None:
            shared = _EXCLUSIVE_TO_SHARED.get(d.get("exclusive", 1), "none")  # type: ignore[arg-type]
        if shared not in _SHARED:
            raise JobCheckError(f"{where}: field 'shared': must be one of {', '.join(SHARED_VALUES)}, got {shared!r}")
        duration = _int(d, "duration", where)
        stats = d.get("statistics")
        if stats is not None and type(stats) is not dict:
            raise JobCheckError(f"{where}: field 'statistics': expected an object")
        footprint = {f"{m}_avg": self._avg(stats, m, where) for m in plan.footprint}
        energy_fp: dict[str, float] = {}
        total = 0.0
        for m, kind in plan.energy:
            e = round2(self._avg(stats, m, where) * num_nodes * (duration / 3600.0) / 1000.0) if kind == "power" else 0.0
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
    return {"type": t.get("type"), "name": t.get("name"), "scope": scope if isinstance(scope, str) and scope else "global"}


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
            log.info("init-db: %d jobs processed, %.0f%% of the archive (%.0f jobs/s)", done, frac * 100, rate)
        else:
            return
        self.last = now

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# -------------------------------------------------------------------------------------- init-db


Batch = tuple[list[Any], list[str]]
"""What a unit of work returns: converted jobs (or encoded job objects) and error messages."""


def _check_location(d: dict[str, Any], cluster: str, job_id: int, start_time: int, where: str) -> None:
    if type(d) is dict and (d.get("startTime") != start_time or d.get("jobId") != job_id or d.get("cluster") != cluster):
        raise JobCheckError(
            f"{where}: jobId/cluster/startTime in meta.json ({d.get('jobId')}/{d.get('cluster')}/"
            f"{d.get('startTime')}) do not match the archive location"
        )


def _load_keys(archive: Any, keys: Sequence[Any], handle: Callable[[dict[str, Any], str], Any]) -> Batch:
    """Read and convert the meta.json of `keys` through the archive interface (a worker thread)."""
    out: list[Any] = []
    errors: list[str] = []
    load = archive.load_meta_dict
    for cluster, job_id, start_time in keys:
        where = f"{cluster}/{job_id // 1000}/{job_id % 1000:03d}/{start_time}/meta.json"
        try:
            d = load(cluster, job_id, start_time)
            _check_location(d, cluster, job_id, start_time, where)
            out.append(handle(d, where))
        except JobCheckError as e:
            errors.append(str(e))
        except Exception as e:  # noqa: BLE001 - ArchiveError and decoding problems: skip the job
            errors.append(str(e) or f"{where}: {type(e).__name__}")
    return out, errors


def _numeric_dirs(path: str) -> list[tuple[int, str]]:
    """(number, path) of the numeric sub-directories of `path`, sorted; others are ignored."""
    out = []
    with os.scandir(path) as it:
        for e in it:
            if e.name.isdigit() and e.is_dir(follow_symlinks=False):
                out.append((int(e.name), e.path))
    out.sort()
    return out


def _load_l1(cluster: str, l1: int, l1_path: str, handle: Callable[[dict[str, Any], str], Any]) -> Batch:
    """Every job below one `<cluster>/<jobId // 1000>` directory of a file archive."""
    out: list[Any] = []
    errors: list[str] = []
    try:
        l2_dirs = _numeric_dirs(l1_path)
    except OSError as e:
        return out, [f"{l1_path}: cannot list directory: {e.strerror or e}"]
    for l2, l2_path in l2_dirs:
        job_id = l1 * 1000 + l2
        try:
            starts = _numeric_dirs(l2_path)
        except OSError as e:
            errors.append(f"{l2_path}: cannot list directory: {e.strerror or e}")
            continue
        for start_time, d in starts:
            where = f"{d}/meta.json"
            try:
                with open(where, "rb") as f:
                    raw = f.read()
            except FileNotFoundError:
                errors.append(f"{where}: job not found (no meta.json)")
                continue
            except OSError as e:
                errors.append(f"{where}: cannot read: {e.strerror or e}")
                continue
            try:
                obj = orjson.loads(raw)
                _check_location(obj, cluster, job_id, start_time, where)
                out.append(handle(obj, where))
            except orjson.JSONDecodeError as e:
                errors.append(f"{where}: corrupt meta.json: invalid JSON: {e}")
            except JobCheckError as e:
                errors.append(str(e))
    return out, errors


# worker processes (large file archives): they read, check and prepare; the parent validates and inserts
_PROC_CONV: JobConverter | None = None


def _proc_init(root: str) -> None:
    """Initializer of a worker process: its own view of the archive's clusters, quiet logging."""
    global _PROC_CONV
    from .archive.fs import FsArchive
    from .clusters import ClusterRegistry

    logging.disable(logging.CRITICAL)  # problems come back as messages; the parent logs them once
    _PROC_CONV = JobConverter(ClusterRegistry.from_archive(FsArchive(root)))


def _proc_encode(d: dict[str, Any], where: str) -> tuple[str, bytes]:
    assert _PROC_CONV is not None
    return where, orjson.dumps(_PROC_CONV.prepare(d, where))


def _proc_load_l1(cluster: str, l1: int, l1_path: str) -> Batch:
    return _load_l1(cluster, l1, l1_path, _proc_encode)


def _decode_jobs(items: list[tuple[str, bytes]], errors: list[str]) -> list[Job]:
    """Validate the job objects prepared by a worker process into Jobs (errors appended)."""
    jobs = []
    for where, raw in items:
        try:
            jobs.append(Job.model_validate_json(raw))
        except ValidationError as e:
            errors.append(f"{where}: {_describe(e)}")
    return jobs


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
    untouched).  Bad jobs are logged, skipped and counted.  meta.json files are read by `workers`
    threads, or worker processes for large file archives (`processes`: None = automatic, from
    PROCESS_THRESHOLD directories on; default workers: 2 threads, or one process per CPU up to 8),
    while the previous batch is inserted.
    """
    t0 = time.perf_counter()
    await repo.delete_all_jobs()
    log.info("Building job table...")
    dirs, chunks = await asyncio.to_thread(_tasks, archive, batch_size)
    conv = JobConverter(registry)
    for c in registry.names():  # one warning per problem up front, whatever reads the files
        for sc in registry.get(c).sub_clusters:
            with contextlib.suppress(JobCheckError):
                conv._plan(c, sc.name)
    use_procs = bool(dirs) and (processes if processes is not None else len(dirs) >= PROCESS_THRESHOLD)
    if workers is None:
        workers = max(2, min(8, os.cpu_count() or 2)) if use_procs else 2
    bar = _Progress(progress, stream)
    ntasks = len(dirs) + len(chunks)
    imported = skipped = done = finished = 0
    loop = asyncio.get_running_loop()
    pending: deque[asyncio.Future[Batch]] = deque()

    async def insert(jobs: list[Job]) -> None:
        nonlocal imported, skipped
        ids = await repo.insert_jobs(jobs)
        for job, id_ in zip(jobs, ids, strict=True):
            if id_ is None:
                skipped += 1
                log.error(
                    "init-db: skipping job %d on %s started at %d: already in the database (duplicate)",
                    job.job_id,
                    job.cluster,
                    job.start_time,
                )
            else:
                imported += 1

    async def drain_one() -> None:
        nonlocal skipped, done, finished
        items, errors = await pending.popleft()
        jobs = _decode_jobs(items, errors) if use_procs else items
        for msg in errors:
            log.error("init-db: skipping job: %s", msg)
        skipped += len(errors)
        done += len(errors)
        for i in range(0, len(jobs), batch_size):
            await insert(jobs[i : i + batch_size])
        done += len(jobs)
        finished += 1
        bar.update(done, finished / ntasks)

    pool: Executor
    if use_procs:
        pool = ProcessPoolExecutor(
            max_workers=max(1, workers),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_proc_init,
            initargs=(os.fspath(archive.root),),
        )
        submit = [(_proc_load_l1, t) for t in dirs]
    else:
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="init-db")
        submit = [(_load_l1, (*t, conv.convert)) for t in dirs]
        submit += [(_load_keys, (archive, keys, conv.convert)) for keys in chunks]
    ahead = max(1, workers) + 1
    # the job table is empty now: let the repository drop its indexes and build them once at the end
    bulk = getattr(repo, "bulk_import", None)
    try:
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
            raise ImportError_(f"invalid import flag format {pair!r}: want <path-to-meta.json>:<path-to-data.json>")
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
        log.info("successfully imported a new job (jobId: %d, cluster: %s, dbid: %d)", job.job_id, job.cluster, id_)
        ids.append(id_)
    return ids
