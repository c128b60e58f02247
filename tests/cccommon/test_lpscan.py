"""The C accelerator of the store decoder gives exactly the results of the Python decoder."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cccommon import lineprotocol as lp

METRICS = {"cpu_load": 0, "cpu_user": 1, "mem_bw": 2}

pytestmark = pytest.mark.skipif(lp._lpscan is None, reason="the C accelerator is not built")


def both(
    body: bytes, cluster: str = "c0", now: int = 1_700_000_000
) -> tuple[lp.StoreBatch | None, lp.StoreBatch | None, lp.StoreBatch]:
    """C with a cold cache, C with the cache the Python decoder filled, and Python."""
    cold = lp._decode_uniform_c(body, METRICS, cluster, now, {})
    cache: dict[bytes, object] = {}
    slow = lp._decode_lines(body, METRICS, cluster, now, cache)
    warm = lp._decode_uniform_c(body, METRICS, cluster, now, cache)
    return cold, warm, slow


def same(a: lp.StoreBatch, b: lp.StoreBatch) -> None:
    assert a.keys == b.keys
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.times, b.times)
    assert [(e.line, e.column, e.reason) for e in a.errors] == [
        (e.line, e.column, e.reason) for e in b.errors
    ]
    assert (a.unknown_metric, a.no_cluster_or_host, a.unsafe_name) == (
        b.unknown_metric,
        b.no_cluster_or_host,
        b.unsafe_name,
    )


def test_usual_body():
    body = (
        b"cpu_load,hostname=n1 value=0.5 1700000000\n"
        b"cpu_user,cluster=x,hostname=n1,type=hwthread,type-id=3 value=12 1700000000000\n"
        b"mem_bw,hostname=n2,type=socket,type-id=0,stype=memoryDomain,stype-id=1 value=-1e3 1700000000000000\n"
        b"other,hostname=n1 value=1 1700000000\n"
        b"cpu_load,cluster=c value=1 1700000000\n"
        b"cpu_load,hostname=../x value=1 1700000000\n"
        b"cpu_load,hostname=n3 value=.25\n"
        b"cpu_load,hostname=n3 value=2.\n"
    )
    cold, fast, slow = both(body)
    # a line without timestamp after a line with an uncached prefix: the default time depends on
    # whether that line is stored, so the cold C pass leaves the body to Python
    assert cold is None
    assert fast is not None
    same(fast, slow)
    assert fast.times.tolist()[2:] == [1_700_000_000, 1_700_000_000, 1_700_000_000]
    assert (fast.unknown_metric, fast.no_cluster_or_host, fast.unsafe_name) == (1, 1, 1)


@pytest.mark.parametrize(
    "body",
    [
        b"cpu_load,hostname=n1 value=5i 1700000000",
        b"cpu_load,hostname=n1 value=nan 1700000000",
        b"cpu_load,hostname=n1 value=1_0 1700000000",
        b"cpu_load,hostname=a\\ b value=1 1700000000",
        b"# comment\ncpu_load,hostname=n1 value=1 1700000000",
        b"cpu_load,hostname=n1 value=1 1700000000\n\ncpu_load,hostname=n1 value=2",
        b"cpu_load,hostname=n1 value=1 17000000x0",
        b"cpu_load,hostname=n1 value=1,other=2 1700000000",
        b"cpu_load,hostname=n1 value=1 1700000000 ",
        b"cpu_load,hostname=n1 value=1 99999999999999999999",
        b"cpu_load,hostname=n1 value=1\r\n",
    ],
)
def test_unusual_lines_go_to_the_python_decoder(body):
    assert lp._decode_uniform_c(body, METRICS, "c", 0, {}) is None
    lp.decode_store_batch(body, METRICS, "c", 0)  # and the public entry point still answers


def test_cache_is_filled_and_reused():
    cache: dict[bytes, object] = {}
    body = b"cpu_load,hostname=n1 value=1 1700000000\ncpu_load,hostname=n1 value=2 1700000060"
    lp._decode_uniform_c(body, METRICS, "c", 0, cache)
    assert cache == {b"cpu_load,hostname=n1": "cpu_load\x00c\x00n1\x00\x00"}
    again = lp._decode_uniform_c(body, METRICS, "c", 0, cache)
    assert again.keys == ["cpu_load\x00c\x00n1\x00\x00"] * 2


_name = st.text("abcxyz019-_.", min_size=1, max_size=6)
_metric = st.sampled_from(["cpu_load", "cpu_user", "mem_bw", "nope"])
_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**12), 10**12).map(str),
)
_ts = st.one_of(
    st.just(""),
    st.integers(0, 9_223_372_036).map(lambda t: f" {t}"),
    st.integers(0, 2**62).map(lambda t: f" {t}"),
    st.integers(-(2**40), -1).map(lambda t: f" {t}"),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(_metric, st.one_of(st.none(), _name), st.one_of(st.none(), _name), _value, _ts),
        min_size=1,
        max_size=30,
    )
)
def test_random_bodies_decode_identically(rows):
    lines = []
    for metric, cluster, host, value, ts in rows:
        tags = (f",cluster={cluster}" if cluster else "") + (f",hostname={host}" if host else "")
        lines.append(f"{metric}{tags} value={value}{ts}")
    body = "\n".join(lines).encode()
    cold, warm, slow = both(body)
    for fast in (cold, warm):
        if fast is not None:  # None only for shapes the C path leaves to Python
            same(fast, slow)
    assert warm is not None or cold is None


_NUMBER_TEXTS = [
    "0", "-0", "1", "-1", "42", "1.5", "-1.5", "0.1", "0.3", "2.675", "123.456", "0.000123",
    "1e5", "1E5", "1.5e-3", "-2.5E+10", "1e22", "1e23", "1e-22", "1e-23", "9007199254740993",
    "9007199254740992.5", "12345678901234567890", "1234567890123456789012.5", "0.1000000000000000055511151231257827",
    "3.141592653589793238462643383279", "1e308", "2.2250738585072014e-308", "4.9e-324",
    ".5", "5.", "+1.5", "00012", "-007.25", "1.e5", "17976931348623157e292",
]  # fmt: skip


@pytest.mark.parametrize("text", _NUMBER_TEXTS)
def test_numbers_parse_exactly_as_float_does(text):
    """The C decoder's fast path (exact for short decimals) and its fallback give float()'s bits."""
    body = f"cpu_load,hostname=n1 value={text} 1700000000".encode()
    got = lp._decode_uniform_c(body, METRICS, "c", 0, {})
    assert got is not None
    want = np.float64(float(text))
    assert got.values[0].tobytes() == want.tobytes(), (text, got.values[0], want)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(-(10**18), 10**18),
    st.integers(0, 25),
    st.one_of(st.just(""), st.integers(-30, 30).map(lambda e: f"e{e}")),
)
def test_random_decimals_parse_exactly(mant, frac, exp):
    s = str(abs(mant)).rjust(frac + 1, "0")
    text = ("-" if mant < 0 else "") + (s[: len(s) - frac] + "." + s[len(s) - frac :] if frac else s) + exp
    body = f"cpu_load,hostname=n1 value={text} 1700000000".encode()
    got = lp._decode_uniform_c(body, METRICS, "c", 0, {})
    assert got is not None
    assert got.values[0].tobytes() == np.float64(float(text)).tobytes(), text
