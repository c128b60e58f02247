"""InfluxDB line protocol in the ClusterCockpit dialect: parse, format, and the store's fast path.

`parse_lines` is the general parser (collector receivers, customcmd). `decode_store_batch` turns a
`/api/write` body into the columns the metric store writes: it scans the whole body with one
regular expression (lines of the usual shape `metric,tags value=X ts` are split in C), caches the
meaning of each distinct `metric,tags` prefix, converts values and timestamps with numpy, and
sends only unusual lines (escapes, quotes, comments, errors) through the general parser.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

import numpy as np

__all__ = [
    "LineProtocolError",
    "Line",
    "StoreBatch",
    "SeriesIndex",
    "UInt",
    "normalize_timestamp",
    "normalize_timestamp_ns",
    "normalize_timestamps",
    "parse_line",
    "parse_lines",
    "format_value",
    "format_line",
    "format_lines",
    "decode_store_batch",
    "go_float",
]

try:  # the uint marker type of the message model, when cccommon.message is importable
    from .message import UInt
except ImportError:  # pragma: no cover

    class UInt(int):  # type: ignore[no-redef]
        __slots__ = ()


# ----------------------------------------------------------------------------- errors, types


class LineProtocolError(ValueError):
    """A malformed line: `.line` and `.column` are 1-based, `.reason` says what is wrong."""

    def __init__(self, line: int, column: int, reason: str) -> None:
        self.line = line
        self.column = column
        self.reason = reason
        super().__init__(f"at line {line}:{column}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (LineProtocolError, (self.line, self.column, self.reason))


FieldValue = float | int | str | bool


@dataclass
class Line:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time: int | None = None  # as written on the wire, not normalised


@dataclass
class StoreBatch:
    """Decoded lines: one store key per line (`metric\\0cluster\\0host\\0type+id\\0stype+id`),
    value and timestamp; `sids` holds the consumer's series ids when a SeriesIndex decoded it
    (then `keys` are produced from the index only if someone reads them)."""

    keys: Sequence[str]
    values: np.ndarray
    times: np.ndarray
    errors: list[LineProtocolError] = field(default_factory=list)
    unknown_metric: int = 0
    no_cluster_or_host: int = 0
    unsafe_name: int = 0
    sids: np.ndarray | None = None


class SeriesIndex(Protocol):
    """A consumer (the metric store) that numbers its series and owns the prefix caches.

    With an index, the cache of each default cluster maps a line prefix straight to a series id,
    so no key string is kept per series; skip codes are cached as negative numbers.
    """

    def prefix_cache(self, default_cluster: str) -> dict[bytes, Any]: ...

    def series_id(self, key: str) -> int: ...

    def series_keys(self, sids: np.ndarray) -> list[str]: ...


class _IndexedKeys(Sequence[str]):
    """The keys of an indexed batch, made from the series ids on first use (the WAL needs them)."""

    __slots__ = ("_sids", "_index", "_keys")

    def __init__(self, sids: np.ndarray, index: SeriesIndex) -> None:
        self._sids = sids
        self._index = index
        self._keys: list[str] | None = None

    def _list(self) -> list[str]:
        if self._keys is None:
            self._keys = self._index.series_keys(self._sids)
        return self._keys

    def __len__(self) -> int:
        return len(self._sids)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        return self._list()[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._list())


# ----------------------------------------------------------------------------- timestamps

_S_MAX = 9_223_372_036
_MS_MAX = 9_223_372_036_854
_US_MAX = 9_223_372_036_854_775


def normalize_timestamp(ts: int) -> int:
    """Unix seconds of a timestamp given in s, ms, µs or ns (detected by magnitude)."""
    a = abs(ts)
    if a <= _S_MAX:
        return ts
    if a <= _MS_MAX:
        d = 1000
    elif a <= _US_MAX:
        d = 1_000_000
    else:
        d = 1_000_000_000
    return -(a // d) if ts < 0 else ts // d


def normalize_timestamp_ns(ts: int) -> int:
    """The same instant in nanoseconds."""
    a = abs(ts)
    if a <= _S_MAX:
        return ts * 1_000_000_000
    if a <= _MS_MAX:
        return ts * 1_000_000
    if a <= _US_MAX:
        return ts * 1_000
    return ts


def normalize_timestamps(ts: np.ndarray) -> np.ndarray:
    """Vectorised `normalize_timestamp` on an int64 array (truncating toward zero)."""
    ts = np.asarray(ts, dtype=np.int64)
    a = np.abs(ts).view(np.uint64)  # |int64 min| = 2**63 only fits unsigned
    if not (a > _S_MAX).any():
        return ts
    div = np.where(
        a <= _S_MAX, 1, np.where(a <= _MS_MAX, 1000, np.where(a <= _US_MAX, 1_000_000, 1_000_000_000))
    ).astype(np.uint64)
    q = (a // div).astype(np.int64)
    return np.where(ts < 0, -q, q)


# ----------------------------------------------------------------------------- general parser

_BOOL = {
    "t": True,
    "T": True,
    "true": True,
    "True": True,
    "TRUE": True,
    "f": False,
    "F": False,
    "false": False,
    "False": False,
    "FALSE": False,
}
_STR_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_UINT_RE = re.compile(r"[0-9]+\Z")


def _read_token(s: str, i: int, stops: str, escapable: str) -> tuple[str, int]:
    """Read from s[i] until an unescaped char of `stops`; `\\x` for x in escapable yields x."""
    out: list[str] = []
    n = len(s)
    start = i
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] in escapable:
            if start < i:
                out.append(s[start:i])
            out.append(s[i + 1])
            i += 2
            start = i
            continue
        if c in stops:
            break
        i += 1
    out.append(s[start:i])
    return "".join(out), i


def _field_value(raw: str, lineno: int, col: int) -> FieldValue:
    if not raw:
        raise LineProtocolError(lineno, col, "expected field value, but none found")
    last = raw[-1]
    if last == "i" and _INT_RE.match(raw, 0, len(raw) - 1):
        v = int(raw[:-1])
        if not -(2**63) <= v < 2**63:
            raise LineProtocolError(lineno, col, f"integer value out of range: {raw}")
        return v
    if last == "u" and _UINT_RE.match(raw, 0, len(raw) - 1):
        v = int(raw[:-1])
        if v >= 2**64:
            raise LineProtocolError(lineno, col, f"unsigned value out of range: {raw}")
        return UInt(v)
    b = _BOOL.get(raw)
    if b is not None:
        return b
    if _FLOAT_RE.match(raw):
        f = float(raw)
        if math.isinf(f):
            raise LineProtocolError(lineno, col, f"float value out of range: {raw}")
        return f
    raise LineProtocolError(lineno, col, f"invalid field value {raw!r}")


def parse_line(s: str, lineno: int = 1) -> Line | None:
    """Parse one line (without newline); None for blank lines and comments."""
    n = len(s)
    i = 0
    while i < n and s[i] in " \t":
        i += 1
    if i >= n or s[i] == "#" or s[i:].strip() == "":
        return None
    if "\x00" in s:
        raise LineProtocolError(lineno, s.index("\x00") + 1, "invalid NUL byte")
    meas, i = _read_token(s, i, ", ", ", ")
    if not meas:
        raise LineProtocolError(lineno, i + 1, "expected measurement name, but none found")
    tags: dict[str, str] = {}
    while i < n and s[i] == ",":
        i += 1
        kstart = i
        key, i = _read_token(s, i, ",= ", ",= ")
        if i >= n or s[i] != "=":
            raise LineProtocolError(lineno, i + 1, f"expected tag key or field but found {s[kstart:i]!r}")
        if not key:
            raise LineProtocolError(lineno, kstart + 1, "empty tag key")
        i += 1
        vstart = i
        val, i = _read_token(s, i, ",= ", ",= ")
        if i < n and s[i] == "=":
            raise LineProtocolError(lineno, i + 1, f"invalid character '=' in tag value of {key!r}")
        if not val and vstart == i:
            raise LineProtocolError(
                lineno, i + 1, f'expected tag value after tag key "{key}", but none found'
            )
        tags[key] = val
    if i >= n or s[i] != " ":
        raise LineProtocolError(lineno, i + 1, "expected field key, but none found")
    while i < n and s[i] == " ":
        i += 1
    fields: dict[str, FieldValue] = {}
    while True:
        kstart = i
        key, i = _read_token(s, i, "=, ", ",= ")
        if i >= n or s[i] != "=":
            raise LineProtocolError(lineno, i + 1, f"expected field key and value, found {s[kstart:i]!r}")
        if not key:
            raise LineProtocolError(lineno, kstart + 1, "empty field key")
        i += 1
        vstart = i
        if i < n and s[i] == '"':
            i += 1
            buf: list[str] = []
            while i < n and s[i] != '"':
                if s[i] == "\\" and i + 1 < n and s[i + 1] in _STR_ESCAPES:
                    buf.append(_STR_ESCAPES[s[i + 1]])
                    i += 2
                else:
                    buf.append(s[i])
                    i += 1
            if i >= n:
                raise LineProtocolError(lineno, vstart + 1, "unterminated string field value")
            i += 1
            fields[key] = "".join(buf)
        else:
            j = i
            while j < n and s[j] not in ", ":
                j += 1
            fields[key] = _field_value(s[i:j], lineno, vstart + 1)
            i = j
        if i < n and s[i] == ",":
            i += 1
            continue
        break
    ts: int | None = None
    if i < n and s[i] == " ":
        while i < n and s[i] == " ":
            i += 1
        j = i
        while j < n and s[j] not in " \t\r":
            j += 1
        raw = s[i:j]
        if raw:
            if not _INT_RE.match(raw):
                raise LineProtocolError(lineno, i + 1, f"invalid timestamp {raw!r}")
            ts = int(raw)
            if not -(2**63) <= ts < 2**63:
                raise LineProtocolError(lineno, i + 1, f"timestamp out of range {raw!r}")
        i = j
    rest = s[i:]
    if rest.strip(" \t\r"):
        raise LineProtocolError(lineno, i + 1, f"unexpected text after the line: {rest.strip()[:20]!r}")
    return Line(meas, tags, fields, ts)


def _decode_line(raw: bytes, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LineProtocolError(lineno, e.start + 1, "invalid UTF-8") from None


def parse_lines(data: bytes | str) -> tuple[list[Line], list[LineProtocolError]]:
    """All good lines and the errors of the bad ones (bad lines are skipped, good ones kept)."""
    out: list[Line] = []
    errors: list[LineProtocolError] = []
    raw_lines: Iterable[bytes | str] = data.split(b"\n" if isinstance(data, bytes) else "\n")
    for no, raw in enumerate(raw_lines, 1):
        try:
            text = _decode_line(raw, no) if isinstance(raw, bytes) else raw
            if text.endswith("\r"):
                text = text[:-1]
            line = parse_line(text, no)
        except LineProtocolError as e:
            errors.append(e)
            continue
        if line is not None:
            out.append(line)
    return out, errors


# ----------------------------------------------------------------------------- formatting


def go_float(x: float) -> str:
    """Go's shortest `%g`-style float text (strconv 'g', -1), as the Go line-protocol encoder writes."""
    if 1e-4 <= abs(x) < 1e6:  # the usual range: Python's repr has the same digits and no exponent
        r = repr(x)
        return r[:-2] if r.endswith(".0") else r
    if x == 0.0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    sign, r = ("-" if x < 0 else ""), repr(abs(x))
    mant, _, e = r.partition("e")
    ip, _, fp = mant.partition(".")
    ds = ip + fp
    st = ds.lstrip("0")
    dp = len(ip) + (int(e) if e else 0) - (len(ds) - len(st))
    digits = st.rstrip("0") or "0"
    exp = dp - 1
    if exp < -4 or exp >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return sign + "0." + "0" * -dp + digits
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return sign + digits[:dp] + "." + digits[dp:]


