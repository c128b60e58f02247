"""The query API (spec §5): request decoding as Go's encoding/json does it, selectors, responses.

Values go out through orjson: NaN and ±Inf become `null`, data is rounded to 3 and statistics to
2 decimals (upstream prints exactly that many digits; clients parse numbers, so `12.0` and
`12.000` are equivalent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .store import MemoryStore, NotFoundError, StoreError


class BadRequest(Exception):
    """The request body cannot be decoded (400 with the message)."""


# --------------------------------------------------------------------------- decoding

_GO_TYPES = {
    bool: "bool",
    str: "string",
    int: "int64",
    float: "float64",
    list: "[]string",
    tuple: "[]ApiQuery",
}


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return f"number {v}"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def decode_json_body(body: bytes) -> Any:
    """The first JSON value of the body (trailing bytes ignored, as Go's Decoder.Decode)."""
    if not body.strip():
        raise BadRequest("EOF")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"invalid character in request body: {e.reason}") from None
    try:
        value, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except json.JSONDecodeError as e:
        raise BadRequest(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    return value


def _field(obj: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Match keys case-insensitively to the known fields (Go semantics); unknown keys ignored."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = names.get(key.lower())
        if name is not None:
            out[name] = value
    return out


def _type_ok(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if kind is tuple:  # a list of objects, checked element by element later
        return isinstance(value, list)
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _typed(value: Any, kind: type, struct: str, fieldname: str) -> Any:
    if value is None:
        return None
    if kind is int and isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)  # Go rejects 1.7e9 for an int64; whole numbers are accepted here
    if not _type_ok(value, kind):
        raise BadRequest(
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field {struct}.{fieldname} "
            f"of type {_GO_TYPES[kind]}"
        )
    if kind is int and not -(2**63) <= value < 2**63:
        raise BadRequest(
            f"json: cannot unmarshal number {value} into Go struct field {struct}.{fieldname} of type int64"
        )
    return value


_QUERY_FIELDS = {
    "metric": ("metric", str),
    "host": ("host", str),
    "type": ("type", str),
    "type-ids": ("type_ids", list),
    "subtype": ("subtype", str),
    "subtype-ids": ("subtype_ids", list),
    "aggreg": ("aggreg", bool),
    "resolution": ("resolution", int),
    "scale-by": ("scale_by", float),
}
_REQUEST_FIELDS = {
    "cluster": ("cluster", str),
    "from": ("from_", int),
    "to": ("to", int),
    "queries": ("queries", tuple),
    "for-all-nodes": ("for_all_nodes", list),
    "with-stats": ("with_stats", bool),
    "with-data": ("with_data", bool),
    "with-padding": ("with_padding", bool),
}


@dataclass
class Query:
    metric: str = ""
    host: str = ""
    type: str | None = None
    type_ids: list[str] | None = None
    subtype: str | None = None
    subtype_ids: list[str] | None = None
    aggreg: bool = False
    resolution: int = 0
    scale_by: float = 0.0

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"metric": self.metric, "host": self.host}
        if self.type:
            d["type"] = self.type
        if self.subtype:
            d["subtype"] = self.subtype
        if self.type_ids:
            d["type-ids"] = self.type_ids
        if self.subtype_ids:
            d["subtype-ids"] = self.subtype_ids
        d["resolution"] = self.resolution
        d["aggreg"] = self.aggreg
        if self.scale_by:
            d["scale-by"] = self.scale_by
        return d


@dataclass
class QueryRequest:
    cluster: str = ""
    from_: int = 0
    to: int = 0
    queries: list[Query] = field(default_factory=list)
    for_all_nodes: list[str] | None = None
    with_stats: bool = True
    with_data: bool = True
    with_padding: bool = True


def _decode_struct(obj: Any, spec: Mapping[str, tuple[str, type]], struct: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadRequest(f"json: cannot unmarshal {_json_kind(obj)} into Go value of type {struct}")
    lowered = {k.lower(): k for k in spec}
    raw = _field(obj, lowered)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        attr, kind = spec[key]
        v = _typed(value, kind, struct, key)
        if v is not None:
            out[attr] = v
    return out


def parse_query_request(body: bytes) -> QueryRequest:
    obj = decode_json_body(body)
    top = _decode_struct(obj, _REQUEST_FIELDS, "ApiQueryRequest")
    queries = top.pop("queries", None) or []
    if "for_all_nodes" in top and not all(isinstance(x, str) for x in top["for_all_nodes"]):
        raise BadRequest(
            "json: cannot unmarshal into Go struct field ApiQueryRequest.for-all-nodes of type []string"
        )
    req = QueryRequest(**top)
    for q in queries:
        req.queries.append(Query(**_decode_struct(q, _QUERY_FIELDS, "ApiQuery")))
    return req


# --------------------------------------------------------------------------- execution


def selectors(cluster: str, q: Query) -> list[list[Any]]:
    """Spec §5.2: one selector (aggregated or node level) or one per type id."""
    base: list[Any] = [cluster, q.host]
    if q.aggreg or q.type is None:
        sel = list(base)
        if q.type is not None:
            ids = q.type_ids or []
            sel.append(q.type + ids[0] if len(ids) == 1 else [q.type + i for i in ids])
            if q.subtype is not None:
                sids = q.subtype_ids or []
                sel.append(q.subtype + sids[0] if len(sids) == 1 else [q.subtype + s for s in sids])
        return [sel]
    out: list[list[Any]] = []
    for tid in q.type_ids or []:
        if q.subtype is not None:
            for sid in q.subtype_ids or []:
                out.append([cluster, q.host, q.type + tid, q.subtype + sid])
        else:
            out.append([cluster, q.host, q.type + tid])
    return out


def _error_entry(msg: str) -> dict[str, Any]:
    return {"error": msg, "from": 0, "to": 0, "resolution": 0, "avg": 0.0, "min": 0.0, "max": 0.0}


def _stats(data: np.ndarray) -> tuple[float, float, float]:
    valid = data[~np.isnan(data)]
    if valid.size == 0:
        return (float("nan"),) * 3
    return float(valid.mean()), float(valid.min()), float(valid.max())


def _round(x: float, nd: int) -> float:
    return round(x, nd) if np.isfinite(x) else float("nan")


def run_series(
    store: MemoryStore, req: QueryRequest, q: Query, sel: list[Any], freq: int
) -> dict[str, Any] | None:
    try:
        data, dfrom, dto, res = store.read(sel, q.metric, req.from_, req.to, q.resolution)
    except NotFoundError:
        return None
    except StoreError as e:
        return _error_entry(str(e))
    if req.with_stats:
        avg, mn, mx = _stats(data)
    else:
        avg = mn = mx = 0.0
    if q.scale_by and q.scale_by != 1.0:
        data = data * q.scale_by
        avg, mn, mx = avg * q.scale_by, mn * q.scale_by, mx * q.scale_by
    entry: dict[str, Any] = {}
    if req.with_data:
        if req.with_padding and freq:
            pad = dfrom // freq - req.from_ // freq
            if pad > 0:
                data = np.concatenate((np.full(pad, np.nan), data))
        if len(data):
            entry["data"] = np.round(data, 3)
    entry["from"] = dfrom
    entry["to"] = dto
    entry["resolution"] = res
    entry["avg"] = _round(avg, 2)
    entry["min"] = _round(mn, 2)
    entry["max"] = _round(mx, 2)
    return entry


def execute(store: MemoryStore, req: QueryRequest) -> dict[str, Any]:
    queries = list(req.queries)
    generated: list[Query] = []
    if req.for_all_nodes is not None:
        for host in store.hosts(req.cluster):
            for metric in req.for_all_nodes:
                generated.append(Query(metric=metric, host=host))
        queries += generated
    results: list[list[dict[str, Any]]] = []
    for q in queries:
        m = store.metrics.get(q.metric)
        freq = m.frequency if m else 0
        row = []
        for sel in selectors(req.cluster, q):
            entry = run_series(store, req, q, sel, freq)
            if entry is not None:
                row.append(entry)
        results.append(row)
    out: dict[str, Any] = {"results": results}
    if req.for_all_nodes is not None:
        out["queries"] = [g.as_json() for g in generated]
    return out


def request_from_url(params: Mapping[str, str], store: MemoryStore) -> QueryRequest:
    """The guide's `GET /api/query?cluster=C&from=F&to=T` (decisions.md): all metrics, all hosts."""

    def integer(name: str) -> int:
        raw = params.get(name)
        if raw is None or raw == "":
            raise BadRequest(f"'{name}' is a required query parameter")
        try:
            return int(raw)
        except ValueError:
            raise BadRequest(f"query parameter '{name}' must be an integer, got {raw!r}") from None

    cluster = params.get("cluster", "")
    if not cluster:
        raise BadRequest("'cluster' is a required query parameter (or send a JSON body)")
    req = QueryRequest(cluster=cluster, from_=integer("from"), to=integer("to"))
    metrics = [params["metric"]] if params.get("metric") else sorted(store.metrics)
    flag = {"true": True, "1": True, "false": False, "0": False}
    for name in ("with-stats", "with-data", "with-padding"):
        if name in params:
            value = flag.get(params[name].lower())
            if value is None:
                raise BadRequest(f"query parameter '{name}' must be true or false")
            setattr(req, name.replace("-", "_"), value)
    if params.get("host"):
        for m in metrics:
            req.queries.append(Query(metric=m, host=params["host"]))
    else:
        req.for_all_nodes = metrics
    return req


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)
