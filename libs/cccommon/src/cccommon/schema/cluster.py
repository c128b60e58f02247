"""cluster.json: metric configuration and hardware partitions of one cluster (cluster.schema.json)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field

from cccommon.config import ConfigError

from ._base import SchemaModel, Unit, log, parse_file

__all__ = [
    "SCOPES",
    "Accelerator",
    "Cluster",
    "MetricConfig",
    "MetricValue",
    "SubCluster",
    "SubClusterConfig",
    "Topology",
    "check_cluster",
    "load_cluster",
]

SCOPES = ("node", "socket", "memoryDomain", "die", "core", "hwthread", "accelerator")
"""Metric scopes known upstream, coarsest first."""

Aggregation = Literal["sum", "avg", ""]
Footprint = Literal["avg", "max", "min"]
Energy = Literal["power", "energy"]


class SubClusterConfig(SchemaModel):
    """Per-subcluster override of a metric's thresholds and flags, or its removal (`remove: true`)."""

    name: str
    footprint: Footprint | None = None
    energy: Energy | None = None
    lower_is_better: bool | None = None
    peak: float | None = None
    normal: float | None = None
    caution: float | None = None
    alert: float | None = None
    remove: bool | None = None
    restrict: bool | None = None


class MetricConfig(SchemaModel):
    """One entry of `metricConfig`: a metric with unit, native scope, timestep and thresholds."""

    name: str
    unit: Unit
    scope: str
    timestep: int
    aggregation: Aggregation | None
    peak: float
    normal: float
    caution: float
    alert: float
    footprint: Footprint | None = None
    energy: Energy | None = None
    lower_is_better: bool | None = None
    restrict: bool | None = None
    sub_clusters: list[SubClusterConfig] | None = None


class MetricValue(SchemaModel):
    """A node capability such as `flopRateScalar`: a value with its unit."""

    unit: Unit | None = None
    value: float


class Accelerator(SchemaModel):
    """An accelerator device of a node; `id` is its resource id (PCI address recommended)."""

    id: str
    type: str
    model: str


class Topology(SchemaModel):
    """Hardware thread ids of a node, grouped by socket, memory domain, die and core."""

    node: list[int]
    socket: list[list[int]]
    memory_domain: list[list[int]]
    die: list[list[int]] | None = None
    core: list[list[int]] | None = None
    accelerators: list[Accelerator] | None = None


class SubCluster(SchemaModel):
    """A homogeneous hardware partition: node list, processor, topology and roofline capabilities."""

    name: str
    nodes: str
    processor_type: str
    sockets_per_node: int
    cores_per_socket: int
    threads_per_core: int
    flop_rate_scalar: MetricValue
    flop_rate_simd: MetricValue
    memory_bandwidth: MetricValue
    topology: Topology
    number_of_nodes: int | None = None


class Cluster(SchemaModel):
    """A whole cluster.json: name, metric list and subclusters (both non-empty)."""

    name: str
    metric_config: list[MetricConfig] = Field(min_length=1)
    sub_clusters: list[SubCluster] = Field(min_length=1)

    def metric(self, name: str) -> MetricConfig | None:
        """The metric configuration called `name`, or None."""
        return next((m for m in self.metric_config if m.name == name), None)

    def sub_cluster(self, name: str) -> SubCluster | None:
        """The subcluster called `name`, or None."""
        return next((s for s in self.sub_clusters if s.name == name), None)


def _check_sub_cluster(prefix: str, sc: SubCluster) -> list[str]:
    out: list[str] = []
    topo = sc.topology
    threads = sc.sockets_per_node * sc.cores_per_socket * sc.threads_per_core
    if threads != len(topo.node):
        out.append(
            f"{prefix}: socketsPerNode*coresPerSocket*threadsPerCore = {threads} "
            f"but topology.node lists {len(topo.node)} hwthreads"
        )
    if len(set(topo.node)) != len(topo.node):
        out.append(f"{prefix}.topology.node: duplicate hwthread ids")
    if topo.node and sorted(set(topo.node)) != list(range(min(topo.node), max(topo.node) + 1)):
        out.append(f"{prefix}.topology.node: hwthread ids have gaps")
    if len(topo.socket) != sc.sockets_per_node:
        out.append(
            f"{prefix}: socketsPerNode = {sc.sockets_per_node} but topology.socket has {len(topo.socket)}"
        )
    if topo.core and len(topo.core) != sc.sockets_per_node * sc.cores_per_socket:
        out.append(
            f"{prefix}: socketsPerNode*coresPerSocket = {sc.sockets_per_node * sc.cores_per_socket} "
            f"but topology.core has {len(topo.core)} cores"
        )
    node = set(topo.node)
    groups: list[tuple[str, list[list[int]] | None]] = [
        ("socket", topo.socket),
        ("memoryDomain", topo.memory_domain),
        ("die", topo.die),
        ("core", topo.core),
    ]
    for key, lists in groups:
        if not lists:
            continue
        ids = [t for g in lists for t in g]
        if set(ids) != node or len(ids) != len(set(ids)):
            out.append(f"{prefix}.topology.{key}: hwthread ids do not partition topology.node")
    return out


def check_cluster(cluster: Cluster) -> list[str]:
    """Consistency problems of a valid cluster.json (thread counts, gaps, unknown names), as messages."""
    out: list[str] = []
    names = [m.name for m in cluster.metric_config]
    for n in sorted({n for n in names if names.count(n) > 1}):
        out.append(f"metricConfig: metric '{n}' defined more than once")
    sc_names = [s.name for s in cluster.sub_clusters]
    for n in sorted({n for n in sc_names if sc_names.count(n) > 1}):
        out.append(f"subClusters: subcluster '{n}' defined more than once")
    for i, m in enumerate(cluster.metric_config):
        if m.scope not in SCOPES:
            out.append(f"metricConfig[{i}].scope: unknown scope '{m.scope}' (metric '{m.name}')")
        for j, o in enumerate(m.sub_clusters or []):
            if o.name not in sc_names:
                out.append(f"metricConfig[{i}].subClusters[{j}].name: unknown subcluster '{o.name}'")
    for i, sc in enumerate(cluster.sub_clusters):
        out.extend(_check_sub_cluster(f"subClusters[{i}]", sc))
    return out


def load_cluster(path: str | os.PathLike[str], *, strict: bool = False) -> Cluster:
    """Load a cluster.json; bad input raises ConfigError, inconsistencies are warnings (errors if strict)."""
    cluster = parse_file(path, Cluster)
    problems = check_cluster(cluster)
    if problems and strict:
        field, _, msg = problems[0].partition(": ")
        raise ConfigError(os.fspath(path), field, msg)
    for p in problems:
        log.warning("%s: %s", os.fspath(path), p)
    return cluster