def _esc_meas(s: str) -> str:
    if "\\" in s or " " in s or "," in s:
        s = s.replace(" ", "\\ ").replace(",", "\\,")
    return s


def _esc_key(s: str) -> str:
    if " " in s or "," in s or "=" in s:
        s = s.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")
    return s


def _esc_str(s: str) -> str:
    return (
        s.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )


def format_value(v: FieldValue) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, UInt):
        return f"{int(v)}u"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot encode {v} in line protocol")
        return go_float(v)
    if isinstance(v, str):
        return f'"{_esc_str(v)}"'
    raise TypeError(f"unsupported field value type {type(v).__name__}")


def format_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], time: int | None = None
) -> str:
    """One line without newline: tags sorted by key, values typed (`5i`, `5u`, floats Go-style)."""
    key = (measurement, *tags.items())
    head = _HEADS.get(key)
    if head is None:
        parts = [_esc_meas(measurement)]
        for k in sorted(tags):
            parts.append(f",{_esc_key(k)}={_esc_key(tags[k])}")
        parts.append(" ")
        head = "".join(parts)
        if len(_HEADS) >= _HEADS_LIMIT:
            _HEADS.clear()
        _HEADS[key] = head
    if len(fields) == 1 and "value" in fields:
        body = "value=" + format_value(fields["value"])
    else:
        body = ",".join(f"{_esc_key(k)}={format_value(v)}" for k, v in fields.items())
    return f"{head}{body} {time}" if time is not None else head + body


