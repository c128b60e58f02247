"""Job statistics, footprint and energy (spec backend-data §1.3, §3.5; backend-behaviour §2.4, §2.6).

Pure functions used by the archiver, the running-job footprint worker and the importer (`-init-db`,
which calls them for every job, so they stay cheap: one pass over node-scope series, numpy only
where samples are touched).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cccommon.schema import JobData, JobStatistics, MetricStatistics, Series, Unit

from .clusters import ClusterRegistry
from .metricdata.transform import round2
from .model import Job

__all__ = [
    "FootprintError",
    "energy_footprint",
    "footprint",
    "job_statistics",
    "series_statistics",
    "statistics_from_node_stats",
]


class FootprintError(ValueError):
    """A footprint cannot be built (unknown subcluster, statistic type other than avg/min/max)."""


def series_statistics(series: Series) -> MetricStatistics:
    """The series' own statistics, or computed from its samples when absent (NaN-aware, 0 if empty)."""
    if series.statistics is not None:
        return series.statistics
    a = np.asarray(series.data, dtype=np.float64)
    a = a[~np.isnan(a)]
    if a.size == 0:
        return MetricStatistics(avg=0.0, min=0.0, max=0.0)
    return MetricStatistics(avg=round2(float(a.mean())), min=float(a.min()), max=float(a.max()))


def _unit(registry: ClusterRegistry, cluster: str, metric: str, fallback: Unit) -> Unit:
    mc = registry.cluster_metric(cluster, metric) if cluster in registry else None
    return mc.unit if mc is not None else fallback


def job_statistics(data: JobData, num_nodes: int, registry: ClusterRegistry, cluster: str) -> dict[str, JobStatistics]:
    """Per metric with node-scope series: avg = Σ node averages / num_nodes (round2), min of the
    node minima, max of the node maxima; unit from the cluster-level metric config."""
    out: dict[str, JobStatistics] = {}
    divisor = num_nodes if num_nodes > 0 else 1
    for metric, scoped in data.root.items():
        node = scoped.get("node")
        if node is None or not node.series:
            continue
        stats = [series_statistics(s) for s in node.series]
        out[metric] = JobStatistics(
            unit=_unit(registry, cluster, metric, node.unit),
            avg=round2(sum(s.avg for s in stats) / divisor),
            min=min(s.min for s in stats),
            max=max(s.max for s in stats),
        )
    return out


def statistics_from_node_stats(
    node_stats: Mapping[str, Mapping[str, MetricStatistics]], num_nodes: int, registry: ClusterRegistry, cluster: str
) -> dict[str, JobStatistics]:
    """Job statistics from per-host statistics (running jobs, `load_job_stats`): the same rule as
    `job_statistics`, with min/max over the hosts (upstream's 0-initialised min is not reproduced)."""
    out: dict[str, JobStatistics] = {}
    divisor = num_nodes if num_nodes > 0 else 1
    for metric, hosts in node_stats.items():
        if not hosts:
            continue
        vals = list(hosts.values())
        out[metric] = JobStatistics(
            unit=_unit(registry, cluster, metric, Unit(base="")),
            avg=round2(sum(s.avg for s in vals) / divisor),
            min=round2(min(s.min for s in vals)),
            max=round2(max(s.max for s in vals)),
        )
    return out


def _get(stats: Mapping[str, Any], metric: str, stat: str) -> float:
    s = stats.get(metric)
    if s is None:
        return 0.0
    v = s.get(stat) if isinstance(s, Mapping) else getattr(s, stat, None)
    return float(v) if v is not None else 0.0


def footprint(
    job: Job, stats: Mapping[str, Any], registry: ClusterRegistry, import_mode: bool = False
) -> dict[str, float]:
    """The `footprint` column: `<metric>_<stat>` for the subcluster's footprint metrics (0 if no stats).

    The stat type comes from the global catalogue; with `import_mode` (the `-init-db`/`-import-job`
    quirk) every key is `<metric>_avg` with the average. FootprintError for an unknown subcluster or
    a stat type other than avg/min/max.
    """
    try:
        fps = registry.footprint_metrics(job.cluster, job.sub_cluster)
    except LookupError as e:
        raise FootprintError(f"job {job.job_id}: {e}") from None
    out: dict[str, float] = {}
    for metric, stat in fps:
        if import_mode:
            stat = "avg"
        elif stat not in ("avg", "min", "max"):
            raise FootprintError(f"job {job.job_id}: footprint metric {metric!r} has invalid type {stat!r}")
        out[f"{metric}_{stat}"] = _get(stats, metric, stat)
    return out


def energy_footprint(job: Job, stats: Mapping[str, Any], registry: ClusterRegistry) -> tuple[dict[str, float], float]:
    """(`energy_footprint`, `energy`): kWh per energy metric and their rounded sum.

    `power` metrics (W): round2(avg × numNodes × duration / 3600 / 1000); `energy` metrics: 0 (not
    implemented upstream either).
    """
    try:
        ems = registry.energy_metrics(job.cluster, job.sub_cluster)
    except LookupError as e:
        raise FootprintError(f"job {job.job_id}: {e}") from None
    out: dict[str, float] = {}
    total = 0.0
    for metric, kind in ems:
        kwh = 0.0
        if kind == "power":
            kwh = round2(_get(stats, metric, "avg") * job.num_nodes * job.duration / 3600 / 1000)
        out[metric] = kwh
        total += kwh
    return out, round2(total)
