"""Scope selection: which metric-store queries deliver a metric at a requested scope for a job.

Follows cc-backend's rules (spec backend-behaviour §2.6 step 2-3, metricstore §5.9): the delivered
scope is the coarser of native and requested scope (accelerator ranks below hwthread, so a CPU
metric asked for at accelerator scope comes at its native scope); coarser scopes are requested as
aggregated queries over all hardware ids of each core/socket/domain the job touches (as upstream); an accelerator metric is only
delivered at accelerator or node scope. Unlike upstream, core → socket aggregates the socket's
cores (not its hwthread ids) and aggregated series carry the socket/domain index as id.
"""

from __future__ import annotations

from dataclasses import dataclass

from cccommon.schema import Topology

from .ccms import ApiQuery

__all__ = ["GRANULARITY", "PlannedQuery", "coarser", "scope_queries"]

GRANULARITY = {"node": 10, "socket": 5, "memoryDomain": 4, "core": 3, "hwthread": 2, "accelerator": 1}
"""cc-lib's scope ranks (higher = coarser)."""


def coarser(a: str, b: str) -> str:
    """The coarser of two scopes; on a tie the second (as cc-lib's MetricScope.Max)."""
    return a if GRANULARITY[a] > GRANULARITY[b] else b


@dataclass
class PlannedQuery:
    """A query with the scope it delivers and the series ids of its result entries (by position)."""

    query: ApiQuery
    scope: str
    ids: list[str | None]


def _groups_of(groups: list[list[int]] | None, hwthreads: list[int]) -> list[int]:
    """Indices of the groups (cores, sockets, domains) holding any of `hwthreads`, in first-use order."""
    if not groups:
        return []
    owner: dict[int, int] = {}
    for gi, g in enumerate(groups):
        for t in g:
            owner.setdefault(t, gi)
    out: dict[int, None] = {}
    for t in hwthreads:
        gi = owner.get(t)
        if gi is not None:
            out.setdefault(gi, None)
    return list(out)


def _strs(xs: list[int]) -> list[str]:
    return [str(x) for x in xs]


def scope_queries(
    metric: str,
    native: str,
    requested: str,
    host: str,
    topology: Topology,
    hwthreads: list[int],
    accelerators: list[str] | None,
) -> list[PlannedQuery]:
    """Queries for one metric on one host; [] when the combination yields nothing (expected cases).

    ValueError for an unknown scope.
    """
    for s in (native, requested):
        if s not in GRANULARITY:
            raise ValueError(f"metric {metric!r}: unknown scope {s!r}")
    scope = coarser(native, requested)
    acc = list(accelerators or [])

    def q(type_: str | None, ids: list[str], aggreg: bool, out_ids: list[str | None]) -> PlannedQuery:
        return PlannedQuery(ApiQuery(metric, host, type_, ids or None, aggreg), scope, out_ids)

    if native == "accelerator":
        if scope == "accelerator":
            return [q("accelerator", acc, False, list(acc))] if acc else []
        if scope == "node":
            return [q("accelerator", acc, True, [None])] if acc else []
        return []
    if native == "node":
        return [q(None, [], False, [None])] if scope == "node" else []

    if native == "hwthread":
        if scope == "hwthread":
            ids = _strs(hwthreads)
            return [q("hwthread", ids, False, list(ids))]
        if scope == "node":
            return [q("hwthread", _strs(hwthreads), True, [None])]
        groups = {"core": topology.core, "socket": topology.socket, "memoryDomain": topology.memory_domain}[
            scope
        ]
        return [q("hwthread", _strs((groups or [])[gi]), True, [str(gi)]) for gi in _groups_of(groups, hwthreads)]

    if native == "core":
        cores = _groups_of(topology.core, hwthreads)
        if scope == "core":
            ids = _strs(cores)
            return [q("core", ids, False, list(ids))]
        if scope == "node":
            return [q("core", _strs(cores), True, [None])]
        groups = topology.socket if scope == "socket" else topology.memory_domain
        out = []
        for gi in _groups_of(groups, hwthreads):
            members = set((groups or [])[gi])
            of_group = [c for c, hw in enumerate(topology.core or []) if hw and hw[0] in members]
            out.append(q("core", _strs(of_group), True, [str(gi)]))
        return out

    if native == "memoryDomain":
        domains = _groups_of(topology.memory_domain, hwthreads)
        if scope == "memoryDomain":
            ids = _strs(domains)
            return [q("memoryDomain", ids, False, list(ids))]
        if scope == "node":
            return [q("memoryDomain", _strs(domains), True, [None])]
        # socket: domains grouped by the socket of their first hwthread
        by_socket: dict[int, list[int]] = {}
        firsts = [topology.memory_domain[d][0] for d in domains if topology.memory_domain[d]]
        sockets = _groups_of(topology.socket, firsts)
        owner = {t: si for si, s in enumerate(topology.socket) for t in s}
        for d in domains:
            first = topology.memory_domain[d][0] if topology.memory_domain[d] else None
            if first in owner:
                by_socket.setdefault(owner[first], []).append(d)
        return [q("memoryDomain", _strs(by_socket[s]), True, [str(s)]) for s in sockets if s in by_socket]

    if native == "socket":
        sockets = _groups_of(topology.socket, hwthreads)
        if scope == "socket":
            ids = _strs(sockets)
            return [q("socket", ids, False, list(ids))]
        return [q("socket", _strs(sockets), True, [None])]
    return []
