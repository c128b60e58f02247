"""HTTP client of one cc-metric-store (spec backend-data §4.13): the v2 query API and the health check.

Works against our store and the Go store alike: `GET <url>/api/query?version=v2` with a JSON body
and `Authorization: Bearer <token>`, 10 s timeout. Transport problems, non-200 answers and
undecodable bodies raise MetricDataError naming the store; per-series problems come back as
`ApiSeries.error` and are the caller's business (partial errors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import orjson

__all__ = ["ApiQuery", "ApiSeries", "CCMetricStoreClient", "MetricDataError", "QueryResult"]

log = logging.getLogger("ccbackend.metricdata")

DEFAULT_TIMEOUT = 10.0


class MetricDataError(Exception):
    """The metric store cannot be reached or answered with an error; the message names the store."""


@dataclass
class ApiQuery:
    """One query of the v2 API: a metric on a host, optionally at `type` ids, optionally aggregated."""

    metric: str
    host: str
    type: str | None = None
    type_ids: list[str] | None = None
    aggreg: bool = False
    resolution: int = 0

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"metric": self.metric, "host": self.host, "resolution": self.resolution}
        if self.type is not None:
            d["type"] = self.type
        if self.type_ids:
            d["type-ids"] = self.type_ids
        d["aggreg"] = self.aggreg
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ApiQuery:
        return cls(
            metric=str(d.get("metric", "")),
            host=str(d.get("host", "")),
            type=d.get("type"),
            type_ids=d.get("type-ids"),
            aggreg=bool(d.get("aggreg", False)),
            resolution=int(d.get("resolution") or 0),
        )


@dataclass
class ApiSeries:
    """One result entry: samples (NaN for gaps) from `from_` at `resolution` s steps, and statistics."""

    data: np.ndarray | None
    from_: int = 0
    to: int = 0
    resolution: int = 0
    avg: float = float("nan")
    min: float = float("nan")
    max: float = float("nan")
    error: str | None = None


@dataclass
class QueryResult:
    """`results[i]` belongs to the i-th query; `queries` lists the for-all-nodes generated ones."""

    results: list[list[ApiSeries]]
    queries: list[ApiQuery] = field(default_factory=list)


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _series(entry: Any, where: str) -> ApiSeries:
    if not isinstance(entry, dict):
        raise MetricDataError(f"{where}: result entry is not an object")
    raw = entry.get("data")
    try:
        data = None if raw is None else np.asarray(raw, dtype=np.float64)
        return ApiSeries(
            data=data,
            from_=int(entry.get("from") or 0),
            to=int(entry.get("to") or 0),
            resolution=int(entry.get("resolution") or 0),
            avg=_num(entry.get("avg")),
            min=_num(entry.get("min")),
            max=_num(entry.get("max")),
            error=entry.get("error"),
        )
    except (TypeError, ValueError) as e:
        raise MetricDataError(f"{where}: malformed result entry: {e}") from None


class CCMetricStoreClient:
    """A client for one metric store; one aiohttp session, opened on first use, closed by `close()`."""

    def __init__(self, url: str, token: str = "", timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"CCMetricStoreClient({self.url!r})"

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    async def _get(self, path: str, body: dict[str, Any], params: dict[str, str] | None = None) -> Any:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        endpoint = f"{self.url}{path}"
        try:
            async with self._session.get(
                endpoint, params=params, data=orjson.dumps(body), headers=self._headers()
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    text = raw.decode("utf-8", "replace").strip()[:300]
                    raise MetricDataError(f"metric store {endpoint}: HTTP {resp.status}: {text}")
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise MetricDataError(f"metric store {endpoint}: {type(e).__name__}: {e}") from None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise MetricDataError(f"metric store {endpoint}: invalid JSON in response: {e}") from None

    async def query(
        self,
        cluster: str,
        from_: int,
        to: int,
        queries: list[ApiQuery],
        for_all_nodes: list[str] | None = None,
        with_stats: bool = True,
        with_data: bool = True,
        resolution: int | None = None,
    ) -> QueryResult:
        """Run one v2 query request; `resolution` (if given) applies to queries that have none."""
        if resolution:
            for q in queries:
                if not q.resolution:
                    q.resolution = resolution
        body: dict[str, Any] = {
            "cluster": cluster,
            "from": int(from_),
            "to": int(to),
            "queries": [q.to_json() for q in queries],
            "with-stats": with_stats,
            "with-data": with_data,
        }
        if for_all_nodes is not None:
            body["for-all-nodes"] = for_all_nodes
        out = await self._get("/api/query", body, {"version": "v2"})
        where = f"metric store {self.url}/api/query"
        if not isinstance(out, dict) or not isinstance(out.get("results"), list):
            raise MetricDataError(f"{where}: response has no 'results' array")
        results = []
        for i, row in enumerate(out["results"]):
            if row is None:
                row = []
            if not isinstance(row, list):
                raise MetricDataError(f"{where}: results[{i}] is not an array")
            results.append([_series(e, f"{where}: results[{i}]") for e in row])
        generated = [ApiQuery.from_json(q) for q in out.get("queries") or () if isinstance(q, dict)]
        expected = len(queries) + len(generated)
        if len(results) != expected:
            log.warning("%s: %d result rows for %d queries", where, len(results), expected)
        return QueryResult(results, generated)

    async def healthcheck(self, cluster: str, nodes: list[str], metric_names: list[str]) -> dict[str, Any]:
        """`GET /api/healthcheck`: per host `{"State": ..., "HealthMetrics": ...}` as the store reports."""
        out = await self._get(
            "/api/healthcheck", {"cluster": cluster, "nodes": nodes, "metric-names": metric_names}
        )
        if not isinstance(out, dict):
            raise MetricDataError(f"metric store {self.url}/api/healthcheck: response is not an object")
        return out

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
