"""The cluster registry: every cluster.json the backend knows, with the derived views upstream builds.

Owns (spec backend-data §2.3-2.6, §3.5): per-subcluster metric configuration with the overrides
applied (replacement semantics, `remove` drops the metric), the global metric catalogue (footprint
type = last non-empty one seen), subcluster assignment from node lists, and timestep helpers.
Everything is computed once at construction; lookups are dict accesses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from cccommon.schema import Cluster, MetricConfig, SubCluster

from .nodelist import NodeList

__all__ = ["ClusterError", "ClusterRegistry", "GlobalMetric"]

log = logging.getLogger("ccbackend.clusters")

class ClusterError(LookupError):
    """Unknown cluster, subcluster or metric; the message names what was looked up."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _Archive(Protocol):
    def clusters(self) -> list[str]: ...

    def cluster(self, name: str) -> Cluster: ...


@dataclass
class GlobalMetric:
    """One entry of the global metric catalogue (upstream `GlobalMetricList`)."""

    name: str
    scope: str
    unit: dict[str, str]
    footprint: str | None = None
    availability: dict[str, list[str]] = field(default_factory=dict)
    """cluster → subclusters where the metric exists."""
    restricted: dict[str, list[str]] = field(default_factory=dict)
    """cluster → subclusters where the metric is restricted (hidden from `user`/`manager`)."""


def _merge(mc: MetricConfig, sub_cluster: str) -> MetricConfig | None:
    """The metric as seen by `sub_cluster`: override values replace (no partial merge), None if removed."""
    override = next((o for o in mc.sub_clusters or () if o.name == sub_cluster), None)
    merged = mc.model_copy(update={"sub_clusters": None})
    if override is None:
        return merged
    if override.remove:
        return None
    return mc.model_copy(
        update={
            "sub_clusters": None,
            "peak": override.peak or 0.0,
            "normal": override.normal or 0.0,
            "caution": override.caution or 0.0,
            "alert": override.alert or 0.0,
            "footprint": override.footprint or None,
            "energy": override.energy or None,
            "lower_is_better": bool(override.lower_is_better),
            "restrict": bool(getattr(override, "restrict", False)),
        }
    )


