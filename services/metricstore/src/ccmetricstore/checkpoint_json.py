"""JSON checkpoint files (`<from>.json`, spec §12.3): upstream's layout, read fast.

Writing: every level carries `metrics`, `children`, `from`, `to` (names sorted, as Go's encoder
sorts map keys); a metric is `{"frequency","start","data"}`; NaN and ±Inf are `null` (JSON has
no infinity). Values keep full float32 precision (decision: not upstream's one decimal): each
array gets the fewest decimals with which all its values read back as the same float32, and its
numbers are right-aligned in columns of 7, 11 or 15 characters (`[ 52.586,  9.000,   null]`).
Any JSON reader, upstream's included, reads that as the same numbers; arrays that need an
exponent are written compact by orjson instead.

Reading accepts any JSON number and `null`. Restore speed is bounded by this decoder, so values
never become Python objects: the `"data":[...]` arrays are cut out of the text, the small rest
goes through orjson, and the numbers are parsed with numpy in batches: fixed-width columns as
rows of 8 or 16 bytes, anything else (upstream's files) by locating each number and reading it
right-aligned in an 8- or 16-byte window. Digits become integers by SWAR multiply-shift steps on
uint64 lanes; the value is M / 10**F, one correctly rounded division while M < 2**53. Numbers
outside that (exponents, more than 15 digits, odd spellings) go one by one through orjson, so
every input gives what a correct JSON parser gives, cast to float32.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

try:  # C parser of the number arrays (libs/cccommon/setup.py); the numpy parser below is the fallback
    from cccommon._lpscan import parse_fixed_arrays as _parse_fixed_c
    from cccommon._lpscan import parse_number_arrays as _parse_c
except ImportError:  # pragma: no cover
    _parse_c = None
    _parse_fixed_c = None
import orjson

from .snapshot import SeriesSnapshot, Snapshot

__all__ = ["encode_json", "decode_json"]

# ----------------------------------------------------------------------------- encoding
#
# Each data array is written as a column of fixed width: every number has the same count of
# decimals (the fewest with which all of the array's float32 values read back exactly) and is
# right-aligned with leading spaces in 7, 11 or 15 characters:
#
#     "data":[ 52.586, 56.063,  9.000,   null]
#
# That is plain JSON (upstream's reader skips the spaces), and it lets the reader here parse whole
# arrays as fixed-width rows without looking for the numbers first. Arrays that cannot be written
# so (values below about 1e-13 or above 1e14, which need an exponent) are written compact by orjson.

_U = np.uint64
_MAX_FIXED_DIGITS = 14  # with the dot and a sign, 15 characters; mantissas stay below 2**53
_P10_INT = np.array([10**k for k in range(19)], dtype=np.int64)
_P10_FLOAT = np.array([10.0**k for k in range(19)], dtype=np.float64)
_ASCII_ZEROS = _U(0x3030303030303030)
_RENDER_BLOCK = 1 << 16


def _lane_masks(rows: np.ndarray, lanes: int, value: int = 0xFF) -> np.ndarray:
    """(k, 8*lanes) bool → (k, lanes) uint64 with byte `value` where true."""
    return np.where(rows, value, 0).astype(np.uint8).view("<u8").reshape(len(rows), lanes)


class _Render:
    """Lane constants for writing rows 8 or 16 bytes wide (the last byte is the comma)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.lanes = lanes = width // 8
        cols = np.arange(width)
        at = np.arange(width)[:, None]  # by dot column
        self.lt = _lane_masks(cols < at, lanes)
        self.gt = _lane_masks((cols > at) & (cols < width - 1), lanes)
        # after '0' | every byte: '0' → '.' in the dot column and '0' → ',' in the last one
        comma = _lane_masks((cols == width - 1)[None, :], lanes, 0x30 ^ ord(","))[0]
        self.fix = _lane_masks(cols == at, lanes, 0x30 ^ ord(".")) | comma
        self.fix_nodot = comma
        # by first column of the number (+ width + 1 when negative): the leading '0's become
        # spaces ('0' ^ 0x10), and the column before the number '-' ('0' ^ 0x1D)
        first = np.arange(width + 1)[:, None]
        blank = _lane_masks(cols < first, lanes, 0x10)
        minus = _lane_masks(cols == first - 1, lanes, 0x10 ^ 0x1D)
        self.lead = np.concatenate([blank, blank ^ minus])
        self.null = np.frombuffer(b" " * (width - 5) + b"null,", dtype="<u8").copy()


