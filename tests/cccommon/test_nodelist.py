"""cc-lib host lists (ipmi/redfish `host_list`): expand, membership, compact."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cccommon.nodelist import NodeList, compact_hostlist, expand_hostlist


def test_expand():
    assert expand_hostlist("node[01-03,07],gpu[1,3]-ib,login") == [
        "node01",
        "node02",
        "node03",
        "node07",
        "gpu1-ib",
        "gpu3-ib",
        "login",
    ]
    assert expand_hostlist("f[0101-0103],f0101") == ["f0101", "f0102", "f0103"]


@pytest.mark.parametrize("bad", ["n[1-2", "n]1", "n[3-1]", "n[a-b]", "n[1-2][3]", "n[[1]]", "n[]"])
def test_bad_expressions(bad):
    with pytest.raises(ValueError):
        expand_hostlist(bad)
    with pytest.raises(ValueError):
        NodeList(bad)


def test_membership_without_expanding():
    nodes = NodeList("f[0101-0188],a0[1-5],gpu[1-10]-ib,login")
    assert "f0101" in nodes and "f0188" in nodes and "f0189" not in nodes
    assert "f101" not in nodes  # the width is part of the name
    assert "a03" in nodes and "a06" not in nodes
    assert "gpu10-ib" in nodes and "gpu01-ib" not in nodes and "gpu3" not in nodes
    assert "login" in nodes and "log" not in nodes
    assert "x" not in NodeList("") and len(NodeList("")) == 0
    assert len(NodeList("n[1-3],m")) == 4


_names = st.lists(
    st.builds(
        lambda p, n, w: f"{p}{n:0{w}d}",
        st.sampled_from(["n", "gpu", "f0"]),
        st.integers(0, 300),
        st.sampled_from([0, 3]),
    ),
    min_size=1,
    max_size=40,
)


@given(_names)
def test_compact_round_trip(names):
    expr = compact_hostlist(names)
    assert set(expand_hostlist(expr)) == set(names)
    nodes = NodeList(expr)
    assert all(n in nodes for n in names)


def test_compact_examples():
    assert compact_hostlist(["n01", "n02", "n03", "n05", "m1"]) == "n[01-03,05],m1"
    assert compact_hostlist(["login"]) == "login"
