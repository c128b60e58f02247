"""Byte-exact writers of the archive's JSON files as upstream's Go code produces them.

`dumps_meta` writes a meta.json like Go's ``json.Encoder`` encodes ``schema.Job`` (spec backend-data.md
§1.2): struct field order, ``omitempty`` keys left out when zero, nil maps/slices as ``null``, map keys
sorted, ``<``, ``>``, ``&`` escaped as ``\\u003c`` etc., shortest float formatting without exponent
between 1e-6 and 1e21, compact, plus a trailing newline. Keys the Go struct does not have (legacy
``stopTime``, ``exclusive``, site extras) are dropped, as a Go round trip drops them.

`dumps_data` writes data.json in the format of upstream's hand-made series serialiser (§1.4): metric
and scope keys sorted, JobMetric keys ``statisticsSeries``/``unit``/``series``/``timestep``, series
keys ``hostname``/``id``/``statistics``/``data``, statistics and statistics series with exactly two
decimals, samples converted to float32 first, NaN/None as ``null``. Whole sample arrays are formatted
in one C-level ``%`` operation after a numpy float32 round trip, not sample by sample in Python.

Where Go would produce invalid JSON (NaN in a plain float64, ``+Inf`` samples, quotes in a hostname),
the writers produce ``null`` / an escaped string instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import numpy as np
from pydantic import BaseModel

__all__ = [
    "dumps_data",
    "dumps_job_metric",
    "dumps_meta",
    "format_samples",
    "go_float",
    "go_string",
    "meta_object",
]

_encode_basestring = json.encoder.encode_basestring  # type: ignore[attr-defined]


def go_string(s: str) -> str:
    """A JSON string literal as Go's encoding/json writes it (HTML-safe escaping of ``<>&``)."""
    out = _encode_basestring(s)
    if "<" in out or ">" in out or "&" in out or "\u2028" in out or "\u2029" in out:
        out = (
            out.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return out


def go_float(x: float | int | None) -> str:
    """A float64 as Go's encoding/json writes it: shortest digits, exponent only outside [1e-6, 1e21).

    NaN and infinities (which make Go's encoder fail) are written as ``null``.
    """
    if x is None:
        return "null"
    f = float(x)
    if not math.isfinite(f):
        return "null"
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        r = repr(f)  # shortest digits, e.g. '1.5e-07', '1e+21'
        mant, _, exp = r.partition("e")
        if mant.endswith(".0"):
            mant = mant[:-2]
        sign = exp[0]
        digits = exp[1:].lstrip("0") or "0"
        if len(digits) < 2:
            digits = "0" + digits
        if sign == "-" and digits.startswith("0"):  # Go trims e-07 to e-7 (only for negative exponents)
            digits = digits[1:]
        return f"{mant}e{sign}{digits}"
    r = repr(f)
    if "e" in r or "E" in r:
        r = format(Decimal(r), "f")
    if "." in r:
        r = r.rstrip("0").rstrip(".")
    return r


def _int(x: Any, key: str) -> str:
    if isinstance(x, bool):
        return "1" if x else "0"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    raise ValueError(f"meta.json field {key!r}: expected an integer, got {x!r}")


def _str(x: Any) -> str:
    if x is None:
        return '""'
    return go_string(str(x.value if hasattr(x, "value") else x))


# ----------------------------------------------------------------------------------- meta.json

# (JSON key, kind, omitempty) in the field order of upstream's schema.Job (cc-lib).
_JOB_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("cluster", "str", False),
    ("subCluster", "str", False),
    ("partition", "str", True),
    ("project", "str", False),
    ("user", "str", False),
    ("shared", "str", False),
    ("jobState", "str", False),
    ("tags", "tags", True),
    ("resources", "resources", False),
    ("energyFootprint", "fmap", False),
    ("footprint", "fmap", False),
    ("metaData", "smap", False),
    ("concurrentJobs", "links", False),
    ("energy", "float", False),
    ("arrayJobId", "int", True),
    ("walltime", "int", True),
    ("requestedMemory", "int", True),
    ("jobId", "int", False),
    ("duration", "int", False),
    ("smt", "int", True),
    ("monitoringStatus", "int", True),
    ("numAcc", "int", True),
    ("numHwthreads", "int", True),
    ("numNodes", "int", False),
    ("statistics", "stats", False),
    ("id", "ptrint", True),
    ("submitTime", "int", True),
    ("startTime", "int", False),
)

_EXCLUSIVE_TO_SHARED = {0: "multi_user", 1: "none", 2: "single_user"}


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


