"""Largest-Triangle-Three-Buckets downsampling, point for point as cc-lib's resampler (spec §5.4).

Plots of long jobs must show the same points as with the Go stack, so the NaN quirks and the
order of the checks are kept. Bucket averages are computed for all buckets at once with numpy
(sequential summation, as Go does, for identical rounding); the point choice per bucket depends
on the previous choice and stays a loop over buckets.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["lttb"]


def _bucket_averages(data: np.ndarray, mid: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean index and mean value of data[mid..high] per bucket (NaN for NaN inputs or empty ranges)."""
    lengths = np.maximum(high + 1 - mid, 0)
    k = len(mid)
    sums = np.zeros(k, dtype=np.float64)
    maxlen = int(lengths.max()) if k else 0
    for t in range(maxlen):  # sequential per-bucket sum, vectorised across buckets
        sel = lengths > t
        sums[sel] += data[mid[sel] + t]
    lf = lengths.astype(np.float64)
    # sum of consecutive integers is exact in float64, like Go's running sum of float64(x)
    sumx = lf * mid + lf * (lf - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return sumx / lf, sums / lf


# Buckets up to this many candidates use the all-predecessors table; larger ones the plain loop.
_TABLE_MAX_BUCKET = 32
_TABLE_BLOCK_ELEMS = 1 << 18


def _choose_by_loop(
    d: np.ndarray, low: np.ndarray, mid: np.ndarray, avg_x: np.ndarray, avg_y: np.ndarray
) -> np.ndarray:
    """Pick one point per bucket, bucket after bucket (each choice is the next triangle's corner)."""
    nb = len(low)
    xs = np.arange(len(d), dtype=np.float64)
    lows, mids = low.tolist(), mid.tolist()
    ax_l, ay_l = avg_x.tolist(), avg_y.tolist()
    chosen = np.zeros(nb, dtype=np.int64)
    prev = 0
    with np.errstate(invalid="ignore"):
        for i in range(nb):
            lo, hi = lows[i], mids[i]
            best = 0  # an empty bucket leaves best = 0, as upstream
            if hi > lo:
                pa_x, pa_y = float(prev), d[prev]
                pb_x, pb_y = ax_l[i], ay_l[i]
                # same operation order as cc-lib's calculateTriangleArea
                area = np.abs(((pa_x - xs[lo:hi]) * (pb_y - pa_y) - (pa_x - pb_x) * (d[lo:hi] - pa_y)) * 0.5)
                nan = np.isnan(area)
                if nan.any():
                    best = lo + int(np.flatnonzero(nan)[-1])  # a NaN area always replaces the best
                else:
                    best = lo + int(np.argmax(area))  # first maximum wins (strict >)
            chosen[i] = best
            prev = best
    return chosen


def _choose_by_table(
    d: np.ndarray, low: np.ndarray, lengths: np.ndarray, lmax: int, avg_x: np.ndarray, avg_y: np.ndarray
) -> np.ndarray:
    """Same choice as the loop, but vectorised: for every bucket, precompute the winner for each
    possible predecessor (a point of the previous bucket), then follow the chain in one cheap pass."""
    nb = len(low)
    q = np.arange(lmax, dtype=np.int64)
    table = np.empty((nb, lmax), dtype=np.int64)
    block = max(1, _TABLE_BLOCK_ELEMS // (lmax * lmax))
    with np.errstate(invalid="ignore"):
        for b0 in range(0, nb, block):
            b1 = min(nb, b0 + block)
            lo = low[b0:b1]
            ln = lengths[b0:b1]
            valid = q[None, :] < ln[:, None]
            cand = np.where(valid, lo[:, None] + q[None, :], lo[:, None])  # (B, Q)
            if b0 == 0:
                prev_lo = np.concatenate(([0], low[: b1 - 1]))
                prev_ln = np.concatenate(([1], lengths[: b1 - 1]))
            else:
                prev_lo, prev_ln = low[b0 - 1 : b1 - 1], lengths[b0 - 1 : b1 - 1]
            prev = np.where(q[None, :] < prev_ln[:, None], prev_lo[:, None] + q[None, :], prev_lo[:, None])
            pa_x = prev.astype(np.float64)[:, :, None]
            pa_y = d[prev][:, :, None]
            pb_x = avg_x[b0:b1, None, None]
            pb_y = avg_y[b0:b1, None, None]
            pc_x = cand.astype(np.float64)[:, None, :]
            pc_y = d[cand][:, None, :]
            # same operation order as cc-lib's calculateTriangleArea, computed in place
            area = np.subtract(pa_x, pc_x)
            area *= pb_y - pa_y
            rhs = np.subtract(pc_y, pa_y)
            rhs *= pa_x - pb_x
            area -= rhs
            area *= 0.5
            np.abs(area, out=area)
            np.copyto(area, -np.inf, where=~valid[:, None, :])
            nan = np.isnan(area)
            if nan.any():
                last_nan = lmax - 1 - np.argmax(nan[:, :, ::-1], axis=2)
                np.copyto(area, -np.inf, where=nan)
                table[b0:b1] = np.where(nan.any(axis=2), last_nan, np.argmax(area, axis=2))
            else:
                table[b0:b1] = np.argmax(area, axis=2)
    flat = table.ravel().tolist()
    chosen_local = [0] * nb
    p = 0  # bucket 0's predecessor is data[0], stored as row 0
    for i in range(nb):
        p = flat[i * lmax + p]
        chosen_local[i] = p
    return low + np.asarray(chosen_local, dtype=np.int64)


def lttb(data: np.ndarray, frequency: int, resolution: int, min_points: int = 1000) -> tuple[np.ndarray, int]:
    """Downsample `data` sampled every `frequency` s to `resolution` s; returns (data, frequency used)."""
    f, r = int(frequency), int(resolution)
    if f == 0 or r == 0 or r <= f:
        return data, f
    if r % f != 0:
        raise ValueError(f"new sampling frequency ({r}) must be a multiple of old frequency ({f})")
    n = len(data)
    step = r // f
    m = n // step if step > 0 else 0
    if m <= 0 or n < min_points or m >= n:
        return data, f

    d = np.asarray(data, dtype=np.float64)
    out = np.empty(max(m, 2), dtype=np.float64)
    out[0] = d[0]
    if m <= 2:
        out[1] = d[n - 1]
        return out[:2], r

    nb = m - 2
    bucket = (n - 2) / (m - 2)
    high = np.floor(np.arange(2, nb + 2, dtype=np.float64) * bucket).astype(np.int64) + 1
    np.minimum(high, n - 2, out=high)
    mid = np.empty(nb, dtype=np.int64)
    mid[0] = int(math.floor(bucket)) + 1
    mid[1:] = high[:-1]
    low = np.empty(nb, dtype=np.int64)
    low[0] = 1
    low[1:] = mid[:-1]
    avg_x, avg_y = _bucket_averages(d, mid, high)

    lengths = mid - low
    lmax = int(lengths.max())
    if int(lengths.min()) > 0 and lmax <= _TABLE_MAX_BUCKET:
        best = _choose_by_table(d, low, lengths, lmax, avg_x, avg_y)
    else:
        best = _choose_by_loop(d, low, mid, avg_x, avg_y)
    out[1 : m - 1] = d[best]
    out[m - 1] = d[n - 1]
    return out, r
