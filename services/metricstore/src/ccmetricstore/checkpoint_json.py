"""JSON checkpoint files (`<from>.json`, spec §12.3): upstream's layout, read fast.

Writing: every level carries `metrics`, `children`, `from`, `to` (names sorted, as Go's encoder
sorts map keys); a metric is `{"frequency","start","data"}`; values are written with full float32
precision (the shortest text that reads back as the same float32, decisions: not upstream's one
decimal), NaN and ±Inf as `null` (JSON has no infinity). Upstream loads these files unchanged.

Reading accepts any JSON number and `null`. Restore speed is bounded by this decoder, so the value
arrays are not parsed through Python objects: the `"data":[...]` arrays are cut out of the text,
the small remaining skeleton goes through orjson, and all numbers of the file are parsed at once
with numpy (fixed 8- or 16-byte windows per number, SWAR digit arithmetic, one exact division per
value). Numbers the fast path cannot take (exponents, more than 15 digits, odd spellings) are
parsed one by one by orjson, so every input gives the same float32 as a plain JSON parser.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import orjson

from .snapshot import SeriesSnapshot, Snapshot

__all__ = ["encode_json", "decode_json"]

# ----------------------------------------------------------------------------- encoding


def _level_obj(snap: Snapshot, from_: int, to: int) -> dict[str, Any]:
    metrics = {}
    for name in sorted(snap.metrics):
        s = snap.metrics[name]
        data = np.ascontiguousarray(s.data, dtype=np.float32)  # orjson: NaN, ±Inf → null
        metrics[name] = {"frequency": int(s.frequency), "start": int(s.start), "data": data}
    children = {name: _level_obj(snap.children[name], from_, to) for name in sorted(snap.children)}
    return {"metrics": metrics, "children": children, "from": from_, "to": to}


def encode_json(snap: Snapshot) -> bytes:
    """The checkpoint file's bytes (one line, newline-terminated like Go's json.Encoder)."""
    obj = _level_obj(snap, int(snap.from_), int(snap.to))
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)


# ----------------------------------------------------------------------------- decoding
#
# Numbers are parsed in batches of about _BATCH bytes of array text. In a batch every number is
# right-aligned in a window of 8 (or 16) bytes ending at its comma; with the window as uint64
# lanes, masks drop the bytes of earlier numbers, the integer digits move one byte right over the
# dot, and a SWAR multiply-shift sequence turns the digits into the integer mantissa M. The value
# is M / 10**F, one correctly rounded division as long as M < 2**53 (at most 15 digits). All
# temporaries live in per-thread scratch arrays so no large array is allocated per batch.

_COMMA, _DOT, _MINUS, _ZERO, _N = 44, 46, 45, 48, 110
_PAD = 16  # commas in front of the text, so every window starts inside the buffer
_BATCH = 1 << 17
_MAX_DIGITS = 15
_WS = b" \t\r\n"
_U = np.uint64
_NULL = np.frombuffer(b"null", dtype=np.uint8)


def _masks(rows: np.ndarray, width: int) -> np.ndarray:
    """(k, width) bool → (k,) V{width}: bytes 0xFF where true, for np.take into uint64 lanes."""
    m = np.where(rows, 0xFF, 0).astype(np.uint8)
    return np.ascontiguousarray(m).view(f"V{width}").reshape(-1)


class _Layout:
    """Lookup tables for one window width."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.lanes = width // 8
        cols = np.arange(width)
        k = np.arange(width + 1)[:, None]
        self.inside = _masks(cols >= width - k, width)  # by number length: its own bytes
        # by dot position p = column + 1 (0: no dot): where the shifted integer digits go, and
        # where the fraction digits stay
        self.shifted = _masks(cols < k, width)
        keep = cols >= k
        keep[0] = True
        self.kept = _masks(keep, width)
        self.divisor = 10.0 ** np.array([0] + [width - p for p in range(1, width + 1)], dtype=np.float64)
        # multiplying a lane of 0/1 dot bytes by this puts "column + 1" of the dot in the top byte
        self.dot_weights = np.array(
            [sum((8 * lane + 8 - j) << (8 * j) for j in range(8)) for lane in range(self.lanes)],
            dtype=np.uint64,
        )


_LAYOUTS = {8: _Layout(8), 16: _Layout(16)}


