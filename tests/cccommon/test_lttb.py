"""LTTB must pick the same points as cc-lib (spec metricstore §5.4), NaN quirks included."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cccommon.lttb import lttb


def reference(data, f, r, min_points=1000):
    """Straight transcription of spec §5.4, one point at a time."""
    if f == 0 or r == 0 or r <= f:
        return list(data), f
    if r % f != 0:
        raise ValueError(f"new sampling frequency ({r}) must be a multiple of old frequency ({f})")
    n = len(data)
    step = r // f
    m = n // step
    if m == 0 or n < min_points or m >= n:
        return list(data), f
    out = [data[0]]
    if m > 2:
        bucket = (n - 2) / (m - 2)
        low, mid, prev = 1, math.floor(bucket) + 1, 0
        for i in range(m - 2):
            high = min(math.floor((i + 2) * bucket) + 1, n - 2)
            sx = sy = 0.0
            cnt = 0
            for k in range(mid, high + 1):
                sx += float(k)
                sy += data[k]
                cnt += 1
            if cnt:
                ax, ay = sx / cnt, sy / cnt
            else:
                ax = ay = math.nan
            best, best_area = 0, -1.0
            for j in range(low, mid):
                area = abs(((prev - j) * (ay - data[prev]) - (prev - ax) * (data[j] - data[prev])) * 0.5)
                if area > best_area or math.isnan(area):
                    best, best_area = j, area
            out.append(data[best])
            prev, low, mid = best, mid, high
    out.append(data[n - 1])
    return out, r


def same(a, b):
    np.testing.assert_array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def test_passthrough_cases_return_input_object():
    d = np.arange(5000.0)
    for f, r in [(0, 600), (60, 0), (60, 60), (60, 30)]:
        out, res = lttb(d, f, r)
        assert out is d and res == f
    short = np.arange(999.0)
    out, res = lttb(short, 60, 600)
    assert out is short and res == 60
    out, res = lttb(np.arange(10.0), 1, 20, min_points=0)  # m == 0
    assert len(out) == 10 and res == 1


def test_multiple_check_comes_before_length_checks():
    with pytest.raises(
        ValueError, match=r"new sampling frequency \(90\) must be a multiple of old frequency \(60\)"
    ):
        lttb(np.arange(3.0), 60, 90)
    with pytest.raises(ValueError):
        lttb(np.array([]), 60, 90)


def test_output_size_and_resolution():
    d = np.sin(np.arange(10080) / 50.0)
    out, res = lttb(d, 60, 600)
    assert res == 600 and len(out) == 1008
    assert out[0] == d[0] and out[-1] == d[-1]
    assert set(out.tolist()) <= set(d.tolist())
    same(out, reference(d.tolist(), 60, 600)[0])


def test_two_or_fewer_buckets():
    d = np.arange(1000.0)
    same(lttb(d, 1, 500)[0], [0.0, 999.0])  # m == 2
    same(lttb(d, 1, 600)[0], [0.0, 999.0])  # m == 1: still first and last


def test_straight_line_takes_first_candidate():
    d = np.arange(1000.0) * 2.0
    out, _ = lttb(d, 10, 100)
    same(out, reference(d.tolist(), 10, 100)[0])
    assert out[1] == d[1]


def test_spike_is_kept():
    d = np.zeros(2000)
    d[1234] = 100.0
    out, _ = lttb(d, 1, 10)
    assert 100.0 in out.tolist()


def test_nan_candidate_wins_and_nan_average():
    d = np.linspace(0.0, 1.0, 1000)
    d[5] = math.nan  # inside the first bucket: its area is NaN → chosen
    out, _ = lttb(d, 1, 10)
    assert math.isnan(out[1])
    same(out, reference(d.tolist(), 1, 10)[0])
    d2 = np.linspace(0.0, 1.0, 1000)
    d2[15] = math.nan  # in the next bucket's average → every area of bucket 0 is NaN → last one
    out2, _ = lttb(d2, 1, 10)
    ref = reference(d2.tolist(), 1, 10)[0]
    same(out2, ref)
    assert out2[1] == d2[10]


def test_float32_input():
    d = np.random.default_rng(1).random(3000).astype(np.float32)
    out, res = lttb(d, 10, 30)
    same(out, reference(d.astype(np.float64).tolist(), 10, 30)[0])


values = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.just(math.nan),
    st.integers(-5, 5).map(float),
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(values, min_size=0, max_size=300),
    f=st.integers(0, 5),
    mult=st.integers(0, 12),
    min_points=st.sampled_from([0, 3, 50]),
)
def test_matches_reference_on_random_data(data, f, mult, min_points):
    r = f * mult
    arr = np.array(data, dtype=np.float64)
    try:
        want, wres = reference(data, f, r, min_points)
    except ValueError:
        with pytest.raises(ValueError):
            lttb(arr, f, r, min_points)
        return
    got, gres = lttb(arr, f, r, min_points)
    assert gres == wres
    same(got, want)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1000, 5000),
    step=st.integers(2, 40),
    nan_frac=st.floats(0, 0.1),
)
def test_matches_reference_default_threshold(seed, n, step, nan_frac):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=n).cumsum()
    d[rng.random(n) < nan_frac] = math.nan
    got, res = lttb(d, 60, 60 * step)
    want, wres = reference(d.tolist(), 60, 60 * step)
    assert res == wres
    same(got, want)


def test_non_multiple_with_random_frequency():
    with pytest.raises(ValueError):
        lttb(np.arange(5000.0), 7, 20)


@pytest.mark.parametrize("step", [2, 3, 10, 31, 33, 60, 500])
def test_table_and_loop_paths_agree(step, monkeypatch):
    import cccommon.lttb as mod

    rng = np.random.default_rng(step)
    d = rng.normal(size=20000).cumsum()
    d[rng.random(d.size) < 0.01] = math.nan
    monkeypatch.setattr(mod, "_TABLE_MAX_BUCKET", 10**9)
    table, _ = lttb(d, 1, step)
    monkeypatch.setattr(mod, "_TABLE_MAX_BUCKET", 0)
    loop, _ = lttb(d, 1, step)
    same(table, loop)
    same(loop, reference(d.tolist(), 1, step)[0])