_RENDER = {8: _Render(8), 16: _Render(16)}


def _digits8(n: np.ndarray) -> np.ndarray:
    """Numbers below 1e8 → uint64 lanes holding their 8 decimal digits (most significant first)."""
    hi = n // _U(10000)
    x = (n - hi * _U(10000)) << _U(32)
    x |= hi
    q = x * _U(5243)  # v // 100 for both 32-bit halves (v < 10000)
    q >>= _U(19)
    q &= _U(0x0000007F0000007F)
    x -= q * _U(100)
    x <<= _U(16)
    x |= q
    q = x * _U(103)  # v // 10 for all four 16-bit quarters (v < 100)
    q >>= _U(10)
    q &= _U(0x000F000F000F000F)
    x -= q * _U(10)
    x <<= _U(8)
    x |= q
    return x


def _shift_down(x: np.ndarray) -> np.ndarray:
    """Move every byte of (n, lanes) uint64 rows one column to the left (lower address)."""
    out = x >> _U(8)
    if x.shape[1] == 2:
        out[:, 0] |= x[:, 1] << _U(56)
    return out


if hasattr(np, "bitwise_count"):

    def _lowest_byte(x: np.ndarray) -> np.ndarray:
        """Column (0..7) of the lowest non-zero byte of each uint64; 8 for 0."""
        low = x & (_U(0) - x)
        low -= _U(1)
        return np.bitwise_count(low).astype(np.int64) >> 3

else:  # numpy < 2.0

    def _lowest_byte(x: np.ndarray) -> np.ndarray:
        low = (x & (_U(0) - x)).astype(np.float64)
        exp = np.frexp(low)[1].astype(np.int64) - 1
        return np.where(low > 0, exp >> 3, 8)


def _render_rows(mant: np.ndarray, decimals: int, neg: np.ndarray, width: int) -> np.ndarray:
    """(n, lanes) uint64 rows of `width` (8 or 16) bytes: mant / 10**decimals right-aligned,
    then a comma."""
    r = _RENDER[width]
    m = mant.astype(np.uint64)
    if r.lanes == 1:
        x = _digits8(m)[:, None]
    else:
        hi = m // _U(100_000_000)
        x = np.empty((len(m), 2), dtype=np.uint64)
        x[:, 0] = _digits8(hi)
        x[:, 1] = _digits8(m - hi * _U(100_000_000))
    x = _shift_down(x)  # the last digit just before the comma column
    end = width - 1  # column after the integer digits
    fix = r.fix_nodot
    if decimals:
        end = width - 2 - decimals  # the dot column; the integer digits move one column left
        x = (_shift_down(x) & r.lt[end]) | (x & r.gt[end])
        fix = r.fix[end]
    if r.lanes == 1:
        first = _lowest_byte(x[:, 0])
    else:
        first = np.where(x[:, 0] != 0, _lowest_byte(x[:, 0]), _lowest_byte(x[:, 1]) + 8)
    np.minimum(first, end - 1, out=first)  # keep one digit before the dot ("0.5")
    x |= _ASCII_ZEROS
    x ^= fix
    first += neg * (width + 1)
    x ^= r.lead[first]
    return x


