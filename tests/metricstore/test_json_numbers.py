"""The C parser of checkpoint number arrays gives what a correct JSON parser gives, cast to float32."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccmetricstore import checkpoint_json as cj

pytestmark = pytest.mark.skipif(cj._parse_c is None, reason="the C accelerator is not built")


def reference(text: str) -> np.ndarray:
    vals = json.loads("[" + text + "]")
    with np.errstate(over="ignore"):  # beyond float32: inf, as a cast of the parsed double gives
        return np.array([np.nan if v is None else v for v in vals], dtype=np.float64).astype(np.float32)


def parse(texts: list[str]) -> list[np.ndarray] | None:
    data = ",".join(f"[{t}]" for t in texts).encode()
    spans, pos = [], 0
    for t in texts:
        spans.append((pos + 1, pos + 1 + len(t.encode())))
        pos += len(t.encode()) + 3
    return cj.parse_arrays(data, spans)


@pytest.mark.parametrize(
    "text",
    [
        "1,2,3",
        "0.5, null ,-1.25e3, 0, -0, 1E-7, 12345678901234567890123, 0.000000000000000000000000123",
        "3.4028235e38, 1e39, -1e-50, 123.456789012345678901234",
        "  7 , 8  ",
        "",
    ],
)
def test_examples(text):
    (got,) = parse([text])
    want = reference(text) if text else np.empty(0, dtype=np.float32)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad", ["1,,2", "1,", "nul", "01x", "1.e5", ".5", "+1", "1 2", "NaN"])
def test_invalid_text_is_left_to_the_python_parser(bad):
    data = f"[{bad}]".encode()
    assert cj._parse_c(data, np.array([1, 1 + len(bad)], dtype=np.int64).tobytes()) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.none(),
                st.floats(allow_nan=False, allow_infinity=False, width=32),
                st.floats(allow_nan=False, allow_infinity=False),
                st.integers(-(10**25), 10**25),
            ),
            max_size=20,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_random_arrays_match_json(arrays):
    texts = [",".join("null" if v is None else json.dumps(v) for v in a) for a in arrays]
    got = parse(texts)
    assert got is not None and len(got) == len(texts)
    for g, t in zip(got, texts, strict=True):
        np.testing.assert_array_equal(g, reference(t) if t else np.empty(0, dtype=np.float32))


def test_fixed_width_columns_as_we_write_them():
    texts = [" 19.627, 30.254,   null,-12.500,  0.000", "    7,   12,-3333, null"]
    got = parse(texts)
    for g, t in zip(got, texts, strict=True):
        np.testing.assert_array_equal(g, reference(t))
    # a value that breaks the column goes to the general parser, with the same result
    odd = [" 19.627, 30.25 ,   null"]
    np.testing.assert_array_equal(parse(odd)[0], reference(odd[0]))