class _Scratch:
    """Per-thread work arrays, grown to the largest batch seen (about 3 MB for 128 KiB)."""

    def __init__(self) -> None:
        self.nbytes = self.ntok = 0

    def for_bytes(self, n: int) -> None:
        if n > self.nbytes:
            n = max(n, _BATCH + (_BATCH >> 2))
            self.nbytes = n
            self.buf = np.empty(n, dtype=np.uint8)
            self.iota = np.arange(n, dtype=np.intp)
            self.flag = np.empty(n, dtype=bool)
            self.commas = np.empty(n, dtype=np.intp)

    def for_tokens(self, n: int) -> None:
        if n > self.ntok:
            n = max(n, _BATCH // 4)
            self.ntok = n
            self.starts = np.empty(n, dtype=np.intp)
            self.lens = np.empty(n, dtype=np.intp)
            self.idx = np.empty(n, dtype=np.intp)
            self.spos = np.empty(n, dtype=np.intp)
            self.first = np.empty(n, dtype=np.uint8)
            self.neg = np.empty(n, dtype=bool)
            self.isnull = np.empty(n, dtype=bool)
            self.mant = np.empty(n, dtype=np.uint64)
            self.div = np.empty(n, dtype=np.float64)
            self.mat = np.empty(n * 16, dtype=np.uint8)
            self.mask = np.empty(n * 16, dtype=np.uint8)
            self.dig = np.empty(n * 16, dtype=np.uint8)
            self.isdig = np.empty(n * 16, dtype=bool)
            self.isdot = np.empty(n * 16, dtype=bool)
            self.lane = np.empty(n * 2, dtype=np.uint64)
            self.lane2 = np.empty(n * 2, dtype=np.uint64)


_local = threading.local()


def _scratch() -> _Scratch:
    s = getattr(_local, "scratch", None)
    if s is None:
        s = _local.scratch = _Scratch()
    return s


def _parse_one(token: bytes) -> float:
    try:
        v = orjson.loads(token)
    except orjson.JSONDecodeError:
        v = token
    if v is None:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"invalid JSON checkpoint: bad value in a data array: {token[:40]!r}")
    return float(v)