# `measurement,tags ` of recent series: the same series are written at every interval
_HEADS: dict[tuple[str, ...], str] = {}
_HEADS_LIMIT = 200_000


def format_lines(lines: Iterable[Line]) -> bytes:
    """Lines joined by newline (each line terminated by `\\n`)."""
    return "".join(format_line(ln.measurement, ln.tags, ln.fields, ln.time) + "\n" for ln in lines).encode()


# ----------------------------------------------------------------------------- store fast path

# One match per line: groups 1-3 for `prefix value=NUM[ TS]`, group 4 for anything else.
_FAST = re.compile(
    rb"^(?:([^ \\\n\"#\r\t\x00]+) value=([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]{1,3})?)(?: (-?[0-9]{1,19}))?\r?|(.*?)\r?)$",
    re.M,
)

_UNKNOWN = 1
_NO_HOST = 2
_UNSAFE = 3
_ERROR = 4

_CACHE_LIMIT = 1 << 20
_prefix_cache: dict[tuple[int, str], tuple[Mapping[str, int], int, dict[bytes, Any]]] = {}


def _unsafe(name: str) -> bool:
    return ".." in name or "/" in name or "\\" in name


def _classify(metric: str, tags: Mapping[str, str], metrics: Mapping[str, int], default_cluster: str) -> Any:
    """The store key of a line's series, or a skip code."""
    if metric not in metrics:
        return _UNKNOWN
    cluster = tags.get("cluster") or default_cluster
    host = tags.get("hostname") or tags.get("host") or ""
    if not cluster or not host:
        return _NO_HOST
    if _unsafe(cluster) or _unsafe(host):
        return _UNSAFE
    if any("\x00" in v for v in tags.values()):
        return _UNSAFE  # would break the NUL-separated store key
    typ = tags.get("type", "")
    if typ == "node":
        typ = ""
    tcomp = typ + tags.get("type-id", "")
    scomp = (tags.get("stype", "") + tags.get("stype-id", "")) if tcomp else ""
    return f"{metric}\x00{cluster}\x00{host}\x00{tcomp}\x00{scomp}"