def _plan(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per array the decimals and row width (8, 12, 16; 0 = write compact), per value the
    mantissa (value * 10**decimals as an integer)."""
    k = len(counts)
    ends = np.cumsum(counts)
    starts = ends - counts
    nonempty = np.flatnonzero(counts)
    finite = np.isfinite(values)
    a32 = np.abs(values)
    a = a32.astype(np.float64)
    # guess each array's decimals from its first values: the fewest that read back exactly
    sample = np.minimum(starts[nonempty, None] + np.arange(8), ends[nonempty, None] - 1).ravel()
    need = np.zeros(len(sample), dtype=np.int64)
    todo = sample[finite[sample]]
    todo_pos = np.flatnonzero(finite[sample])
    for dec in range(_MAX_FIXED_DIGITS):
        if not len(todo):
            break
        scaled = np.rint(a[todo] * _P10_FLOAT[dec])
        ok = (scaled / _P10_FLOAT[dec]).astype(np.float32) == a32[todo]
        need[todo_pos[ok]] = dec
        todo, todo_pos = todo[~ok], todo_pos[~ok]
    need[todo_pos] = _MAX_FIXED_DIGITS
    decimals = np.zeros(k, dtype=np.int64)
    decimals[nonempty] = need.reshape(-1, 8).max(axis=1)
    negzero = (values == 0) & np.signbit(values)
    if negzero.any():  # "-0" is the integer 0 to many JSON readers; "-0.0" keeps the sign
        has = np.logical_or.reduceat(negzero, starts[nonempty])
        decimals[nonempty[has]] = np.maximum(decimals[nonempty[has]], 1)
    # then check every value; arrays with a value that does not read back get more decimals
    with np.errstate(invalid="ignore"):
        scale = np.repeat(_P10_FLOAT[decimals], counts)
        mant = np.rint(a * scale)
        ok = mant < _P10_FLOAT[_MAX_FIXED_DIGITS]
        ok &= (mant / scale).astype(np.float32) == a32
    ok |= ~finite
    while not ok.all():
        owner = np.repeat(np.arange(k), counts)
        retry = np.unique(owner[~ok])
        decimals[retry] += 1
        retry = retry[decimals[retry] < _MAX_FIXED_DIGITS]
        check = np.flatnonzero(np.isin(owner, retry) & finite)
        scale = _P10_FLOAT[decimals[owner[check]]]
        mant[check] = np.rint(a[check] * scale)
        ok[:] = True
        ok[check] = mant[check] < _P10_FLOAT[_MAX_FIXED_DIGITS]
        ok[check] &= (mant[check] / scale).astype(np.float32) == a32[check]
    mant[~finite] = 0
    compact = decimals >= _MAX_FIXED_DIGITS
    # widest number per array: sign, integer digits, dot and decimals; "null" is 4
    width = np.zeros(k, dtype=np.int64)
    if len(nonempty):
        top = np.maximum.reduceat(mant, starts[nonempty])
        anyneg = np.logical_or.reduceat(np.signbit(values) & finite, starts[nonempty])
        anynull = np.logical_and.reduceat(finite, starts[nonempty]) == 0
        for j, i in enumerate(nonempty.tolist()):
            if compact[i]:
                continue
            dec = int(decimals[i])
            chars = len(str(int(top[j]) // 10**dec)) + int(anyneg[j]) + (dec + 1 if dec else 0)
            if anynull[j]:
                chars = max(chars, 4)
            width[i] = 8 if chars < 8 else 12 if chars < 12 else 16 if chars < 16 else 0
    return decimals, width, mant


def _array_texts(arrays: list[np.ndarray]) -> list[bytes]:
    """The text between the brackets of each data array."""
    counts = np.array([len(a) for a in arrays], dtype=np.int64)
    values = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.float32)
    decimals, width, mant = _plan(values, counts)
    offsets = np.cumsum(counts) - counts
    texts: list[bytes] = [b""] * len(arrays)
    groups: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(counts).tolist():
        if width[i] == 0:
            texts[i] = orjson.dumps(arrays[i], option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
        else:
            groups.setdefault((int(width[i]), int(decimals[i])), []).append(i)
    for (w, dec), members in groups.items():
        if len(members) == len(arrays):
            sel = slice(None)
        else:
            sel = np.concatenate([np.arange(offsets[i], offsets[i] + counts[i]) for i in members])
        v = values[sel]
        finite = np.isfinite(v)
        rw = 8 if w == 8 else 16
        m, neg = mant[sel], np.signbit(v) & finite
        rows = np.empty((len(v), rw // 8), dtype=np.uint64)
        for i in range(0, len(v), _RENDER_BLOCK):  # blocks: temporaries stay in cache
            j = i + _RENDER_BLOCK
            rows[i:j] = _render_rows(m[i:j], dec, neg[i:j], rw)
        nulls = np.flatnonzero(~finite)
        if len(nulls):
            rows[nulls] = _RENDER[rw].null
        blob = rows.view(np.uint8).reshape(len(v), rw)
        blob = (blob[:, rw - w :] if w != rw else blob).tobytes()
        pos = 0
        for i in members:
            end = pos + int(counts[i]) * w
            texts[i] = blob[pos : end - 1]
            pos = end
    return texts


def _collect(snap: Snapshot, out: list[np.ndarray]) -> None:
    for name in sorted(snap.metrics):
        out.append(np.ascontiguousarray(snap.metrics[name].data, dtype=np.float32))
    for name in sorted(snap.children):
        _collect(snap.children[name], out)


def _write_level(snap: Snapshot, texts: list[bytes], pos: int, tail: bytes, out: list[bytes]) -> int:
    dumps = orjson.dumps
    out.append(b'{"metrics":{')
    for k, name in enumerate(sorted(snap.metrics)):
        s = snap.metrics[name]
        out.append(
            b'%s%s:{"frequency":%d,"start":%d,"data":['
            % (b"," if k else b"", dumps(name), s.frequency, s.start)
        )
        out.append(texts[pos])
        out.append(b"]}")
        pos += 1
    out.append(b'},"children":{')
    for k, name in enumerate(sorted(snap.children)):
        out.append(b"%s%s:" % (b"," if k else b"", dumps(name)))
        pos = _write_level(snap.children[name], texts, pos, tail, out)
    out.append(tail)
    return pos


def encode_json(snap: Snapshot) -> bytes:
    """The checkpoint file's bytes (one line, newline-terminated like Go's json.Encoder)."""
    arrays: list[np.ndarray] = []
    _collect(snap, arrays)
    texts = _array_texts(arrays)
    out: list[bytes] = []
    _write_level(snap, texts, 0, b'},"from":%d,"to":%d}' % (int(snap.from_), int(snap.to)), out)
    out.append(b"\n")
    return b"".join(out)


# ----------------------------------------------------------------------------- decoding
#
# Numbers are parsed in batches of about _BATCH bytes of array text. In a batch every number is
# right-aligned in a window of 8 (or 16) bytes ending at its comma; with the window as uint64
# lanes, masks drop the bytes of earlier numbers, the integer digits move one byte right over the
# dot, and a SWAR multiply-shift sequence turns the digits into the integer mantissa M. The value
# is M / 10**F, one correctly rounded division as long as M < 2**53 (at most 15 digits). All
# temporaries live in per-thread scratch arrays so no large array is allocated per batch.

_COMMA, _DOT, _MINUS, _ZERO, _N, _L = 44, 46, 45, 48, 110, 108
_PAD = 16  # commas in front of the text, so every window starts inside the buffer
_BATCH = 1 << 19
_MAX_DIGITS = 15
_WS = b" \t\r\n"
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

    def shifted_at(self, col: int) -> np.ndarray:
        """Lane mask of the columns up to a dot at `col` (where shifted integer digits go)."""
        return self.shifted[col + 1 : col + 2].view("<u8")

    def kept_at(self, col: int) -> np.ndarray:
        """Lane mask of the columns after a dot at `col` (the fraction digits)."""
        return self.kept[col + 1 : col + 2].view("<u8")


_LAYOUTS = {8: _Layout(8), 16: _Layout(16)}


class _Scratch:
    """Work arrays of one decoder, grown to the largest batch seen and reused between batches
    (fresh multi-megabyte temporaries cost more in page faults than the arithmetic on them)."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: int | tuple[int, ...], dtype: type | str) -> np.ndarray:
        n = int(np.prod(shape))
        a = self.arrays.get(name)
        if a is None or a.size < n:
            a = self.arrays[name] = np.empty(n, dtype=dtype)
        return a[:n].reshape(shape)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


