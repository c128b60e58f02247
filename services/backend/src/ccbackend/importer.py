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
import logging
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson
from pydantic import BaseModel

from .model import JOB_STATES, SHARED_VALUES, BadRequest, Job, JobTag, MonitoringStatus
from .model import Resource as _Resource

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
            if kind == "energy":
                log.warning(
                    "energy metric %s of %s/%s has energy type 'energy': its energy is not computed (0), as upstream",
                    name,
                    cluster,
                    sub_cluster,
                )
        return _Plan(fp, energy)

    def convert(self, d: dict[str, Any], where: str) -> Job:
        """A Job from a meta.json object; JobCheckError (naming `where`) when it must be skipped."""
        if type(d) is not dict:
            raise JobCheckError(f"{where}: not a JSON object")
        cluster = _str(d, "cluster", where)
        sub_cluster = _str(d, "subCluster", where)
        plan = self._plan(cluster, sub_cluster)
        # sanity checks of start_job, in upstream's order
        state = d.get("jobState")
        if state not in _STATES:
            raise JobCheckError(f"{where}: not a valid job state: {state!r}")
        resources_raw = d.get("resources")
        user = _str(d, "user", where)
        if not resources_raw or type(resources_raw) is not list or not user:
            raise JobCheckError(f"{where}: 'resources' and 'user' should not be empty")
        num_nodes = _int(d, "numNodes", where)
        num_hw = _int(d, "numHwthreads", where)
        num_acc = _int(d, "numAcc", where)
        if num_acc < 0 or num_hw < 0 or num_nodes < 1:
            raise JobCheckError(f"{where}: 'numNodes', 'numAcc' or 'numHWThreads' invalid")
        if len(resources_raw) != num_nodes:
            raise JobCheckError(
                f"{where}: len(resources) does not equal numNodes ({len(resources_raw)} vs {num_nodes})"
            )
        resources = [self._resource(r, where, i) for i, r in enumerate(resources_raw)]
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
        meta_data = d.get("metaData")
        if meta_data is not None:
            if type(meta_data) is not dict or any(type(v) is not str for v in meta_data.values()):
                raise JobCheckError(f"{where}: field 'metaData': expected an object of strings")
        tags_raw = d.get("tags")
        tags: list[JobTag] | None = None
        if tags_raw:
            if type(tags_raw) is not list:
                raise JobCheckError(f"{where}: field 'tags': expected a list")
            tags = [self._tag(t, where, i) for i, t in enumerate(tags_raw)]
        return Job.model_construct(
            cluster=cluster,
            sub_cluster=sub_cluster,
            partition=_str(d, "partition", where),
            project=_str(d, "project", where),
            user=user,
            shared=shared,
            job_state=state,
            tags=tags,
            resources=resources,
            energy_footprint=energy_fp,
            footprint=footprint,
            meta_data=meta_data,
            concurrent_jobs=None,
            energy=round2(total),
            array_job_id=_int(d, "arrayJobId", where),
            walltime=_int(d, "walltime", where),
            requested_memory=_int(d, "requestedMemory", where),
            job_id=_int(d, "jobId", where, -1),
            duration=duration,
            smt=_int(d, "smt", where),
            monitoring_status=_ARCHIVED,
            num_acc=num_acc,
            num_hwthreads=num_hw,
            num_nodes=num_nodes,
            statistics=stats,
            id=None,
            submit_time=_int(d, "submitTime", where),
            start_time=_int(d, "startTime", where, -1),
        )

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

    @staticmethod
    def _resource(r: Any, where: str, i: int) -> _Resource:
        if type(r) is not dict or type(r.get("hostname")) is not str:
            raise JobCheckError(f"{where}: field 'resources[{i}].hostname': required, a string")
        hw = r.get("hwthreads")
        acc = r.get("accelerators")
        conf = r.get("configuration")
        if hw is not None and type(hw) is not list:
            raise JobCheckError(f"{where}: field 'resources[{i}].hwthreads': expected a list of integers")
        if acc is not None and type(acc) is not list:
            raise JobCheckError(f"{where}: field 'resources[{i}].accelerators': expected a list of strings")
        if conf is not None and type(conf) is not str:
            raise JobCheckError(f"{where}: field 'resources[{i}].configuration': expected a string")
        return _Resource.model_construct(
            hostname=r["hostname"], hwthreads=hw or None, accelerators=acc or None, configuration=conf or None
        )

    @staticmethod
    def _tag(t: Any, where: str, i: int) -> JobTag:
        if type(t) is not dict or type(t.get("type")) is not str or type(t.get("name")) is not str:
            raise JobCheckError(f"{where}: field 'tags[{i}]': needs string 'type' and 'name'")
        scope = t.get("scope")
        return JobTag.model_construct(
            id=0, type=t["type"], name=t["name"], scope=scope if isinstance(scope, str) and scope else "global"
        )