def _classify_prefix(prefix: bytes, metrics: Mapping[str, int], default_cluster: str) -> Any:
    """Meaning of `metric,k=v,...` (no escapes): a key, a skip code, or (_ERROR, col, reason)."""
    try:
        text = prefix.decode("utf-8")
    except UnicodeDecodeError as e:
        return (_ERROR, e.start + 1, "invalid UTF-8")
    parts = text.split(",")
    metric = parts[0]
    if not metric:
        return (_ERROR, 1, "expected measurement name, but none found")
    if metric not in metrics:
        return _UNKNOWN
    tags: dict[str, str] = {}
    col = len(metric) + 2
    for p in parts[1:]:
        k, eq, v = p.partition("=")
        if not eq:
            return (_ERROR, col + len(p), f"expected tag key or field but found {p!r}")
        if not k:
            return (_ERROR, col, "empty tag key")
        if not v:
            return (_ERROR, col + len(p), f'expected tag value after tag key "{k}", but none found')
        if "=" in v:
            return (_ERROR, col + len(k) + 1 + v.index("="), f"invalid character '=' in tag value of {k!r}")
        tags[k] = v
        col += len(p) + 1
    return _classify(metric, tags, metrics, default_cluster)


def _slow_line(raw: bytes, lineno: int, metrics: Mapping[str, int], default_cluster: str) -> Any:
    """(key|code, value, ts|None) for an unusual line, None for blank/comment, or raise."""
    text = _decode_line(raw, lineno)
    if text.endswith("\r"):
        text = text[:-1]
    stripped = text.lstrip(" \t")
    if not stripped or stripped.startswith("#"):
        return None
    # an unknown metric is skipped without looking at the rest of the line (upstream)
    meas, _ = _read_token(stripped, 0, ", ", ", ")
    if meas and meas not in metrics:
        return (_UNKNOWN, 0.0, None)
    line = parse_line(text, lineno)
    if line is None:
        return None
    value: Any = None
    for k, v in line.fields.items():
        if k != "value":
            raise LineProtocolError(lineno, 1, f"unknown field: '{k}' (only 'value' is accepted)")
        value = v
    if isinstance(value, str | bool):
        kind = "string" if isinstance(value, str) else "bool"
        raise LineProtocolError(lineno, 1, f"unsupported value type in message: {kind}")
    return (_classify(line.measurement, line.tags, metrics, default_cluster), float(value), line.time)