_pool: list[_Scratch] = []
_pool_lock = threading.Lock()


class _scratch:
    """`with _scratch() as w:` borrows work arrays from the pool (one per concurrent decoder)."""

    def __enter__(self) -> _Scratch:
        with _pool_lock:
            self.w = _pool.pop() if _pool else _Scratch()
        return self.w

    def __exit__(self, *exc: object) -> None:
        with _pool_lock:
            _pool.append(self.w)


def release_buffers() -> int:
    """Drop the pooled work arrays (after a restore); returns the bytes released."""
    with _pool_lock:
        n = sum(w.nbytes() for w in _pool)
        _pool.clear()
    return n


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


def _parse_batch(w: _Scratch, text: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Comma-separated numbers/nulls → (float32 values, offset in `text` where each one ends)."""
    n = len(text)
    nbuf = _PAD + n + 1
    buf = w.get("buf", nbuf, np.uint8)
    buf[_PAD : _PAD + n] = np.frombuffer(text, dtype=np.uint8)
    buf[:_PAD] = _COMMA
    buf[-1] = _COMMA
    commas = np.flatnonzero(np.equal(buf, _COMMA, out=w.get("flag", nbuf, bool)))
    ncommas = len(commas)
    c = ncommas - _PAD  # numbers in the batch
    ends = commas[_PAD:]
    starts = np.add(commas[_PAD - 1 : -1], 1, out=w.get("starts", c, np.intp))
    lens = np.subtract(ends, starts, out=w.get("lens", c, np.intp))
    if c == 0 or lens.min() <= 0:
        raise ValueError("invalid JSON checkpoint: empty value in a data array")
    lay = _LAYOUTS[8 if lens.max() <= 8 else 16]
    width, lanes = lay.width, lay.lanes
    vtype = f"V{width}"

    windows = np.ndarray((nbuf - width + 1,), dtype=vtype, buffer=buf, strides=(1,))
    idx = np.subtract(ends, width, out=w.get("idx", c, np.intp))
    mat = w.get("mat", (c, width), np.uint8)
    np.take(windows, idx, out=mat.view(vtype).reshape(c), mode="clip")
    first = np.take(buf, starts, out=w.get("first", c, np.uint8), mode="clip")
    neg = np.equal(first, _MINUS, out=w.get("neg", c, bool))
    np.minimum(lens, width, out=idx)
    inside = w.get("mask", (c, width), np.uint8)
    np.take(lay.inside, idx, out=inside.view(vtype).reshape(c), mode="clip")
    inside_l = inside.view("<u8")

    dig = np.subtract(mat, _ZERO, out=w.get("dig", (c, width), np.uint8))
    isdig = np.less(dig, 10, out=w.get("isdig", (c, width), bool))
    np.multiply(dig, isdig.view(np.uint8), out=dig)
    dig_l = dig.view("<u8")
    dig_l &= inside_l
    isdig_l = isdig.view("<u8")
    isdig_l &= inside_l
    isdot = np.equal(mat, _DOT, out=w.get("isdot", (c, width), bool))
    isdot_l = isdot.view("<u8")
    isdot_l &= inside_l

    # column + 1 of each number's dot (0 without one)
    lane = w.get("lane", (c, lanes), np.uint64)
    np.multiply(isdot_l, lay.dot_weights, out=lane)
    lane >>= _U(56)
    spos = w.get("spos", c, np.intp)
    if lanes == 2:
        np.add(lane[:, 0], lane[:, 1], out=spos, casting="unsafe")
    else:
        np.copyto(spos, lane[:, 0], casting="unsafe")

    # integer digits one byte to the right, over the dot
    shifted = np.left_shift(dig_l, _U(8), out=w.get("lane2", (c, lanes), np.uint64))
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
        mant = np.multiply(dig_l[:, 0], _U(100_000_000), out=w.get("mant", c, np.uint64))
        mant += dig_l[:, 1]
    else:
        mant = dig_l[:, 0]
    div = np.take(lay.divisor, spos, out=w.get("div", c, np.float64), mode="clip")
    values = np.empty(c, dtype=np.float32)
    np.divide(mant, div, out=div)
    np.negative(div, out=div, where=neg)
    nullflag = np.equal(first, _N, out=w.get("isnull", c, bool))
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


def _parse_fixed(w: _Scratch, text: bytes, width: int, decimals: int) -> np.ndarray | None:
    """Rows of `width` bytes (numbers right-aligned before a comma, `decimals` digits after the
    dot in every number) → float32 values; None if the text is not laid out so."""
    n = len(text) + 1
    rows = n // width
    rw = 8 if width <= 8 else 16
    lay = _LAYOUTS[rw]
    mat = w.get("buf", (rows, rw), np.uint8)
    if rw == width:
        mat.reshape(-1)[: n - 1] = np.frombuffer(text, dtype=np.uint8)
    else:
        mat[:, : rw - width] = 32
        mat[:-1, rw - width :] = np.frombuffer(text, dtype=np.uint8, count=(rows - 1) * width).reshape(
            -1, width
        )
        mat[-1, rw - width : -1] = np.frombuffer(text, dtype=np.uint8, offset=(rows - 1) * width)
    mat[-1, -1] = _COMMA
    # every byte must be a space, digit, dot, minus, comma or part of a null; commas and dots
    # only in their columns
    dot_col = rw - 2 - decimals
    isdig = np.less(
        np.subtract(mat, _ZERO, out=w.get("dig", (rows, rw), np.uint8)),
        10,
        out=w.get("isdig", (rows, rw), bool),
    )
    isneg = np.equal(mat, _MINUS, out=w.get("isdot", (rows, rw), bool))
    nneg = int(np.count_nonzero(isneg))
    neg = None
    if nneg:
        neg = np.not_equal(isneg.view("<u8")[:, 0] if rw == 8 else isneg.view("<u8").sum(axis=1), 0)
    nulls = np.flatnonzero(mat[:, rw - 2] == _L)
    ndots = int(np.count_nonzero(mat == _DOT))
    if (
        int(np.count_nonzero(mat[:, rw - 1] == _COMMA)) != rows
        or int(np.count_nonzero(mat == _COMMA)) != rows
        or ndots != (int(np.count_nonzero(mat[:, dot_col] == _DOT)) if decimals else 0)
        or (decimals and ndots != rows - len(nulls))
        or int(np.count_nonzero(isdig))
        + ndots
        + nneg
        + rows
        + 4 * len(nulls)
        + int(np.count_nonzero(mat == 32))
        != rows * rw
    ):
        return None
    if len(nulls) and not (mat[nulls, rw - 5 : rw - 1] == _NULL).all():
        return None
    dig = w.get("dig", (rows, rw), np.uint8)
    np.multiply(dig, isdig.view(np.uint8), out=dig)
    x = dig.view("<u8")
    if decimals:  # integer digits one column right, over the dot
        shifted = np.left_shift(x, _U(8), out=w.get("lane2", (rows, lay.lanes), np.uint64))
        if lay.lanes == 2:
            shifted[:, 1] |= x[:, 0] >> _U(56)
        shifted &= lay.shifted_at(dot_col)
        x &= lay.kept_at(dot_col)
        x |= shifted
    mant = _swar_digits(x, w.get("mant", rows, np.uint64))
    if int(mant.max()) >= 1 << 53:  # a 15-digit integer: not exact this way
        return None
    values = np.divide(
        mant, _P10_FLOAT[decimals + 1], out=w.get("div", rows, np.float64)
    )  # the comma counted as a 0
    if neg is not None:
        np.negative(values, out=values, where=neg)
    if len(nulls):
        values[nulls] = np.nan
    return values.astype(np.float32)


def _swar_digits(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """(n, 1|2) uint64 lanes of digit values (most significant first) → the integers, in place."""
    x *= _U(2561)  # 10 * 2**8 + 1: neighbouring digits to pairs
    x >>= _U(8)
    x &= _U(0x00FF00FF00FF00FF)
    x *= _U(6553601)  # 100 * 2**16 + 1: pairs to groups of four
    x >>= _U(16)
    x &= _U(0x0000FFFF0000FFFF)
    x *= _U(42949672960001)  # 10000 * 2**32 + 1: to eight digits
    x >>= _U(32)
    if x.shape[1] == 2:
        np.multiply(x[:, 0], _U(100_000_000), out=out)
        out += x[:, 1]
        return out
    return x[:, 0]


def _fixed_layout(data: bytes, i: int, j: int) -> tuple[int, int] | None:
    """(row width, decimals) if the array text data[i:j] is a fixed-width column, else None."""
    comma = data.find(b",", i, min(j, i + 16))
    width = (comma - i + 1) if comma >= 0 else (j - i + 1)
    if width < 2 or width > 16 or (j - i + 1) % width or (j - i > width and data[j - width] != _COMMA):
        return None
    dot = data.find(b".", i, j)
    if dot < 0:
        return width, 0
    decimals = width - 2 - (dot - i) % width
    return (width, decimals) if decimals >= 1 else None


def _parse_group(w: _Scratch, texts: list[bytes | memoryview], out: list[np.ndarray]) -> None:
    text = b",".join(texts)
    if any(c in text for c in _WS):  # spacing inside arrays: not written by Go or by us
        texts = [bytes(t).translate(None, _WS) for t in texts]
        if not all(texts):
            raise ValueError("invalid JSON checkpoint: empty value in a data array")
        text = b",".join(texts)
    values, ends = _parse_batch(w, text)
    # each array's last number ends where that array's text ends in the joined text
    last = np.cumsum([len(t) + 1 for t in texts]) - 1
    bounds = np.searchsorted(ends, last) + 1
    if bounds[-1] > len(ends) or not np.array_equal(ends[bounds - 1], last):
        raise ValueError("invalid JSON checkpoint: malformed data array")
    prev = 0
    for k in bounds.tolist():
        out.append(values[prev:k])
        prev = k


def _parse_fixed_group(
    w: _Scratch, texts: list[memoryview], width: int, decimals: int, out: list[np.ndarray]
) -> None:
    values = _parse_fixed(w, b",".join(texts), width, decimals)
    if values is None:  # not what it looked like: the general parser decides
        _parse_group(w, texts, out)
        return
    pos = 0
    for t in texts:
        end = pos + (len(t) + 1) // width
        out.append(values[pos:end])
        pos = end


def _split_values(out: tuple[bytes, bytes]) -> list[np.ndarray]:
    values = np.frombuffer(out[0], dtype=np.float32)
    ends = np.cumsum(np.frombuffer(out[1], dtype=np.int64)).tolist()
    return [values[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def _parse_arrays_c(data: bytes, spans: list[tuple[int, int]]) -> list[np.ndarray] | None:
    """The C parsers: fixed-width columns (our files) by layout group, everything else generally."""
    result: list[np.ndarray | None] = [None] * len(spans)
    groups: dict[tuple[int, int], list[int]] = {}
    for k, (i, j) in enumerate(spans):
        if j == i:
            result[k] = np.empty(0, dtype=np.float32)
        else:
            groups.setdefault(_fixed_layout(data, i, j) or (0, 0), []).append(k)
    for (width, decimals), members in groups.items():
        sp = np.asarray([spans[k] for k in members], dtype=np.int64).tobytes()
        out = _parse_fixed_c(data, sp, width, decimals) if width and decimals <= 14 else None
        if out is None:
            out = _parse_c(data, sp)
            if out is None:
                return None
        for k, arr in zip(members, _split_values(out), strict=True):
            result[k] = arr
    return result  # type: ignore[return-value]


def parse_arrays(data: bytes, spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """`data[i:j]` for each span is the text between the brackets of a JSON number array →
    float32 arrays (null → NaN), each value what a correct JSON parser gives, cast to float32."""
    if _parse_c is not None and spans:
        fast = _parse_arrays_c(data, spans)
        if fast is not None:
            return fast
        # something that is not a number: the Python parser finds and reports it
    view = memoryview(data)
    result: list[np.ndarray | None] = [None] * len(spans)
    groups: dict[tuple[int, int], list[int]] = {}
    for k, (i, j) in enumerate(spans):
        if j == i:
            result[k] = np.empty(0, dtype=np.float32)
        else:
            groups.setdefault(_fixed_layout(data, i, j) or (0, 0), []).append(k)
    with _scratch() as w:
        for (width, decimals), members in groups.items():
            _parse_members(w, view, spans, members, width, decimals, result)
    return result  # type: ignore[return-value]


def _parse_members(
    w: _Scratch,
    view: memoryview,
    spans: list[tuple[int, int]],
    members: list[int],
    width: int,
    decimals: int,
    result: list[np.ndarray | None],
) -> None:
    """Parse the arrays `members` (same layout) in batches of about _BATCH bytes."""
    parsed: list[np.ndarray] = []
    batch: list[memoryview] = []
    size = 0
    for k in members:
        i, j = spans[k]
        if size and size + j - i > _BATCH:
            _flush(w, batch, width, decimals, parsed)
            batch, size = [], 0
        batch.append(view[i:j])
        size += j - i + 1
    if batch:
        _flush(w, batch, width, decimals, parsed)
    for k, arr in zip(members, parsed, strict=True):
        result[k] = arr


def _flush(w: _Scratch, batch: list[memoryview], width: int, decimals: int, out: list[np.ndarray]) -> None:
    if width:
        _parse_fixed_group(w, batch, width, decimals, out)
    else:
        _parse_group(w, batch, out)


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

    def series(self, obj: Any, parent: str, name: str) -> SeriesSnapshot:
        if type(obj) is dict:  # the common case first, without building names for errors
            freq, start, raw = obj.get("frequency"), obj.get("start"), obj.get("data")
            if type(freq) is int and type(start) is int and type(raw) is int and freq > 0:
                if 0 <= raw < len(self.arrays) and not self.used[raw]:
                    self.used[raw] = True
                    return SeriesSnapshot(freq, start, self.arrays[raw])
        return self._series(obj, f"{parent}/{name}" if parent else name)

    def _series(self, obj: Any, where: str) -> SeriesSnapshot:
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
        series = self.series
        for name, m in metrics.items():
            snap.metrics[name] = series(m, where, name)
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