# ------------------------------------------------------------------------------------- progress


class _Progress:
    """A bar on a terminal, else one log line every few seconds."""

    def __init__(self, total: int, enabled: bool, stream: TextIO | None = None, interval: float = 5.0) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval
        self.t0 = time.monotonic()
        self.last = self.t0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if now - self.last < 0.1 and done < self.total:
                return
            width = 40
            frac = done / self.total if self.total else 1.0
            bar = "#" * int(frac * width)
            self.stream.write(f"\r[{bar:<{width}}] {done}/{self.total} jobs inserted ({frac:5.1%})")
            self.stream.flush()
        elif now - self.last >= self.interval:
            rate = done / (now - self.t0) if now > self.t0 else 0.0
            log.info("init-db: %d of %d jobs processed (%.0f jobs/s)", done, self.total, rate)
        else:
            return
        self.last = now

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# -------------------------------------------------------------------------------------- init-db


def _load_chunk(
    archive: Any, keys: Sequence[Any], convert: Callable[[dict[str, Any], str], Job]
) -> tuple[list[Job], list[str]]:
    """Read and convert the meta.json of `keys` (runs in a worker thread)."""
    jobs: list[Job] = []
    errors: list[str] = []
    load = archive.load_meta_dict
    for key in keys:
        cluster, job_id, start_time = key
        where = f"{cluster}/{job_id // 1000}/{job_id % 1000:03d}/{start_time}/meta.json"
        try:
            d = load(cluster, job_id, start_time)
            job = convert(d, where)
        except JobCheckError as e:
            errors.append(str(e))
            continue
        except Exception as e:  # noqa: BLE001 - ArchiveError and decoding problems: skip the job
            errors.append(str(e) or f"{where}: {type(e).__name__}")
            continue
        if job.start_time != start_time or job.job_id != job_id or job.cluster != cluster:
            errors.append(
                f"{where}: jobId/cluster/startTime in meta.json ({job.job_id}/{job.cluster}/{job.start_time}) "
                "do not match the archive location"
            )
            continue
        jobs.append(job)
    return jobs, errors


async def init_db(
    repo: Any,
    archive: Any,
    registry: Any,
    progress: bool = True,
    *,
    batch_size: int = BATCH_SIZE,
    workers: int = 2,
    stream: TextIO | None = None,
) -> tuple[int, int, float]:
    """Rebuild job/tag/jobtag from the archive; returns (imported, skipped, seconds).

    All rows of job, tag and jobtag are deleted first (running jobs in `job` are lost, `job_cache` is
    untouched).  Bad jobs are logged, skipped and counted.
    """
    t0 = time.perf_counter()
    await repo.delete_all_jobs()
    log.info("Building job table...")
    keys = await asyncio.to_thread(archive.job_keys)
    total = len(keys)
    conv = JobConverter(registry)
    bar = _Progress(total, progress, stream)
    imported = skipped = done = 0
    loop = asyncio.get_running_loop()
    pending: deque[asyncio.Future[tuple[list[Job], list[str]]]] = deque()

    async def drain_one() -> None:
        nonlocal imported, skipped, done
        jobs, errors = await pending.popleft()
        for msg in errors:
            log.error("init-db: skipping job: %s", msg)
        skipped += len(errors)
        done += len(errors)
        if jobs:
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
            done += len(jobs)
        bar.update(done)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="init-db") as pool:
        try:
            for i in range(0, total, batch_size):
                chunk = keys[i : i + batch_size]
                pending.append(loop.run_in_executor(pool, _load_chunk, archive, chunk, conv.convert))
                if len(pending) > workers:
                    await drain_one()
            while pending:
                await drain_one()
        finally:
            for fut in pending:
                fut.cancel()
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