def decode_store_batch(
    data: bytes, metrics: Mapping[str, int], default_cluster: str, now: int, index: SeriesIndex | None = None
) -> StoreBatch:
    """Decode a write body into store columns (see docs/internals.md for the exact rules).

    `index` (default: `metrics.series_index` when the mapping carries one) makes the batch carry
    series ids from the index's own prefix cache instead of key strings.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if index is None:
        index = getattr(metrics, "series_index", None)
    if index is not None:
        return _decode_indexed(data, metrics, default_cluster, now, index)
    ck = (id(metrics), default_cluster)
    entry = _prefix_cache.get(ck)
    # the entry keeps `metrics` alive, so its id cannot be reused by another mapping; a mapping
    # that changed size (metrics added or removed) gets a fresh cache
    if entry is None or entry[0] is not metrics or entry[1] != len(metrics) or len(entry[2]) > _CACHE_LIMIT:
        if len(_prefix_cache) > 64:
            _prefix_cache.clear()
        entry = _prefix_cache[ck] = (metrics, len(metrics), {})
    cache = entry[2]
    if _lpscan is not None:
        fast = _decode_uniform_c(data, metrics, default_cluster, now, cache)
    else:
        fast = _decode_uniform(data, metrics, default_cluster, now, cache)
    if fast is not None:
        return fast
    return _decode_lines(data, metrics, default_cluster, now, cache)


try:  # the C accelerator (libs/cccommon/setup.py); the Python paths below give the same results
    from . import _lpscan
except ImportError:  # pragma: no cover - built without a compiler
    _lpscan = None


def _decode_uniform_c(
    data: bytes, metrics: Mapping[str, int], default_cluster: str, now: int, cache: dict[bytes, Any]
) -> StoreBatch | None:
    """`_decode_uniform` in C: one pass over the body, numbers parsed as float() does."""
    out = _lpscan.decode_uniform(data, cache, now)
    if out is None:
        return None
    res, vbytes, tbytes, missing, not_str = out
    values = np.frombuffer(vbytes, dtype=np.float64)
    times = np.frombuffer(tbytes, dtype=np.int64)
    if missing:
        for i, r in enumerate(res):
            if r.__class__ is bytes:
                c = cache.get(r)
                if c is None:
                    c = cache[r] = _classify_prefix(r, metrics, default_cluster)
                res[i] = c
                if c.__class__ is not str:
                    not_str += 1
    if not not_str:
        return StoreBatch(res, values, times, [], 0, 0, 0)
    return _with_skips(res, values, times)


def _with_skips(res: list[Any], values: np.ndarray, times: np.ndarray) -> StoreBatch:
    """A batch from per-line results some of which are skip codes or errors."""
    n = len(res)
    is_key = np.fromiter((r.__class__ is str for r in res), dtype=bool, count=n)
    errors: list[LineProtocolError] = []
    unknown = no_host = unsafe = 0
    for i in np.flatnonzero(~is_key).tolist():
        r = res[i]
        if r == _UNKNOWN:
            unknown += 1
        elif r == _NO_HOST:
            no_host += 1
        elif r == _UNSAFE:
            unsafe += 1
        else:
            errors.append(LineProtocolError(i + 1, r[1], r[2]))
    keys = [r for r in res if r.__class__ is str]
    return StoreBatch(keys, values[is_key], times[is_key], errors, unknown, no_host, unsafe)


_VALUE_BYTES = np.frombuffer(b"value=", dtype=np.uint8)
_VALUE_OFFS = np.arange(1, 7)
_SPECIAL = (b"\\", b'"', b"#", b"\t", b"\r", b"\x00", b"\x0b", b"\x0c", b"\n\n", b"\n ", b"  ")


def _indexed_value(res: Any, index: SeriesIndex) -> Any:
    """What an index's prefix cache holds for a classification: a series id, -code, or an error."""
    if res.__class__ is str:
        return index.series_id(res)
    if res.__class__ is int:
        return -res
    return res


