"""Scheduler node states (`/api/nodestate/`, `/api/healthcheck`, NATS): reduce, health-check, store.

Each report names a cluster and its nodes with the scheduler's state words.  The words of one node are
reduced to one state (spec backend-behaviour §2.10): allocated > reserved > idle together with down →
down > idle > down > mixed > unknown.  Nodes that are not down get a metric health check against the
metric store (the subcluster's metric list; `full` / `partial` / `failed` with the missing and degraded
metrics), down nodes are `full`, nodes without an answer `failed`.  One `node_state` row per node is
stored with the receive time.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from .repository.base import NodeStateRow

__all__ = ["NodeStateService", "reduce_states"]

log = logging.getLogger("ccbackend.nodestate")


def reduce_states(states: list[str]) -> str:
    """One scheduler state from the list a node reports (case-insensitive)."""
    s = {x.strip().lower() for x in states}
    if "allocated" in s:
        return "allocated"
    if "reserved" in s:
        return "reserved"
    if "idle" in s and "down" in s:
        return "down"
    if "idle" in s:
        return "idle"
    if "down" in s:
        return "down"
    if "mixed" in s:
        return "mixed"
    return "unknown"


class NodeStateService:
    """Turns node reports into `node_state` rows; shared by the REST and NATS paths."""

    def __init__(self, repo: Any, registry: Any, dispatcher: Any) -> None:
        self.repo = repo
        self.registry = registry
        self.dispatcher = dispatcher

    async def _health(self, cluster: str, sub_cluster: str, hosts: list[str]) -> dict[str, tuple[str, str]]:
        """host → (health_state, health_metrics JSON) from the metric store; empty when it cannot answer."""
        if not hosts:
            return {}
        try:
            metrics = [m.name for m in self.registry.metric_configs(cluster, sub_cluster)]
            answer = await self.dispatcher.health_check(cluster, sub_cluster, hosts, metrics)
        except Exception as e:
            log.warning("health check of %d nodes of %s/%s failed: %s", len(hosts), cluster, sub_cluster, e)
            return {}
        out: dict[str, tuple[str, str]] = {}
        for host, res in (answer or {}).items():
            state = (res.get("State") or res.get("state") or "failed") if isinstance(res, dict) else "failed"
            hm = res.get("HealthMetrics") or res.get("healthMetrics") or "" if isinstance(res, dict) else ""
            if not isinstance(hm, str):
                hm = orjson.dumps(hm).decode()
            out[host] = (str(state).lower(), hm)
        return out

    async def report(self, cluster: str, nodes: list[dict[str, Any]], now: int) -> int:
        """Store one report; returns the number of rows written.  Unknown cluster → ValueError."""
        if cluster not in self.registry:
            raise ValueError(f"unknown cluster: {cluster}")
        by_sub: dict[str, list[str]] = {}
        reduced: dict[str, tuple[str, str]] = {}
        for n in nodes:
            host = n["hostname"]
            sc = self.registry.sub_cluster_of_node(cluster, host) or ""
            state = reduce_states(list(n.get("states") or []))
            reduced[host] = (state, sc)
            if state != "down":
                by_sub.setdefault(sc, []).append(host)
        health: dict[str, tuple[str, str]] = {}
        for sc, hosts in by_sub.items():
            health.update(await self._health(cluster, sc, hosts))
        rows = []
        for n in nodes:
            host = n["hostname"]
            state, sc = reduced[host]
            if state == "down":
                h, hm = "full", ""
            else:
                h, hm = health.get(host, ("failed", ""))
                if h not in ("full", "partial", "failed"):
                    h = "failed"
            rows.append(
                NodeStateRow(
                    hostname=host,
                    cluster=cluster,
                    sub_cluster=sc,
                    time_stamp=now,
                    node_state=state,
                    health_state=h,
                    health_metrics=hm,
                    jobs_running=int(n.get("jobs_running", n.get("jobsRunning", 0)) or 0),
                    cpus_allocated=int(n.get("cpus_allocated", n.get("cpusAllocated", 0)) or 0),
                    memory_allocated=int(n.get("memory_allocated", n.get("memoryAllocated", 0)) or 0),
                    gpus_allocated=int(n.get("gpus_allocated", n.get("gpusAllocated", 0)) or 0),
                )
            )
        try:
            await self.repo.add_node_states(rows)
        except Exception as e:  # upstream only logs DB errors on this path
            log.error("storing %d node states of cluster %s failed: %s", len(rows), cluster, e)
            return 0
        log.debug("stored %d node states of cluster %s", len(rows), cluster)
        return len(rows)