class ClusterRegistry:
    """All clusters of the archive, with merged per-subcluster metric configs and node lists."""

    def __init__(self, clusters: Iterable[Cluster]) -> None:
        self._clusters: dict[str, Cluster] = {}
        self._node_lists: dict[str, list[tuple[SubCluster, NodeList | None]]] = {}
        self._metrics: dict[tuple[str, str], dict[str, MetricConfig]] = {}
        self.catalogue: dict[str, GlobalMetric] = {}
        for c in clusters:
            if c.name in self._clusters:
                raise ClusterError(f"cluster {c.name!r} defined twice")
            self._clusters[c.name] = c
            self._node_lists[c.name] = [(sc, self._parse_nodes(c.name, sc)) for sc in c.sub_clusters]
            for sc in c.sub_clusters:
                merged: dict[str, MetricConfig] = {}
                for mc in c.metric_config:
                    m = _merge(mc, sc.name)
                    if m is not None:
                        merged[mc.name] = m
                self._metrics[(c.name, sc.name)] = merged
            self._add_to_catalogue(c)

    @staticmethod
    def _parse_nodes(cluster: str, sc: SubCluster) -> NodeList | None:
        if sc.nodes in ("*", ""):
            return None
        try:
            return NodeList.parse(sc.nodes)
        except ValueError as e:
            raise ClusterError(f"cluster {cluster!r}, subcluster {sc.name!r}: field 'nodes': {e}") from None

    def _add_to_catalogue(self, c: Cluster) -> None:
        for mc in c.metric_config:
            gm = self.catalogue.get(mc.name)
            if gm is None:
                gm = GlobalMetric(mc.name, mc.scope or "node", mc.unit.model_dump(exclude_none=True))
                self.catalogue[mc.name] = gm
            if mc.footprint:
                gm.footprint = mc.footprint
            for o in mc.sub_clusters or ():
                if o.footprint:
                    gm.footprint = o.footprint
            avail = [sc.name for sc in c.sub_clusters if mc.name in self._metrics[(c.name, sc.name)]]
            if avail:
                gm.availability[c.name] = avail
            restricted = [n for n in avail if self._metrics[(c.name, n)][mc.name].restrict]
            if restricted:
                gm.restricted[c.name] = restricted

    @classmethod
    def from_archive(cls, archive: _Archive) -> ClusterRegistry:
        """Load every cluster.json of a job archive (sync: call it in a thread from async code)."""
        return cls([archive.cluster(name) for name in archive.clusters()])

    # ------------------------------------------------------------------ lookups

    def names(self) -> list[str]:
        """Cluster names in load order."""
        return list(self._clusters)

    def __contains__(self, cluster: object) -> bool:
        return cluster in self._clusters

    def get(self, cluster: str) -> Cluster:
        """The cluster.json of `cluster`; ClusterError if unknown."""
        try:
            return self._clusters[cluster]
        except KeyError:
            raise ClusterError(f"unknown cluster {cluster!r}") from None

    def sub_cluster(self, cluster: str, name: str) -> SubCluster:
        """Subcluster `name` of `cluster`; ClusterError if either is unknown."""
        sc = self.get(cluster).sub_cluster(name)
        if sc is None:
            raise ClusterError(f"unknown subcluster {name!r} of cluster {cluster!r}")
        return sc

    def assign_sub_cluster(self, cluster: str, hostnames: list[str]) -> str | None:
        """Subcluster of a job (spec §2.6): the one listing the first host, else a first `*` one."""
        lists = self._node_lists.get(cluster)
        if lists is None:
            raise ClusterError(f"unknown cluster {cluster!r}")
        if hostnames:
            for sc, nl in lists:
                if nl is not None and nl.contains(hostnames[0]):
                    return sc.name
        first = lists[0][0]
        return first.name if first.nodes == "*" else None

    def sub_cluster_of_node(self, cluster: str, hostname: str) -> str | None:
        """Subcluster of one node (node-state path): list match, else a first subcluster with `""`/`*`."""
        lists = self._node_lists.get(cluster)
        if lists is None:
            raise ClusterError(f"unknown cluster {cluster!r}")
        for sc, nl in lists:
            if nl is not None and nl.contains(hostname):
                return sc.name
        first = lists[0][0]
        return first.name if first.nodes in ("", "*") else None

    def metric_configs(self, cluster: str, sub_cluster: str) -> list[MetricConfig]:
        """Metric configs of a subcluster with overrides applied; removed metrics are left out."""
        merged = self._metrics.get((cluster, sub_cluster))
        if merged is None:
            self.sub_cluster(cluster, sub_cluster)  # raises the right error
            raise ClusterError(f"unknown subcluster {sub_cluster!r} of cluster {cluster!r}")
        return list(merged.values())

    def metric_config(self, cluster: str, sub_cluster: str, metric: str) -> MetricConfig | None:
        """One merged metric config, or None when the metric is unknown or removed for the subcluster."""
        merged = self._metrics.get((cluster, sub_cluster))
        if merged is None:
            self.sub_cluster(cluster, sub_cluster)
        return (merged or {}).get(metric)

    def cluster_metric(self, cluster: str, metric: str) -> MetricConfig | None:
        """The cluster-level metric entry (units of job statistics come from here)."""
        return self.get(cluster).metric(metric)

    def footprint_metrics(self, cluster: str, sub_cluster: str) -> list[tuple[str, str]]:
        """(metric, stat) for the subcluster's footprint metrics; stat from the global catalogue (§3.5)."""
        out = []
        for m in self.metric_configs(cluster, sub_cluster):
            if m.footprint:
                gm = self.catalogue.get(m.name)
                out.append((m.name, (gm.footprint if gm and gm.footprint else m.footprint)))
        return out

    def energy_metrics(self, cluster: str, sub_cluster: str) -> list[tuple[str, str]]:
        """(metric, energy type `power`/`energy`) for the subcluster's energy metrics."""
        return [(m.name, m.energy) for m in self.metric_configs(cluster, sub_cluster) if m.energy]

    def is_restricted(self, cluster: str, sub_cluster: str, metric: str) -> bool:
        """Whether the metric is hidden from `user`/`manager` principals on that subcluster."""
        mc = self.metric_config(cluster, sub_cluster, metric)
        return bool(mc is not None and mc.restrict)

    def min_timestep(self, cluster: str) -> int:
        """The finest native timestep of the cluster's metrics."""
        return min(m.timestep for m in self.get(cluster).metric_config)

    def max_timestep(self, cluster: str) -> int:
        """The coarsest native timestep of the cluster's metrics (REST all-metrics resolution)."""
        return max(m.timestep for m in self.get(cluster).metric_config)

    def native_timestep(self, cluster: str, metric: str) -> int:
        """Native sampling interval of a metric; ClusterError if the cluster does not define it."""
        mc = self.cluster_metric(cluster, metric)
        if mc is None:
            raise ClusterError(f"metric {metric!r} is not configured for cluster {cluster!r}")
        return mc.timestep

    def with_derived(self, cluster: str) -> Cluster:
        """A copy of the cluster whose subclusters carry the derived `metricConfig`, `footprint` and
        `energyFootprint` lists (what `GET /api/clusters/` shows; `restrict` is false there, as upstream)."""
        c = self.get(cluster)
        subs = []
        for sc in c.sub_clusters:
            merged = self.metric_configs(c.name, sc.name)
            extra = {
                "metricConfig": [
                    m.model_dump(mode="json", by_alias=True, exclude_none=True) | {"restrict": False}
                    for m in merged
                ],
                "footprint": [m.name for m in merged if m.footprint],
                "energyFootprint": [m.name for m in merged if m.energy],
            }
            subs.append(SubCluster.model_validate(sc.model_dump(by_alias=True, exclude_unset=True) | extra))
        return c.model_copy(update={"sub_clusters": subs})