def _decode_indexed(
    data: bytes, metrics: Mapping[str, int], default_cluster: str, now: int, index: SeriesIndex
) -> StoreBatch:
    cache = index.prefix_cache(default_cluster)
    if len(cache) > _CACHE_LIMIT:
        cache.clear()

    if _lpscan is not None:
        out = _lpscan.decode_uniform(data, cache, now)
        if out is not None:
            res, vbytes, tbytes, missing, _ = out
            if missing:
                for i, r in enumerate(res):
                    if r.__class__ is bytes:
                        c = cache.get(r)
                        if c is None:
                            c = _classify_prefix(r, metrics, default_cluster)
                            c = cache[r] = _indexed_value(c, index)
                        res[i] = c
            values = np.frombuffer(vbytes, dtype=np.float64)
            times = np.frombuffer(tbytes, dtype=np.int64)
            return _indexed_batch(res, values, times, index)
    else:
        fast = _decode_uniform(data, metrics, default_cluster, now, cache, index)
        if fast is not None:
            return fast
    return _decode_lines(data, metrics, default_cluster, now, cache, index)


def _indexed_batch(res: list[Any], values: np.ndarray, times: np.ndarray, index: SeriesIndex) -> StoreBatch:
    """A batch from per-line cache values of an index (series ids, -codes, error tuples)."""
    errors: list[LineProtocolError] = []
    try:
        ids = np.fromiter(res, dtype=np.int64, count=len(res))
    except TypeError:  # error tuples among the ids
        errors = [LineProtocolError(i + 1, r[1], r[2]) for i, r in enumerate(res) if r.__class__ is tuple]
        ids = np.fromiter((r if r.__class__ is int else -_ERROR for r in res), dtype=np.int64, count=len(res))
    ok = ids >= 0
    if ok.all():
        return StoreBatch(_IndexedKeys(ids, index), values, times, errors, 0, 0, 0, ids)
    counts = np.bincount(-ids[~ok], minlength=_ERROR + 1)
    ids = ids[ok]
    return StoreBatch(
        _IndexedKeys(ids, index),
        values[ok],
        times[ok],
        errors,
        int(counts[_UNKNOWN]),
        int(counts[_NO_HOST]),
        int(counts[_UNSAFE]),
        ids,
    )


