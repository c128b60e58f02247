"""Metric data of one job for the API and the pages: from the metric store or from the archive.

Source selection (spec backend-behaviour §2.9): a job that is running, or whose archiving is still
pending (`monitoringStatus == 1`), is read from the metric store through the dispatcher; every other
job from its archived data file.  Archived data is filtered to the requested metrics and scopes
(a metric stored at one scope only is always returned at that scope; when none of the requested
scopes exists all stored scopes are kept) and downsampled with LTTB when a coarser resolution is
asked for.  The result is always plain JSON-ready dicts in upstream's key spelling.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from cccommon.lttb import lttb

from .model import Job

if TYPE_CHECKING:
    from .context import BackendContext

__all__ = ["JobDataError", "from_archive", "load_job_data", "metrics_list", "uses_metric_store"]

log = logging.getLogger("ccbackend.jobdata")


class JobDataError(Exception):
    """Metric data could not be loaded; the message names the job and the cause."""


def uses_metric_store(job: Job) -> bool:
    return job.job_state == "running" or job.monitoring_status == 1


def _as_plain(data: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """JobData model or dict → {metric: {scope: JobMetric dict}} with upstream key names."""
    if hasattr(data, "model_dump"):
        return data.model_dump(mode="python", by_alias=True, exclude_none=True)
    return data


def _resample(metric: dict[str, Any], resolution: int | None, min_points: int) -> dict[str, Any]:
    timestep = int(metric.get("timestep") or 0)
    if not resolution or not timestep or resolution <= timestep or resolution % timestep:
        return metric
    out = dict(metric)
    series = []
    for s in metric.get("series") or ():
        arr = np.array(s.get("data") or (), dtype=np.float64)  # None (JSON null) becomes NaN
        new, step = lttb(arr, timestep, resolution, min_points)
        out["timestep"] = step
        series.append({**s, "data": new})
    out["series"] = series
    out.pop("statisticsSeries", None)
    return out


def from_archive(
    data: Any,
    metrics: list[str] | None,
    scopes: list[str] | None,
    resolution: int | None = None,
    min_points: int = 1000,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Filter archived job data to metrics/scopes (rules in the module docstring) and resample."""
    plain = _as_plain(data)
    wanted = set(scopes or ["node"])
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, by_scope in plain.items():
        if metrics is not None and name not in metrics:
            continue
        keep = {s: m for s, m in by_scope.items() if s in wanted}
        if not keep:
            keep = dict(by_scope)
        out[name] = {s: _resample(m, resolution, min_points) for s, m in keep.items()}
    return out


async def load_job_data(
    ctx: BackendContext,
    job: Job,
    metrics: list[str] | None,
    scopes: list[str] | None,
    resolution: int | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The job's metric data, {metric: {scope: JobMetric}}; JobDataError when no source answers."""
    scopes = scopes or ["node"]
    if uses_metric_store(job):
        try:
            data = await ctx.dispatcher.load_job_data(job, metrics, scopes, resolution)
        except Exception as e:  # the dispatcher raises its own error type; all end the request the same way
            raise JobDataError(f"loading metric data of job {job.id} from the metric store failed: {e}") from e
        return _as_plain(data)
    try:
        data = await asyncio.to_thread(ctx.archive.load_data, job.cluster, job.job_id, job.start_time)
    except Exception as e:
        raise JobDataError(f"loading archived data of job {job.id} failed: {e}") from e
    min_points = 1000
    res_cfg = getattr(ctx.config.main, "resampling", None)
    if res_cfg is not None and getattr(res_cfg, "minimum_points", None):
        min_points = int(res_cfg.minimum_points)
    return await asyncio.to_thread(from_archive, data, metrics, scopes, resolution, min_points)


def metrics_list(data: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The `jobMetrics` list form: [{"name", "scope", "metric"}] sorted by name then scope."""
    return [
        {"name": name, "scope": scope, "metric": metric}
        for name in sorted(data)
        for scope, metric in sorted(data[name].items())
    ]