def _parse_batch(text: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Comma-separated numbers/nulls → (float32 values, offset in `text` where each one ends)."""
    n = len(text)
    w = _scratch()
    nbuf = _PAD + n + 1
    w.for_bytes(nbuf)
    buf = w.buf[:nbuf]
    buf[_PAD : _PAD + n] = np.frombuffer(text, dtype=np.uint8)
    buf[:_PAD] = _COMMA
    buf[-1] = _COMMA
    flag = np.equal(buf, _COMMA, out=w.flag[:nbuf])
    ncommas = int(np.count_nonzero(flag))
    commas = np.compress(flag, w.iota[:nbuf], out=w.commas[:ncommas])
    c = ncommas - _PAD  # numbers in the batch
    w.for_tokens(c)
    ends = commas[_PAD:]
    starts = np.add(commas[_PAD - 1 : -1], 1, out=w.starts[:c])
    lens = np.subtract(ends, starts, out=w.lens[:c])
    if c == 0 or lens.min() <= 0:
        raise ValueError("invalid JSON checkpoint: empty value in a data array")
    lay = _LAYOUTS[8 if lens.max() <= 8 else 16]
    width, lanes = lay.width, lay.lanes
    vtype = f"V{width}"

    windows = np.ndarray((nbuf - width + 1,), dtype=vtype, buffer=buf, strides=(1,))
    idx = np.subtract(ends, width, out=w.idx[:c])
    mat = w.mat[: c * width].reshape(c, width)
    np.take(windows, idx, out=mat.view(vtype).reshape(c), mode="clip")
    first = np.take(buf, starts, out=w.first[:c], mode="clip")
    neg = np.equal(first, _MINUS, out=w.neg[:c])
    np.minimum(lens, width, out=idx)
    inside = w.mask[: c * width].reshape(c, width)
    np.take(lay.inside, idx, out=inside.view(vtype).reshape(c), mode="clip")
    inside_l = inside.view("<u8")

    dig = np.subtract(mat, _ZERO, out=w.dig[: c * width].reshape(c, width))
    isdig = np.less(dig, 10, out=w.isdig[: c * width].reshape(c, width))
    np.multiply(dig, isdig.view(np.uint8), out=dig)
    dig_l = dig.view("<u8")
    dig_l &= inside_l
    isdig_l = isdig.view("<u8")
    isdig_l &= inside_l
    isdot = np.equal(mat, _DOT, out=w.isdot[: c * width].reshape(c, width))
    isdot_l = isdot.view("<u8")
    isdot_l &= inside_l

    # column + 1 of each number's dot (0 without one)
    lane = w.lane[: c * lanes].reshape(c, lanes)
    np.multiply(isdot_l, lay.dot_weights, out=lane)
    lane >>= _U(56)
    spos = w.spos[:c]
    if lanes == 2:
        np.add(lane[:, 0], lane[:, 1], out=spos, casting="unsafe")
    else:
        np.copyto(spos, lane[:, 0], casting="unsafe")

    # integer digits one byte to the right, over the dot
    shifted = np.left_shift(dig_l, _U(8), out=w.lane2[: c * lanes].reshape(c, lanes))
    if lanes == 2:
        np.right_shift(dig_l[:, 0], _U(56), out=lane[:, 0])
        shifted[:, 1] |= lane[:, 0]
    np.take(lay.shifted, spos, out=inside.view(vtype).reshape(c), mode="clip")
    shifted &= inside_l
    np.take(lay.kept, spos, out=inside.view(vtype).reshape(c), mode="clip")
    dig_l &= inside_l
    dig_l |= shifted

    # SWAR: 8 digit bytes (most significant first) → their integer
    dig_l *= _U(2561)
    dig_l >>= _U(8)
    dig_l &= _U(0x00FF00FF00FF00FF)
    dig_l *= _U(6553601)
    dig_l >>= _U(16)
    dig_l &= _U(0x0000FFFF0000FFFF)
    dig_l *= _U(42949672960001)
    dig_l >>= _U(32)
    if lanes == 2:
        mant = np.multiply(dig_l[:, 0], _U(100_000_000), out=w.mant[:c])
        mant += dig_l[:, 1]
    else:
        mant = dig_l[:, 0]
    div = np.take(lay.divisor, spos, out=w.div[:c], mode="clip")
    values = np.empty(c, dtype=np.float32)
    np.divide(mant, div, out=div)
    np.negative(div, out=div, where=neg)
    nullflag = np.equal(first, _N, out=w.isnull[:c])
    nulls = np.flatnonzero(nullflag) if nullflag.any() else None
    if nulls is not None:
        div[nulls] = np.nan
    np.copyto(values, div, casting="same_kind")

    # Checks over the whole batch: each number's digits, dot and sign must account for all of
    # its bytes, so the totals agree only if every number does. Per number only on failure.
    ndots = int(np.count_nonzero(isdot))
    nnull = 0
    if nulls is not None:
        spelled = (mat[nulls, width - 4 :] == _NULL).all(axis=1) & (lens[nulls] == 4)
        nnull = int(np.count_nonzero(spelled))
    good = (
        int(np.count_nonzero(isdig)) + ndots + int(np.count_nonzero(neg)) + 4 * nnull == n - c + 1
        and ndots == int(np.count_nonzero(spos))
        and int(spos.max()) < width
        and (width == 8 or int(_row_byte_sums(isdig_l).max()) <= _MAX_DIGITS)
    )
    if not good:
        ndig = _row_byte_sums(isdig_l)
        ndot = _row_byte_sums(isdot_l)
        ok = lens <= width
        ok &= ndig + ndot + neg == lens
        ok &= ndig <= _MAX_DIGITS
        ok &= spos < width
        ok &= ndot <= 1
        if nulls is not None:
            ok[nulls] = spelled
        with np.errstate(over="ignore"):  # beyond float32: inf, as the store would hold it
            for i in np.flatnonzero(~ok).tolist():
                values[i] = _parse_one(text[int(starts[i]) - _PAD : int(ends[i]) - _PAD])
    return values, ends - _PAD


def _row_byte_sums(lanes: np.ndarray) -> np.ndarray:
    """Per row, the sum of the bytes of (T, 1|2) uint64 lanes (sums below 256), as int64."""
    s = lanes * _U(0x0101010101010101)
    s >>= _U(56)
    total = s[:, 0] + s[:, 1] if s.shape[1] == 2 else s[:, 0]
    return total.view(np.int64)


def _parse_group(data: memoryview, spans: list[tuple[int, int]], out: list[np.ndarray]) -> None:
    texts: list[bytes | memoryview] = [data[i:j] for i, j in spans]
    text = b",".join(texts)
    if any(c in text for c in _WS):  # spacing inside arrays: not written by Go or by us
        texts = [bytes(t).translate(None, _WS) for t in texts]
        if not all(texts):
            raise ValueError("invalid JSON checkpoint: empty value in a data array")
        text = b",".join(texts)
    values, ends = _parse_batch(text)
    # each array's last number ends where that array's text ends in the joined text
    last = np.cumsum([len(t) + 1 for t in texts]) - 1
    bounds = np.searchsorted(ends, last) + 1
    if bounds[-1] > len(ends) or not np.array_equal(ends[bounds - 1], last):
        raise ValueError("invalid JSON checkpoint: malformed data array")
    prev = 0
    for k in bounds.tolist():
        out.append(values[prev:k])
        prev = k


def parse_arrays(data: bytes, spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """`data[i:j]` for each span is the text between the brackets of a JSON number array →
    float32 arrays (null → NaN), each value what a correct JSON parser gives, cast to float32."""
    view = memoryview(data)
    parsed: list[np.ndarray] = []
    group: list[tuple[int, int]] = []
    size = 0
    for i, j in spans:
        if j == i:
            continue
        if size and size + j - i > _BATCH:
            _parse_group(view, group, parsed)
            group, size = [], 0
        group.append((i, j))
        size += j - i + 1
    if group:
        _parse_group(view, group, parsed)
    it = iter(parsed)
    empty = np.empty(0, dtype=np.float32)
    return [next(it) if j > i else empty for i, j in spans]


def _cut_arrays(data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """The text with each `"data":[...]` array replaced by its index, and where the arrays are.

    Searches for `]` (memchr-fast) and checks backwards for `"data":[`, instead of searching
    the longer pattern; any other bracket is left to the JSON parser.
    """
    pieces: list[bytes] = []
    spans: list[tuple[int, int]] = []
    find, rfind = data.find, data.rfind
    pos = prev = 0
    while True:
        j = find(b"]", pos)
        if j < 0:
            break
        i = rfind(b"[", pos, j)
        if i >= 7 and data[i - 7 : i + 1] == b'"data":[':
            pieces.append(data[prev:i])
            pieces.append(b"%d" % len(spans))
            spans.append((i + 1, j))
            prev = j + 1
        pos = j + 1
    pieces.append(data[prev:])
    return b"".join(pieces), spans


def _int_field(obj: dict, key: str, where: str) -> int:
    v = obj.get(key, 0)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise ValueError(f"invalid JSON checkpoint: {where}: {key!r} must be an integer")
    return v


class _Builder:
    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = arrays
        self.used = [False] * len(arrays)

    def series(self, obj: Any, where: str) -> SeriesSnapshot:
        if not isinstance(obj, dict):
            raise ValueError(f"invalid JSON checkpoint: {where} is not an object")
        freq = _int_field(obj, "frequency", where)
        start = _int_field(obj, "start", where)
        raw = obj.get("data")
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(self.arrays):
            if self.used[raw]:
                raise ValueError(f"invalid JSON checkpoint: {where}: 'data' must be an array")
            self.used[raw] = True
            data = self.arrays[raw]
        elif raw is None:
            data = np.empty(0, dtype=np.float32)
        elif isinstance(raw, list):  # an array the fast path did not cut out (other spacing)
            if not all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in raw):
                raise ValueError(f"invalid JSON checkpoint: {where}: 'data' holds a non-number")
            with np.errstate(over="ignore"):
                data = np.array([np.nan if v is None else v for v in raw], dtype=np.float64)
                data = data.astype(np.float32)
        else:
            raise ValueError(f"invalid JSON checkpoint: {where}: 'data' must be an array")
        if freq <= 0 and len(data):
            raise ValueError(f"invalid JSON checkpoint: {where}: frequency must be positive")
        return SeriesSnapshot(frequency=freq, start=start, data=data)

    def level(self, obj: Any, where: str, depth: int = 0) -> Snapshot:
        if not isinstance(obj, dict):
            raise ValueError(f"invalid JSON checkpoint: {where or 'root'} is not an object")
        if depth > 64:
            raise ValueError("invalid JSON checkpoint: levels nested too deeply")
        metrics = obj.get("metrics")
        children = obj.get("children")
        metrics = {} if metrics is None else metrics
        children = {} if children is None else children
        if not isinstance(metrics, dict) or not isinstance(children, dict):
            raise ValueError(f"invalid JSON checkpoint: {where or 'root'}: metrics/children must be objects")
        snap = Snapshot(
            from_=_int_field(obj, "from", where or "root"),
            to=_int_field(obj, "to", where or "root"),
        )
        for name, m in metrics.items():
            snap.metrics[name] = self.series(m, f"{where}/{name}" if where else name)
        for name, c in children.items():
            snap.children[name] = self.level(c, f"{where}/{name}" if where else name, depth + 1)
        return snap


def decode_json(data: bytes) -> Snapshot:
    """Parse a checkpoint file (ours or upstream's); values become float32 arrays.

    ValueError for anything that is not a checkpoint (bad JSON, truncated file, wrong types).
    """
    data = bytes(data)
    skeleton, spans = _cut_arrays(data)
    try:
        obj = orjson.loads(skeleton)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"invalid JSON checkpoint: {e}") from None
    builder = _Builder(parse_arrays(data, spans))
    snap = builder.level(obj, "")
    if not all(builder.used):
        raise ValueError("invalid JSON checkpoint: a data array outside a metric entry")
    return snap
