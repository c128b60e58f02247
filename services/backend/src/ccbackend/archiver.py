"""The archiver: one background worker that moves finished jobs into the job archive (spec
backend-behaviour §2.6, backend-data §1.4, §3.7 step 6).

For each job: load all metrics of its subcluster at node scope (plus core for ≤ 8 nodes, plus
accelerator when it has GPUs) at native resolution, compute statistics, write meta.json and the data
file, then one database update with footprint, energy footprint, energy and monitoring_status 3.

Failure policy:
* metric store unreachable (MetricDataError): the job is still archived, with empty statistics and
  no data, so it is never lost; monitoring_status becomes 2 (archiving failed) and the log line names
  the job. Partial data (some series missing) is archived as is, status 3, with a warning.
* writing the archive fails: monitoring_status 2.
* building footprint/energy or the final update fails: logged, status stays 1 (as upstream).
* jobs with monitoring_status 0 are never archived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from cccommon.schema import JobData, JobMeta, JobStatistics

from .clusters import ClusterRegistry
from .jobstats import FootprintError, energy_footprint, footprint, job_statistics
from .metricdata import MetricDataDispatcher, MetricDataError
from .model import Job, MonitoringStatus, job_json
from .repository.base import Repository

__all__ = ["Archiver", "build_meta", "scopes_for"]

log = logging.getLogger("ccbackend.archiver")

StopHook = Callable[[Job], Awaitable[None]]



class _Archive(Protocol):
    def store_job(self, meta: JobMeta, data: JobData, *, compress: bool = True, overwrite: bool = False) -> Any: ...


def scopes_for(job: Job) -> list[str]:
    """node always; core for jobs on at most 8 nodes; accelerator when the job has accelerators."""
    scopes = ["node"]
    if job.num_nodes <= 8:
        scopes.append("core")
    if job.num_acc > 0:
        scopes.append("accelerator")
    return scopes


def build_meta(job: Job, statistics: dict[str, JobStatistics]) -> JobMeta:
    """meta.json of an archived job: the job document (with its tags) plus the statistics."""
    doc = job_json(job)
    doc.pop("id", None)
    doc.pop("concurrentJobs", None)
    for t in doc.get("tags") or ():
        t["id"] = 0
    doc["statistics"] = {m: s.model_dump(mode="json", by_alias=True, exclude_none=True) for m, s in statistics.items()}
    return JobMeta.model_validate(doc)


class Archiver:
    """A bounded queue and one worker task; `drain` at shutdown waits for queued jobs."""

    def __init__(
        self,
        repo: Repository,
        archive: _Archive,
        dispatcher: MetricDataDispatcher,
        registry: ClusterRegistry,
        queue_size: int = 128,
        *,
        metrics_registry: CollectorRegistry | None = None,
        stop_hooks: list[StopHook] | None = None,
    ) -> None:
        self.repo = repo
        self.archive = archive
        self.dispatcher = dispatcher
        self.registry = registry
        self.stop_hooks = list(stop_hooks or [])
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        r = self.metrics_registry = metrics_registry if metrics_registry is not None else CollectorRegistry()
        self.archived = Counter("ccbackend_archiver_jobs_archived", "Jobs archived successfully", registry=r)
        self.failed = Counter(
            "ccbackend_archiver_jobs_failed", "Jobs whose archiving failed (status 2) or stayed at 1", registry=r
        )
        self.queue_length = Gauge("ccbackend_archiver_queue_length", "Jobs waiting to be archived", registry=r)
        self.queue_length.set_function(self._queue.qsize)

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Start the worker task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._worker(), name="archiver")

    async def enqueue(self, job: Job) -> None:
        """Queue a stopped job; waits while the queue is full. Jobs with monitoring status 0 are dropped."""
        if job.monitoring_status == MonitoringStatus.DISABLED:
            log.info("job %d (%s, db id %s): monitoring disabled, not archived", job.job_id, job.cluster, job.id)
            return
        await self._queue.put(job)

    def pending(self) -> int:
        return self._queue.qsize()

    async def drain(self, timeout: float = 60.0) -> bool:  # noqa: ASYNC109 - the shutdown API
        """Wait up to `timeout` s for the queue to empty, then stop the worker; True if all were done."""
        done = True
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(self._queue.join(), timeout)
            except TimeoutError:
                done = False
                log.warning("archiver: %d jobs still queued after %.0f s at shutdown", self._queue.qsize(), timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return done

    async def _worker(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self.archive_job(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one job kill the worker
                log.exception("job %d (%s, db id %s): archiving crashed", job.job_id, job.cluster, job.id)
                self.failed.inc()
            finally:
                self._queue.task_done()

    # ------------------------------------------------------------------ one job

    async def _fail(self, job: Job, why: str) -> None:
        self.failed.inc()
        log.error("job %d (%s, db id %s): archiving failed: %s", job.job_id, job.cluster, job.id, why)
        if job.id is not None:
            try:
                await self.repo.set_monitoring_status(job.id, MonitoringStatus.ARCHIVING_FAILED)
            except Exception as e:  # noqa: BLE001 - log and go on with the next job
                log.error("job %d (db id %s): cannot set monitoring status 2: %s", job.job_id, job.id, e)

    async def archive_job(self, job: Job) -> int:
        """Archive one job now; returns the monitoring status it ended with (3, 2, or 1)."""
        if job.monitoring_status == MonitoringStatus.DISABLED:
            return MonitoringStatus.DISABLED
        store_error: str | None = None
        try:
            data = await self.dispatcher.load_job_data(job, None, scopes_for(job), 0)
        except MetricDataError as e:
            store_error = str(e)
            data = JobData({})
        except Exception as e:  # noqa: BLE001 - bad cluster/topology and the like
            await self._fail(job, f"loading metric data: {e}")
            return MonitoringStatus.ARCHIVING_FAILED
        stats = job_statistics(data, job.num_nodes, self.registry, job.cluster)
        try:
            meta = build_meta(job, stats)
            await asyncio.to_thread(self.archive.store_job, meta, data, overwrite=True)
        except Exception as e:  # noqa: BLE001 - ArchiveError, validation errors, OSError
            await self._fail(job, f"writing the archive: {e}")
            return MonitoringStatus.ARCHIVING_FAILED
        if store_error is not None:
            await self._fail(job, f"metric store unavailable, archived without metric data: {store_error}")
            return MonitoringStatus.ARCHIVING_FAILED
        try:
            fp = footprint(job, stats, self.registry)
            efp, energy = energy_footprint(job, stats, self.registry)
            if job.id is None:
                raise FootprintError("job has no database id")
            await self.repo.update_archived(job.id, fp, efp, energy, MonitoringStatus.ARCHIVING_SUCCESSFUL)
        except Exception as e:  # noqa: BLE001 - status stays 1, as upstream
            self.failed.inc()
            log.error(
                "job %d (%s, db id %s): archived, but updating footprint/energy failed: %s",
                job.job_id, job.cluster, job.id, e,
            )
            return MonitoringStatus.RUNNING_OR_ARCHIVING
        self.archived.inc()
        log.info("job %d (%s, db id %s) archived: %d metrics", job.job_id, job.cluster, job.id, len(data))
        for hook in self.stop_hooks:
            try:
                await hook(job)
            except Exception:  # noqa: BLE001
                log.exception("job %d (db id %s): job-stop hook failed", job.job_id, job.id)
        return MonitoringStatus.ARCHIVING_SUCCESSFUL
