"""Metric data of jobs from the metric stores (spec backend-behaviour §2.9, backend-data §4.13).

`MetricDataDispatcher` picks the store for a job (`<cluster>-<subcluster>`, `<cluster>`, `*`),
plans the queries for the requested metrics and scopes from the job's resources and the subcluster
topology, and turns the answer into a `JobData`: series statistics rounded to two decimals (NaN
statistics → 0), node scope synthesised for flops_any/mem_bw, statisticsSeries for ≥ 8 series.
Series that failed or are missing are left out with one warning per request; a store that cannot be
reached raises MetricDataError.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

from cccommon.schema import JobData, JobMetric, MetricStatistics, Series

from ..clusters import ClusterError, ClusterRegistry
from ..model import Job
from .ccms import ApiQuery, ApiSeries, CCMetricStoreClient, MetricDataError
from .config import MetricStoreExternal
from .scopes import GRANULARITY, PlannedQuery, coarser, scope_queries
from .transform import add_node_scope, add_statistics_series, as_list, round2, round_statistics

__all__ = ["NODE_SCOPE_SYNTHESISED", "MetricDataDispatcher", "job_time_range"]

log = logging.getLogger("ccbackend.metricdata")

NODE_SCOPE_SYNTHESISED = ("flops_any", "mem_bw")


def job_time_range(job: Job, now: int | None = None) -> tuple[int, int]:
    """[start, start + duration]; a running job's window ends now (its stored duration lags)."""
    end = job.start_time + job.duration
    if job.job_state == "running":
        end = max(end, int(time.time()) if now is None else now)
    return job.start_time, end


def _stats(entry: ApiSeries) -> MetricStatistics:
    avg, mn, mx = entry.avg, entry.min, entry.max
    if math.isnan(avg) or math.isnan(mn) or math.isnan(mx):
        avg = mn = mx = 0.0
    return MetricStatistics.model_construct(avg=round2(avg), min=round2(mn), max=round2(mx))