def meta_object(meta: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    """The meta.json object of a dict (camelCase or snake_case keys) or a pydantic job model."""
    if isinstance(meta, BaseModel):
        d = meta.model_dump(mode="json", by_alias=True)
    elif isinstance(meta, Mapping):
        d = dict(meta)
    else:
        raise TypeError(f"cannot encode {type(meta).__name__} as meta.json")
    out: dict[str, Any] = {}
    for key, _, _ in _JOB_FIELDS:
        if key in d:
            out[key] = d[key]
        elif _snake(key) in d:
            out[key] = d[_snake(key)]
    if out.get("shared") in (None, "") and d.get("exclusive") is not None:
        out["shared"] = _EXCLUSIVE_TO_SHARED.get(d["exclusive"], "none")  # archive v2 → v3 (§1.9)
    return out


def _unit(u: Any) -> str:
    if u is None:
        return '{"base":""}'
    if isinstance(u, BaseModel):
        u = u.model_dump(mode="json", by_alias=True)
    s = '{"base":' + _str(u.get("base"))
    if u.get("prefix"):
        s += ',"prefix":' + _str(u["prefix"])
    return s + "}"


def _fmap(m: Any) -> str:
    if m is None:
        return "null"
    return "{" + ",".join(f"{go_string(k)}:{go_float(m[k])}" for k in sorted(m)) + "}"


def _smap(m: Any) -> str:
    if m is None:
        return "null"
    return "{" + ",".join(f"{go_string(k)}:{_str(m[k])}" for k in sorted(m)) + "}"


def _tags(tags: Iterable[Any]) -> str:
    parts = []
    for t in tags:
        if isinstance(t, BaseModel):
            t = t.model_dump(mode="json", by_alias=True)
        parts.append(
            f'{{"type":{_str(t.get("type"))},"name":{_str(t.get("name"))},'
            f'"scope":{_str(t.get("scope"))},"id":{_int(t.get("id") or 0, "tags.id")}}}'
        )
    return "[" + ",".join(parts) + "]"


def _resources(res: Any) -> str:
    if res is None:
        return "null"
    parts = []
    for r in res:
        if isinstance(r, BaseModel):
            r = r.model_dump(mode="json", by_alias=True)
        s = '{"hostname":' + _str(r.get("hostname"))
        if r.get("configuration"):
            s += ',"configuration":' + _str(r["configuration"])
        if r.get("hwthreads"):
            s += ',"hwthreads":[' + ",".join(_int(h, "resources.hwthreads") for h in r["hwthreads"]) + "]"
        if r.get("accelerators"):
            s += ',"accelerators":[' + ",".join(_str(a) for a in r["accelerators"]) + "]"
        parts.append(s + "}")
    return "[" + ",".join(parts) + "]"


def _links(cj: Any) -> str:
    if not cj:
        return '{"items":null,"count":0}'
    items = cj.get("items")
    if items is None:
        it = "null"
    else:
        it = (
            "["
            + ",".join(
                f'{{"id":{_int(i.get("id") or 0, "concurrentJobs.id")},'
                f'"jobId":{_int(i.get("jobId") or 0, "concurrentJobs.jobId")}}}'
                for i in items
            )
            + "]"
        )
    return f'{{"items":{it},"count":{_int(cj.get("count") or 0, "concurrentJobs.count")}}}'


def _stats(stats: Any) -> str:
    if stats is None:
        return "null"
    parts = []
    for name in sorted(stats):
        s = stats[name]
        if isinstance(s, BaseModel):
            s = s.model_dump(mode="json", by_alias=True)
        parts.append(
            f"{go_string(name)}:{{\"unit\":{_unit(s.get('unit'))},\"avg\":{go_float(s.get('avg') or 0)},"
            f"\"min\":{go_float(s.get('min') or 0)},\"max\":{go_float(s.get('max') or 0)}}}"
        )
    return "{" + ",".join(parts) + "}"


def dumps_meta(meta: Mapping[str, Any] | BaseModel, *, newline: bool = True) -> bytes:
    """Encode a job as upstream writes meta.json (compact Go-JSON, trailing newline by default).

    Accepts a plain dict (as read from meta.json), `cccommon.schema.JobMeta` or `ccbackend.model.Job`.
    """
    d = meta_object(meta)
    parts: list[str] = []
    for key, kind, omitempty in _JOB_FIELDS:
        v = d.get(key)
        if omitempty and (v is None or (kind != "ptrint" and (v == 0 or v == "" or v == [] or v == {}))):
            continue
        if kind == "str":
            enc = _str(v)
        elif kind == "int":
            enc = _int(v or 0, key)
        elif kind == "ptrint":
            enc = _int(v, key)
        elif kind == "float":
            enc = go_float(v or 0)
        elif kind == "tags":
            enc = _tags(v)
        elif kind == "resources":
            enc = _resources(v)
        elif kind == "fmap":
            enc = _fmap(v)
        elif kind == "smap":
            enc = _smap(v)
        elif kind == "links":
            enc = _links(v)
        else:  # stats
            enc = _stats(v)
        parts.append(f'"{key}":{enc}')
    return ("{" + ",".join(parts) + "}" + ("\n" if newline else "")).encode()


# ----------------------------------------------------------------------------------- data.json

_FMT_CACHE: dict[int, str] = {}


def _fmt(n: int) -> str:
    f = _FMT_CACHE.get(n)
    if f is None:
        f = ",".join(["%.2f"] * n)
        if n <= 100_000:
            _FMT_CACHE[n] = f
    return f


def _nulls(s: str) -> str:
    if "n" in s:  # nan / inf only; digits, '.', '-' and ',' contain no 'n'
        s = s.replace("-nan", "null").replace("nan", "null").replace("-inf", "null").replace("inf", "null")
    return s


def _as_float64(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    return np.array(values if values is not None else (), dtype=np.float64)  # None → NaN


def format_samples(values: Any, *, single: bool = True) -> str:
    """Comma-separated samples with two decimals, NaN/None/inf as ``null``.

    With `single` (series data) each value is first rounded to float32, as upstream's serialiser does;
    statistics series are formatted from float64.
    """
    arr = _as_float64(values)
    if arr.size == 0:
        return ""
    if single:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(np.float32).astype(np.float64)
    return _nulls(_fmt(arr.size) % tuple(arr.tolist()))


def _fixed2(x: Any) -> str:
    if x is None:
        return "null"
    f = float(x)
    return f"{f:.2f}" if math.isfinite(f) else "null"


def _get(obj: Any, camel: str, snake: str) -> Any:
    if isinstance(obj, Mapping):
        return obj[camel] if camel in obj else obj.get(snake)
    return getattr(obj, snake, None)


def _series(s: Any) -> str:
    host = _get(s, "hostname", "hostname")
    sid = _get(s, "id", "id")
    st = _get(s, "statistics", "statistics")
    if st is None:
        mn = av = mx = 0.0  # Go's zero-valued MetricStatistics
    else:
        mn, av, mx = _get(st, "min", "min"), _get(st, "avg", "avg"), _get(st, "max", "max")
    out = '{"hostname":' + _str(host)
    if sid is not None:
        out += ',"id":' + _str(sid)
    out += f',"statistics":{{"min":{_fixed2(mn)},"avg":{_fixed2(av)},"max":{_fixed2(mx)}}}'
    return out + ',"data":[' + format_samples(_get(s, "data", "data")) + "]}"


def _float_list(v: Any) -> str:
    if v is None:
        return "null"
    return "[" + format_samples(v, single=False) + "]"


def _stats_series(ss: Any) -> str:
    parts = []
    pct = _get(ss, "percentiles", "percentiles")
    if pct:
        parts.append(
            '"percentiles":{' + ",".join(f'"{k}":{_float_list(pct[k])}' for k in sorted(pct, key=str)) + "}"
        )
    for key in ("mean", "median", "min", "max"):
        parts.append(f'"{key}":{_float_list(_get(ss, key, key))}')
    return "{" + ",".join(parts) + "}"


def dumps_job_metric(jm: Any) -> str:
    """One JobMetric object (model or dict) in upstream's key order."""
    parts = []
    ss = _get(jm, "statisticsSeries", "statistics_series")
    if ss is not None:
        parts.append('"statisticsSeries":' + _stats_series(ss))
    parts.append('"unit":' + _unit(_get(jm, "unit", "unit")))
    series = _get(jm, "series", "series")
    parts.append('"series":' + ("null" if series is None else "[" + ",".join(map(_series, series)) + "]"))
    parts.append('"timestep":' + _int(_get(jm, "timestep", "timestep") or 0, "timestep"))
    return "{" + ",".join(parts) + "}"


def dumps_data(data: Mapping[str, Mapping[str, Any]] | BaseModel, *, newline: bool = True) -> bytes:
    """Encode job metric data as upstream writes data.json: one compact line plus a trailing newline.

    Accepts `cccommon.schema.JobData`, or a dict metric → scope → JobMetric (model or dict) whose
    series ``data`` may be lists (None for gaps) or numpy arrays (NaN for gaps).
    """
    root = data.root if isinstance(data, BaseModel) and hasattr(data, "root") else data
    if not isinstance(root, Mapping):
        raise TypeError(f"cannot encode {type(data).__name__} as data.json")
    metrics = []
    for name in sorted(root):
        scopes = root[name]
        inner = ",".join(f"{go_string(str(sc))}:{dumps_job_metric(scopes[sc])}" for sc in sorted(scopes))
        metrics.append(f"{go_string(name)}:{{{inner}}}")
    return ("{" + ",".join(metrics) + "}" + ("\n" if newline else "")).encode()
