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

    xs = np.arange(n, dtype=np.float64)
    lows, mids = low.tolist(), mid.tolist()
    ax_l, ay_l = avg_x.tolist(), avg_y.tolist()
    prev = 0
    with np.errstate(invalid="ignore"):
        for i in range(nb):
            lo, hi = lows[i], mids[i]
            best = 0
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
            out[i + 1] = d[best]
            prev = best
    out[m - 1] = d[n - 1]
    return out, r
