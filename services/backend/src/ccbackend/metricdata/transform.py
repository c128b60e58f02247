"""Post-processing of loaded job data (spec backend-behaviour §2.9): series from store entries,
per-timestep statistics series, synthesised node scope, statistics rounding. numpy over whole series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cccommon.schema import JobMetric, MetricStatistics, Series, StatsSeries

from .scopes import GRANULARITY

__all__ = [
    "STATS_SERIES_MIN",
    "add_node_scope",
    "add_statistics_series",
    "as_list",
    "round2",
    "round_statistics",
    "to_array",
]

STATS_SERIES_MIN = 8
"""A (metric, scope) with at least this many series gets a statisticsSeries."""


def round2(x: float) -> float:
    """Round half away from zero to two decimals (Go's math.Round(x*100)/100)."""
    if not math.isfinite(x):
        return x
    return math.copysign(math.floor(abs(x) * 100 + 0.5), x) / 100


def to_array(data: Sequence[float | None]) -> np.ndarray:
    """A float64 array with NaN for missing samples."""
    return np.asarray(data, dtype=np.float64)


def as_list(a: np.ndarray) -> list[float | None]:
    """Samples as a JSON-ready list: NaN and ±Inf become None."""
    vals = a.tolist()
    if np.isfinite(a).all():
        return vals
    return [v if math.isfinite(v) else None for v in vals]


def _matrix(series: Sequence[Series]) -> tuple[np.ndarray, int]:
    """(rows of the first m samples of every series, longest length n)."""
    lengths = [len(s.data) for s in series]
    m, n = min(lengths), max(lengths)
    mat = np.asarray([s.data[:m] for s in series], dtype=np.float64).reshape(len(series), m)
    return mat, n


def add_statistics_series(jm: JobMetric, minimum: int = STATS_SERIES_MIN) -> bool:
    """Add min/median/max across series per timestep (upstream quirks: median counts gaps as 0,
    fewer than 3 values → null, positions beyond the shortest series → null, mean stays null)."""
    if jm.statistics_series is not None or len(jm.series) < minimum:
        return False
    mat, n = _matrix(jm.series)
    m = mat.shape[1]
    mn = np.full(n, np.nan)
    mx = np.full(n, np.nan)
    med = np.full(n, np.nan)
    if m:
        valid = ~np.isnan(mat)
        enough = valid.sum(axis=0) >= 3
        if enough.any():
            cols = mat[:, enough]
            mn[:m][enough] = np.nanmin(cols, axis=0)
            mx[:m][enough] = np.nanmax(cols, axis=0)
            med[:m][enough] = np.median(np.nan_to_num(cols, nan=0.0), axis=0)
    jm.statistics_series = StatsSeries(mean=None, median=as_list(med), min=as_list(mn), max=as_list(mx))
    return True


def add_node_scope(scoped: dict[str, JobMetric]) -> bool:
    """Synthesise node scope from the coarsest finer scope: per host the sample-wise sum (first m
    samples), avg = sum of averages / count, min of minima, max of maxima. False if nothing to do."""
    if "node" in scoped or not scoped:
        return False
    finer = max(scoped, key=lambda s: GRANULARITY.get(s, -1))
    jm = scoped[finer]
    if not jm.series:
        return False
    hosts: dict[str, list[Series]] = {}
    for s in jm.series:
        hosts.setdefault(s.hostname, []).append(s)
    out = []
    for host, group in hosts.items():
        mat, _ = _matrix(group)
        stats = [s.statistics for s in group]
        known = [st for st in stats if st is not None]
        out.append(
            Series.model_construct(
                hostname=host,
                statistics=MetricStatistics.model_construct(
                    avg=sum(st.avg for st in known) / len(group) if known else 0.0,
                    min=min((st.min for st in known), default=0.0),
                    max=max((st.max for st in known), default=0.0),
                ),
                data=as_list(mat.sum(axis=0)),
            )
        )
    scoped["node"] = JobMetric(unit=jm.unit, timestep=jm.timestep, series=out)
    return True


def round_statistics(jm: JobMetric) -> None:
    """Round every series' min/avg/max to two decimals in place."""
    for s in jm.series:
        st = s.statistics
        if st is not None:
            st.avg, st.min, st.max = round2(st.avg), round2(st.min), round2(st.max)