def _decode_uniform(
    data: bytes,
    metrics: Mapping[str, int],
    default_cluster: str,
    now: int,
    cache: dict[bytes, Any],
    index: SeriesIndex | None = None,
) -> StoreBatch | None:
    """The common body: every line `prefix value=NUM TS` without escapes; None if not that shape."""
    body = data.rstrip(b"\n")
    if not body or body[0] == 32:
        return None
    for sp in _SPECIAL:
        if sp in body:
            return None
    n = body.count(b"\n") + 1
    if body.count(b" ") != 2 * n or body.count(b" value=") != n:
        return None
    arr = np.frombuffer(body, dtype=np.uint8)
    spaces = np.flatnonzero(arr == 32)
    nl = np.flatnonzero(arr == 10)
    if not (np.diff(np.searchsorted(spaces, nl), prepend=0, append=len(spaces)) == 2).all():
        return None
    first = spaces[0::2]
    if first[-1] + 7 > len(arr) or not (arr[first[:, None] + _VALUE_OFFS] == _VALUE_BYTES).all():
        return None  # ` value=` must be the first space of every line
    tokens = body.replace(b" value=", b" ").replace(b"\n", b" ").split(b" ")
    fields = tokens[1::3]
    stamps = tokens[2::3]
    try:
        values = np.array(list(map(float, fields)), dtype=np.float64)
        t0 = stamps[0]
        if max(map(len, stamps)) >= 19 and not all(-(2**63) <= int(t) < 2**63 for t in stamps):
            return None
        if stamps.count(t0) == n:
            times = np.full(n, normalize_timestamp(int(t0)), dtype=np.int64)
        else:
            times = normalize_timestamps(np.array(list(map(int, stamps)), dtype=np.int64))
    except (ValueError, OverflowError):
        return None  # ints with a suffix, bad numbers: line by line
    if not np.isfinite(values).all() or b"_" in b"".join(fields) or b"_" in b"".join(stamps):
        return None  # nan/inf, or digits with underscores that Python would accept
    prefixes = tokens[0::3]
    res = list(map(cache.get, prefixes))
    if None in res:
        for i, r in enumerate(res):
            if r is None:
                r = cache.get(prefixes[i])
                if r is None:
                    r = _classify_prefix(prefixes[i], metrics, default_cluster)
                    if index is not None:
                        r = _indexed_value(r, index)
                    cache[prefixes[i]] = r
                res[i] = r
    if index is not None:
        return _indexed_batch(res, values, times, index)
    if set(map(type, res)) == {str}:
        return StoreBatch(res, values, times, [], 0, 0, 0)
    return _with_skips(res, values, times)


