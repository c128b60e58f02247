"""Job archive files: meta.json (job-meta.schema.json) and data.json (job-data / job-metric-data)."""

from __future__ import annotations

import os
from enum import StrEnum

from pydantic import Field, RootModel

from ._base import MetricStatistics, SchemaModel, Unit, parse_file

__all__ = [
    "JobData",
    "JobMeta",
    "JobMetric",
    "JobState",
    "JobStatistics",
    "Resource",
    "Series",
    "StatsSeries",
    "Tag",
    "Thresholds",
    "load_job_data",
    "load_job_meta",
]


class JobState(StrEnum):
    """State of a job: the 12 states of cc-lib / the v11 database, plus the legacy `stopped` of old archives.

    Archived jobs never carry `running`; `stopped` is no longer written by anyone but is still read.
    """

    BOOT_FAIL = "boot_fail"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    DEADLINE = "deadline"
    FAILED = "failed"
    NODE_FAIL = "node_fail"
    OUT_OF_MEMORY = "out_of_memory"
    PENDING = "pending"
    PREEMPTED = "preempted"
    RUNNING = "running"
    SUSPENDED = "suspended"
    TIMEOUT = "timeout"
    STOPPED = "stopped"


class Resource(SchemaModel):
    """A node used by a job, with the hwthreads and accelerators it got there."""

    hostname: str
    hwthreads: list[int] | None = None
    accelerators: list[str] | None = None
    configuration: str | None = None


class Tag(SchemaModel):
    """A job tag (`type` and `name`; newer upstream versions add `scope`)."""

    type: str
    name: str
    scope: str | None = None


class JobStatistics(MetricStatistics):
    """Statistics of one metric over a whole job, with its unit (job-metric-statistics.schema.json)."""

    unit: Unit


class JobMeta(SchemaModel):
    """A job's meta.json: identity, placement, state, timing and per-metric statistics."""

    job_id: int
    user: str
    project: str
    cluster: str
    sub_cluster: str
    partition: str | None = None
    array_job_id: int | None = None
    num_nodes: int = Field(gt=0)
    num_hwthreads: int | None = None
    num_acc: int | None = None
    exclusive: int | None = Field(default=None, ge=0, le=2)
    shared: str | None = None
    monitoring_status: int | None = None
    smt: int | None = None
    job_state: JobState
    start_time: int
    stop_time: int | None = None
    duration: int
    walltime: int | None = None
    resources: list[Resource] = Field(min_length=1)
    meta_data: dict[str, str] | None = None
    tags: list[Tag] | None = None
    statistics: dict[str, JobStatistics]
    footprint: dict[str, float] | None = None
    energy_footprint: dict[str, float] | None = None
    energy: float | None = None
    concurrent_jobs: dict[str, object] | None = None


class Series(SchemaModel):
    """The time series of one host (and, below node scope, one `id`); gaps in `data` are null."""

    hostname: str
    id: str | None = None
    statistics: MetricStatistics | None = None  # required by the schema, absent in upstream test data
    data: list[float | None]


class StatsSeries(SchemaModel):
    """Per-timestep statistics across all series of a metric; `percentiles` keyed by "10", "25", ..."""

    min: list[float | None] | None = None
    max: list[float | None] | None = None
    mean: list[float | None] | None = None
    median: list[float | None] | None = None
    percentiles: dict[str, list[float | None]] | None = None


class Thresholds(SchemaModel):
    """Metric thresholds for the job's system."""

    peak: float | None = None
    normal: float | None = None
    caution: float | None = None
    alert: float | None = None


class JobMetric(SchemaModel):
    """All series of one metric at one scope (job-metric-data.schema.json)."""

    unit: Unit
    timestep: int
    series: list[Series]
    statistics_series: StatsSeries | None = None
    thresholds: Thresholds | None = None


class JobData(RootModel[dict[str, dict[str, JobMetric]]]):
    """A job's data.json: metric name → scope (`node`, `socket`, `core`, ...) → JobMetric."""

    def __getitem__(self, metric: str) -> dict[str, JobMetric]:
        return self.root[metric]

    def __contains__(self, metric: object) -> bool:
        return metric in self.root

    def __len__(self) -> int:
        return len(self.root)

    def metrics(self) -> list[str]:
        """Names of the metrics in this file."""
        return list(self.root)


def load_job_meta(path: str | os.PathLike[str]) -> JobMeta:
    """Load a meta.json; bad input raises ConfigError naming the file and field."""
    return parse_file(path, JobMeta)


def load_job_data(path: str | os.PathLike[str]) -> JobData:
    """Load a data.json or data.json.gz; bad input raises ConfigError naming the file and field."""
    return parse_file(path, JobData)