class MetricDataDispatcher:
    """Loads job metric data from the configured external metric stores."""

    def __init__(
        self, registry: ClusterRegistry, stores: Iterable[MetricStoreExternal], timeout: float = 10.0
    ) -> None:
        self.registry = registry
        self._clients: dict[str, CCMetricStoreClient] = {}
        for s in stores:
            if s.scope in self._clients:
                log.warning("metric-store-external: scope %r configured twice, using the first", s.scope)
                continue
            self._clients[s.scope] = CCMetricStoreClient(s.url, s.token, timeout)

    def store_for(self, cluster: str, sub_cluster: str = "") -> CCMetricStoreClient:
        """The store for a job: `<cluster>-<subcluster>`, then `<cluster>`, then `*`."""
        for key in (f"{cluster}-{sub_cluster}", cluster, "*"):
            c = self._clients.get(key)
            if c is not None:
                return c
        raise MetricDataError(f"no metric store configured for cluster {cluster!r} (subcluster {sub_cluster!r})")

    async def close(self) -> None:
        for c in self._clients.values():
            await c.close()

    # ------------------------------------------------------------------ planning

    def _plan(
        self, job: Job, metrics: list[str] | None, scopes: Iterable[str], resolution: int
    ) -> list[PlannedQuery]:
        try:
            sc = self.registry.sub_cluster(job.cluster, job.sub_cluster)
        except ClusterError as e:
            raise MetricDataError(f"job {job.job_id} ({job.cluster}): {e}") from None
        topo = sc.topology
        names = metrics if metrics is not None else [m.name for m in self.registry.get(job.cluster).metric_config]
        scopes = list(scopes) or ["node"]
        for s in scopes:
            if s not in GRANULARITY:
                raise ValueError(f"unknown metric scope {s!r} (valid: {', '.join(GRANULARITY)})")
        planned: list[PlannedQuery] = []
        for metric in names:
            mc = self.registry.metric_config(job.cluster, job.sub_cluster, metric)
            if mc is None:
                if self.registry.cluster_metric(job.cluster, metric) is None:
                    log.warning("metric %r is not configured for cluster %r: skipped", metric, job.cluster)
                continue  # removed for this subcluster
            native = mc.scope or "node"
            if native == "accelerator" and job.num_acc == 0:
                continue
            handled: set[str] = set()
            for requested in scopes:
                delivered = coarser(native, requested)
                if delivered in handled:
                    continue
                handled.add(delivered)
                for r in job.resources:
                    hw = r.hwthreads if r.hwthreads is not None else topo.node
                    for pq in scope_queries(metric, native, requested, r.hostname, topo, hw, r.accelerators):
                        pq.query.resolution = resolution
                        planned.append(pq)
        return planned

    async def _run(
        self, client: CCMetricStoreClient, cluster: str, frm: int, to: int, plan: list[PlannedQuery], with_data: bool
    ) -> list[list[ApiSeries]]:
        """Rows per planned query; rows of multi-id queries that came back short are re-asked per id."""
        if not plan:
            return []
        res = await client.query(cluster, frm, to, [p.query for p in plan], with_data=with_data)
        rows = res.results + [[] for _ in range(len(plan) - len(res.results))]
        retry: list[tuple[int, ApiQuery]] = []
        for i, p in enumerate(plan):
            if len(p.ids) > 1 and len(rows[i]) != len(p.ids):
                for tid in p.ids:
                    q = ApiQuery(p.query.metric, p.query.host, p.query.type, [str(tid)], False, p.query.resolution)
                    retry.append((i, q))
        if retry:
            again = await client.query(cluster, frm, to, [q for _, q in retry], with_data=with_data)
            fixed: dict[int, list[ApiSeries]] = {}
            for k, (i, _) in enumerate(retry):
                row = again.results[k] if k < len(again.results) else []
                fixed.setdefault(i, []).append(row[0] if row else ApiSeries(None, error="no data"))
            for i, row in fixed.items():
                rows[i] = row
        return rows

    # ------------------------------------------------------------------ loading

    async def load_job_data(
        self,
        job: Job,
        metrics: list[str] | None = None,
        scopes: Iterable[str] = ("node",),
        resolution: int | None = None,
    ) -> JobData:
        """Metric data of a job at the requested scopes (None metrics = all of the cluster).

        Missing series are left out (one warning naming the job); MetricDataError when the store is
        unreachable or answers with an error status.
        """
        scopes = list(scopes) or ["node"]
        plan = self._plan(job, metrics, scopes, resolution or 0)
        client = self.store_for(job.cluster, job.sub_cluster)
        frm, to = job_time_range(job)
        rows = await self._run(client, job.cluster, frm, to, plan, with_data=True)
        data: dict[str, dict[str, JobMetric]] = {}
        problems: list[str] = []
        for p, row in zip(plan, rows, strict=False):
            mc = self.registry.cluster_metric(job.cluster, p.query.metric)
            assert mc is not None
            scoped = data.setdefault(p.query.metric, {})
            jm = scoped.get(p.scope)
            if jm is None:
                step = row[0].resolution if row and row[0].resolution else mc.timestep
                jm = JobMetric(unit=mc.unit.model_copy(), timestep=step, series=[])
                scoped[p.scope] = jm
            if not row:
                problems.append(f"{p.query.metric}@{p.query.host}: no data")
            for k, entry in enumerate(row):
                if entry.error is not None:
                    problems.append(f"{p.query.metric}@{p.query.host}: {entry.error}")
                    continue
                sid = p.ids[k] if k < len(p.ids) else None
                jm.series.append(
                    Series.model_construct(
                        hostname=p.query.host,
                        **({"id": sid} if sid is not None else {}),
                        statistics=_stats(entry),
                        data=as_list(entry.data) if entry.data is not None else [],
                    )
                )
        for metric in list(data):
            scoped = data[metric]
            for scope in [s for s, jm in scoped.items() if not jm.series]:
                del scoped[scope]
            if not scoped:
                del data[metric]
        if problems:
            problems = list(dict.fromkeys(problems))
            more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
            log.warning(
                "job %d (%s, db id %s): %d series missing from the metric store: %s%s",
                job.job_id, job.cluster, job.id, len(problems), "; ".join(problems[:5]), more,
            )
        if "node" in scopes:
            for metric in NODE_SCOPE_SYNTHESISED:
                if metric in data:
                    add_node_scope(data[metric])
        for scoped in data.values():
            for jm in scoped.values():
                add_statistics_series(jm)
                round_statistics(jm)
        return JobData(data)

    async def load_job_stats(
        self, job: Job, metrics: list[str] | None = None
    ) -> dict[str, dict[str, MetricStatistics]]:
        """Node-scope statistics per metric and host (no samples), for running-job footprints."""
        plan = self._plan(job, metrics, ["node"], 0)
        client = self.store_for(job.cluster, job.sub_cluster)
        frm, to = job_time_range(job)
        rows = await self._run(client, job.cluster, frm, to, plan, with_data=False)
        out: dict[str, dict[str, MetricStatistics]] = {}
        for p, row in zip(plan, rows, strict=False):
            if not row or row[0].error is not None:
                continue
            e = row[0]
            if math.isnan(e.avg) or math.isnan(e.min) or math.isnan(e.max):
                log.warning("job %d: %s on %s has no statistics (NaN)", job.job_id, p.query.metric, p.query.host)
                continue
            out.setdefault(p.query.metric, {})[p.query.host] = MetricStatistics(avg=e.avg, min=e.min, max=e.max)
        return out

    async def load_node_data(
        self,
        cluster: str,
        nodes: list[str],
        metrics: list[str] | None,
        scopes: Iterable[str],
        from_: int,
        to: int,
        resolution: int | None = None,
        sub_cluster: str | None = None,
    ) -> dict[str, dict[str, list[JobMetric]]]:
        """Node view data: host → metric → JobMetric per delivered scope, over whole nodes.

        Each host's subcluster is `sub_cluster` or found from the node lists; hosts of no subcluster
        are skipped with a warning. Store selection uses the first host's subcluster.
        """
        scopes = list(scopes) or ["node"]
        for s in scopes:
            if s not in GRANULARITY:
                raise ValueError(f"unknown metric scope {s!r} (valid: {', '.join(GRANULARITY)})")
        cl = self.registry.get(cluster)
        names = metrics if metrics is not None else [m.name for m in cl.metric_config]
        plan: list[PlannedQuery] = []
        first_sc = sub_cluster or ""
        for host in nodes:
            sc_name = sub_cluster or self.registry.sub_cluster_of_node(cluster, host)
            if sc_name is None:
                log.warning("node %s is in no subcluster of cluster %r: skipped", host, cluster)
                continue
            first_sc = first_sc or sc_name
            topo = self.registry.sub_cluster(cluster, sc_name).topology
            accs = [a.id for a in topo.accelerators or ()]
            for metric in names:
                mc = self.registry.metric_config(cluster, sc_name, metric)
                if mc is None:
                    continue
                native = mc.scope or "node"
                handled: set[str] = set()
                for requested in scopes:
                    delivered = coarser(native, requested)
                    if delivered in handled:
                        continue
                    handled.add(delivered)
                    for pq in scope_queries(metric, native, requested, host, topo, topo.node, accs):
                        pq.query.resolution = resolution or 0
                        plan.append(pq)
        if not plan:
            return {}
        client = self.store_for(cluster, first_sc)
        rows = await self._run(client, cluster, from_, to, plan, with_data=True)
        out: dict[str, dict[str, dict[str, JobMetric]]] = {}
        problems = 0
        for p, row in zip(plan, rows, strict=False):
            mc = self.registry.cluster_metric(cluster, p.query.metric)
            assert mc is not None
            scoped = out.setdefault(p.query.host, {}).setdefault(p.query.metric, {})
            for k, entry in enumerate(row):
                if entry.error is not None:
                    problems += 1
                    continue
                jm = scoped.get(p.scope)
                if jm is None:
                    step = entry.resolution or mc.timestep
                    jm = JobMetric(unit=mc.unit.model_copy(), timestep=step, series=[])
                    scoped[p.scope] = jm
                sid = p.ids[k] if k < len(p.ids) else None
                jm.series.append(
                    Series.model_construct(
                        hostname=p.query.host,
                        **({"id": sid} if sid is not None else {}),
                        statistics=_stats(entry),
                        data=as_list(entry.data) if entry.data is not None else [],
                    )
                )
            problems += 0 if row else 1
        if problems:
            log.warning("node data of cluster %r: %d series missing from the metric store", cluster, problems)
        return {
            host: {m: list(sc.values()) for m, sc in per_metric.items() if sc}
            for host, per_metric in out.items()
        }

    async def healthcheck(self, cluster: str, sub_cluster: str, nodes: list[str], metrics: list[str]) -> dict:
        """The store's health report for nodes of one subcluster."""
        return await self.store_for(cluster, sub_cluster).healthcheck(cluster, nodes, metrics)

    health_check = healthcheck