def _decode_lines(
    data: bytes,
    metrics: Mapping[str, int],
    default_cluster: str,
    now: int,
    cache: dict[bytes, Any],
    index: SeriesIndex | None = None,
) -> StoreBatch:
    """Any body, line by line: usual lines through a regular expression, others fully parsed.

    With an index, `cache` holds the index's values and the keys collected are series ids."""
    rows = _FAST.findall(data)
    cache_get = cache.get
    keys: list[Any] = []
    vals: list[bytes | float] = []
    tss: list[bytes] = []
    errors: list[LineProtocolError] = []
    unknown = no_host = unsafe = 0
    slow_vals: list[tuple[int, float]] = []  # (row in output, value) for lines decoded by the slow path
    linenos: list[int] = []
    append_key = keys.append
    append_val = vals.append
    append_ts = tss.append
    append_lineno = linenos.append

    for lineno, (prefix, val, ts, other) in enumerate(rows, 1):
        if prefix:
            res = cache_get(prefix)
            if res is None:
                res = _classify_prefix(prefix, metrics, default_cluster)
                if index is not None:
                    res = _indexed_value(res, index)
                cache[prefix] = res
            if index is None:
                is_key = res.__class__ is str
            elif res.__class__ is int:  # a series id, or a skip code as a negative number
                is_key = res >= 0
                if not is_key:
                    res = -res
            else:
                is_key = False
            if is_key:
                if len(ts) >= 19 and not -(2**63) <= int(ts) < 2**63:
                    errors.append(
                        LineProtocolError(
                            lineno, len(prefix) + len(val) + 9, f"timestamp out of range {ts.decode()!r}"
                        )
                    )
                    continue
                append_lineno(lineno)
                append_key(res)
                append_val(val)
                append_ts(ts)
                continue
            if res == _UNKNOWN:
                unknown += 1
            elif res == _NO_HOST:
                no_host += 1
            elif res == _UNSAFE:
                unsafe += 1
            else:
                errors.append(LineProtocolError(lineno, res[1], res[2]))
            continue
        if not other or other.isspace():
            continue
        try:
            r = _slow_line(other, lineno, metrics, default_cluster)
        except LineProtocolError as e:
            errors.append(e)
            continue
        if r is None:
            continue
        res, fval, t = r
        if index is not None and res.__class__ is str:
            res = index.series_id(res)
            key = True
        else:
            key = res.__class__ is str
        if key:
            slow_vals.append((len(keys), fval))
            append_lineno(lineno)
            append_key(res)
            append_val(b"0")
            append_ts(b"" if t is None else str(t).encode())
        elif res == _UNKNOWN:
            unknown += 1
        elif res == _NO_HOST:
            no_host += 1
        elif res == _UNSAFE:
            unsafe += 1

    n = len(keys)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return StoreBatch(
            [] if index is None else _IndexedKeys(empty, index),
            np.zeros(0),
            np.zeros(0, dtype=np.int64),
            errors,
            unknown,
            no_host,
            unsafe,
            None if index is None else empty,
        )
    values = np.array(vals, dtype="S").astype(np.float64)
    for row, fval in slow_vals:
        values[row] = fval
    times = _times(tss, now)
    finite = np.isfinite(values)
    if not finite.all():  # e.g. 9e999: out of float64 range, an error as in the general parser
        for row in np.flatnonzero(~finite).tolist():
            errors.append(LineProtocolError(linenos[row], 1, "float value out of range"))
        errors.sort(key=lambda e: e.line)
        keys = [k for k, ok in zip(keys, finite.tolist(), strict=True) if ok]
        values, times = values[finite], times[finite]
    if index is not None:
        ids = np.array(keys, dtype=np.int64)
        return StoreBatch(_IndexedKeys(ids, index), values, times, errors, unknown, no_host, unsafe, ids)
    return StoreBatch(keys, values, times, errors, unknown, no_host, unsafe)


def _times(tss: list[bytes], now: int) -> np.ndarray:
    """Timestamps in seconds; a missing one takes the previous line's (the first: `now`)."""
    arr = np.array(tss, dtype="S")
    missing = arr == b""
    if missing.any():
        arr = np.where(missing, b"0", arr)
        t = arr.astype(np.int64)
        t = normalize_timestamps(t)
        idx = np.where(missing, -1, np.arange(len(t)))
        np.maximum.accumulate(idx, out=idx)
        filled = np.where(idx < 0, now, t[np.maximum(idx, 0)])
        return filled.astype(np.int64)
    return normalize_timestamps(arr.astype(np.int64))
