"""Pydantic models of ClusterCockpit's shared data structures: cluster.json, job meta.json and data.json.

Models accept the upstream camelCase keys (and the snake_case field names), keep unknown keys so
files round-trip, and `dump` writes them back with the upstream spelling and without absent fields.
"""

from ._base import MetricStatistics, SchemaModel, Unit, dump, dumps, read_json
from .cluster import (
    SCOPES,
    Accelerator,
    Cluster,
    MetricConfig,
    MetricValue,
    SubCluster,
    SubClusterConfig,
    Topology,
    check_cluster,
    load_cluster,
)
from .job import (
    JobData,
    JobMeta,
    JobMetric,
    JobState,
    JobStatistics,
    Resource,
    Series,
    StatsSeries,
    Tag,
    Thresholds,
    load_job_data,
    load_job_meta,
)

__all__ = [
    "SCOPES",
    "Accelerator",
    "Cluster",
    "JobData",
    "JobMeta",
    "JobMetric",
    "JobState",
    "JobStatistics",
    "MetricConfig",
    "MetricStatistics",
    "MetricValue",
    "Resource",
    "SchemaModel",
    "Series",
    "StatsSeries",
    "SubCluster",
    "SubClusterConfig",
    "Tag",
    "Thresholds",
    "Topology",
    "Unit",
    "check_cluster",
    "dump",
    "dumps",
    "load_cluster",
    "load_job_data",
    "load_job_meta",
    "read_json",
]
