"""The backend's node-list grammar (spec backend-data §2.5): matching table, errors, expansion, counts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbackend.nodelist import NodeList

MATCHES = [
    # (expression, hostname, expected)
    ("w22[01-35],w23[01-35]", "w2201", True),
    ("w22[01-35],w23[01-35]", "w2335", True),
    ("w22[01-35],w23[01-35]", "w2236", False),
    ("w22[01-35],w23[01-35]", "w221", False),
    ("a[0531-0537],a[0631-0633],a0731,a[0831-0833]", "a0731", True),
    ("a[0531-0537],a[0631-0633],a0731,a[0831-0833]", "a0732", False),
    ("a[0531-0537],a[0631-0633],a0731,a[0831-0833]", "a0633", True),
    ("a[1000-2000,2010-2090,3000-5000]", "a2005", False),
    ("a[1000-2000,2010-2090,3000-5000]", "a2050", True),
    ("a[1000-2000,2010-2090,3000-5000]", "a4999", True),
    ("cn-0010,cn0011,cn-00[13-18,22-24]", "cn-0010", True),
    ("cn-0010,cn0011,cn-00[13-18,22-24]", "cn0011", True),
    ("cn-0010,cn0011,cn-00[13-18,22-24]", "cn-0023", True),
    ("cn-0010,cn0011,cn-00[13-18,22-24]", "cn-0019", False),
    ("hallo,wel123t,emmy[01-99],fritz[005-500]", "hallo", True),
    ("hallo,wel123t,emmy[01-99],fritz[005-500]", "wel123t", True),
    ("hallo,wel123t,emmy[01-99],fritz[005-500]", "hall", False),
    ("hallo,wel123t,emmy[01-99],fritz[005-500]", "hallox", False),
    # zero padding is mandatory and fixed
    ("fritz[005-500]", "fritz005", True),
    ("fritz[005-500]", "fritz500", True),
    ("fritz[005-500]", "fritz5", False),
    ("fritz[005-500]", "fritz004", False),
    ("fritz[005-500]", "fritz0005", False),
    # first range that fits wins, no backtracking
    ("a[1-9,10-99]", "a10", False),
    ("a[1-9,10-99]", "a5", True),
    ("a[10-99,1-9]", "a10", True),
    ("a[10-99,1-9]", "a5", True),
    # lo > hi parses but matches nothing
    ("a[5-1]", "a3", False),
    # several rangesets per term
    ("r[1-2]n[01-04]", "r2n03", True),
    ("r[1-2]n[01-04]", "r3n03", False),
    ("r[1-2]n[01-04]", "r1n05", False),
    # empty expression, empty terms, trailing commas
    ("", "", False),
    ("", "a", False),
    ("a,,b", "b", True),
    ("a,,b", "", False),
    (",a", "a", True),
    ("a,", "a", True),
    # digits are ASCII only: no signs, no other Unicode digits
    ("a[01-10]", "a+1", False),
    ("a[01-10]", "a\u0661\u0662", False),
    ("a[1-9]", "a\u0663", False),
    ("emmy[01-99]", "EMMY01", False),
]


@pytest.mark.parametrize(("expr", "host", "expected"), MATCHES)
def test_matching_table(expr: str, host: str, expected: bool) -> None:
    assert NodeList.parse(expr).contains(host) is expected
    assert (host in NodeList.parse(expr)) is expected


ERRORS = [
    ("a[01-05", "unclosed"),
    ("a[0731]", "not a range"),
    ("a[1-10]", "same number of digits"),
    ("a[-10]", "non-empty decimal"),
    ("a[1-]", "non-empty decimal"),
    ("a[a-b]", "non-empty decimal"),
    ("a[+1-2]", "non-empty decimal"),
    ("a, b", "unexpected character ' '"),
    ("a.b", "unexpected character '.'"),
    ("a_b", "unexpected character '_'"),
    ("a[01-02]-b", "unexpected character '-'"),
    ("-a", "unexpected character '-'"),
    ("a[01-02]]", "unexpected character ']'"),
    ("a[0[1-2]]", "'[' inside a bracket"),
    ("*", "unexpected character '*'"),
    ("a[]", "not a range"),
]


@pytest.mark.parametrize(("expr", "problem"), ERRORS)
def test_syntax_errors_name_expression_and_problem(expr: str, problem: str) -> None:
    with pytest.raises(ValueError) as exc:
        NodeList.parse(expr)
    assert repr(expr) in str(exc.value)
    assert problem in str(exc.value)


def test_expansion_and_counts() -> None:
    nl = NodeList.parse("cn-0010,cn0011,cn-00[13-15,22-23]")
    assert list(nl) == ["cn-0010", "cn0011", "cn-0013", "cn-0014", "cn-0015", "cn-0022", "cn-0023"]
    assert nl.upstream_node_count() == 7
    multi = NodeList.parse("r[1-2]n[01-02],x")
    assert multi.hostnames() == ["r1n01", "r1n02", "r2n01", "r2n02", "x"]
    # upstream counting quirks: a bare rangeset counts 1, extra atoms are ignored
    assert NodeList.parse("[01-10]").upstream_node_count() == 1
    assert multi.upstream_node_count() == 2 + 1
    assert NodeList.parse("a[5-1]").hostnames() == []
    assert NodeList.parse("a,a[1-2],a1").hostnames() == ["a", "a1", "a2"]
    assert list(NodeList.parse("")) == []


@given(
    prefix=st.from_regex(r"[a-z][a-z0-9-]{0,5}", fullmatch=True),
    lo=st.integers(0, 500),
    span=st.integers(0, 400),
    width=st.integers(3, 4),
)
def test_every_expanded_name_matches_and_neighbours_do_not(prefix: str, lo: int, span: int, width: int) -> None:
    if prefix[-1].isdigit():
        prefix += "x"  # a trailing digit would merge with the range digits
    hi = lo + span
    nl = NodeList.parse(f"{prefix}[{lo:0{width}d}-{hi:0{width}d}]")
    names = nl.hostnames()
    assert len(names) == span + 1
    assert all(nl.contains(n) for n in names[:: max(1, len(names) // 20)])
    if hi + 1 < 10**width:
        assert not nl.contains(f"{prefix}{hi + 1:0{width}d}")
    if lo > 0:
        assert not nl.contains(f"{prefix}{lo - 1:0{width}d}")
    assert not nl.contains(f"{prefix}{lo}") or width == len(str(lo))
