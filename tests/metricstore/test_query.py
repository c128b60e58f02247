"""Query API semantics (spec §5) on a real MemoryStore, without HTTP."""

from __future__ import annotations

import math

import orjson
import pytest

from ccmetricstore.query import BadRequest, Query, execute, parse_query_request, request_from_url, selectors
from ccmetricstore.store import MemoryStore, MetricConfig

T0 = 1_700_000_000


def make_store() -> MemoryStore:
    return MemoryStore(
        {
            "cpu_load": MetricConfig("cpu_load", 60, None),
            "flops_any": MetricConfig("flops_any", 60, "sum"),
            "cpu_user": MetricConfig("cpu_user", 60, "avg"),
        }
    )


@pytest.fixture
def store() -> MemoryStore:
    s = make_store()
    for k in range(10):
        t = T0 + 60 * k
        s.write(["fritz", "f0201"], "cpu_load", t, float(k))
        for hw in range(4):
            s.write(["fritz", "f0201", f"hwthread{hw}"], "flops_any", t, 10.0 * hw + k)
            s.write(["fritz", "f0201", f"hwthread{hw}"], "cpu_user", t, 50.0 + hw)
        s.write(["fritz", "f0202"], "cpu_load", t, 2.0)
    return s


def run(store: MemoryStore, body: dict) -> dict:
    out = execute(store, parse_query_request(orjson.dumps(body)))
    return orjson.loads(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY))


def test_node_metric(store):
    r = run(
        store,
        {
            "cluster": "fritz",
            "from": T0,
            "to": T0 + 600,
            "queries": [{"metric": "cpu_load", "host": "f0201"}],
        },
    )
    (entry,) = r["results"][0]
    assert entry["data"] == [float(k) for k in range(10)]
    assert (entry["from"], entry["to"], entry["resolution"]) == (T0, T0 + 600, 60)
    assert (entry["avg"], entry["min"], entry["max"]) == (4.5, 0.0, 9.0)
    assert list(entry) == ["data", "from", "to", "resolution", "avg", "min", "max"]


def test_aggregated_hwthreads_sum_and_avg(store):
    q = {"host": "f0201", "type": "hwthread", "type-ids": ["0", "1", "2", "3"], "aggreg": True}
    r = run(
        store,
        {
            "cluster": "fritz",
            "from": T0,
            "to": T0 + 600,
            "queries": [{**q, "metric": "flops_any"}, {**q, "metric": "cpu_user"}],
        },
    )
    assert r["results"][0][0]["data"] == [60.0 + 4 * k for k in range(10)]
    assert r["results"][1][0]["data"] == [51.5] * 10


def test_per_id_rows_skip_missing_ids(store):
    r = run(
        store,
        {
            "cluster": "fritz",
            "from": T0,
            "to": T0 + 120,
            "queries": [
                {"metric": "flops_any", "host": "f0201", "type": "hwthread", "type-ids": ["0", "9", "3"]}
            ],
        },
    )
    row = r["results"][0]
    assert len(row) == 2
    assert row[0]["data"] == [0.0, 1.0] and row[1]["data"] == [30.0, 31.0]


def test_host_level_query_aggregates_children(store):
    r = run(
        store,
        {
            "cluster": "fritz",
            "from": T0,
            "to": T0 + 60,
            "queries": [{"metric": "flops_any", "host": "f0201"}],
        },
    )
    assert r["results"][0][0]["data"] == [60.0]


def test_no_aggregation_is_an_error_entry():
    s = make_store()
    s.write(["c", "h", "socket0"], "cpu_load", T0, 1.0)
    s.write(["c", "h", "socket1"], "cpu_load", T0, 1.0)
    r = run(s, {"cluster": "c", "from": T0, "to": T0 + 60, "queries": [{"metric": "cpu_load", "host": "h"}]})
    assert r["results"][0][0] == {
        "error": "[METRICSTORE]> invalid aggregation",
        "from": 0,
        "to": 0,
        "resolution": 0,
        "avg": 0.0,
        "min": 0.0,
        "max": 0.0,
    }


def test_error_entries_and_missing_hosts(store):
    q = [
        {"metric": "cpu_load", "host": "f0201"},
        {"metric": "nope", "host": "f0201"},
        {"metric": "cpu_load", "host": "absent"},
    ]
    r = run(store, {"cluster": "fritz", "from": T0 + 600, "to": T0, "queries": q})
    # the time range is checked first, even for hosts that do not exist (upstream order)
    assert [row[0]["error"] for row in r["results"]] == ["[METRICSTORE]> invalid time range"] * 3
    r = run(store, {"cluster": "fritz", "from": T0, "to": T0 + 60, "queries": q})
    assert r["results"][1][0]["error"] == "[METRICSTORE]> unknown metric: nope"
    assert r["results"][2] == []


def test_padding_stats_nulls_and_flags(store):
    body = {
        "cluster": "fritz",
        "from": T0 - 180,
        "to": T0 + 120,
        "queries": [{"metric": "cpu_load", "host": "f0201"}],
    }
    e = run(store, body)["results"][0][0]
    assert e["data"] == [None, None, None, 0.0, 1.0]
    assert e["from"] == T0  # from is not adjusted by padding
    e = run(store, {**body, "with-padding": False})["results"][0][0]
    assert e["data"] == [0.0, 1.0]
    e = run(store, {**body, "with-data": False})["results"][0][0]
    assert "data" not in e and e["avg"] == 0.5
    e = run(store, {**body, "with-stats": False})["results"][0][0]
    assert (e["avg"], e["min"], e["max"]) == (0.0, 0.0, 0.0)


def test_range_after_data_has_null_stats(store):
    e = run(
        store,
        {
            "cluster": "fritz",
            "from": T0 + 6000,
            "to": T0 + 7000,
            "queries": [{"metric": "cpu_load", "host": "f0201"}],
        },
    )["results"][0][0]
    assert "data" not in e and e["avg"] is None and e["min"] is None and e["max"] is None


def test_scale_by_and_null_scale(store):
    q = {"metric": "cpu_load", "host": "f0201"}
    e = run(store, {"cluster": "fritz", "from": T0, "to": T0 + 120, "queries": [{**q, "scale-by": 2}]})[
        "results"
    ][0][0]
    assert e["data"] == [0.0, 2.0] and e["max"] == 2.0
    e = run(store, {"cluster": "fritz", "from": T0, "to": T0 + 120, "queries": [{**q, "scale-by": None}]})[
        "results"
    ][0][0]
    assert e["data"] == [0.0, 1.0]


def test_resolution_not_multiple_is_error_entry(store):
    e = run(
        store,
        {
            "cluster": "fritz",
            "from": T0,
            "to": T0 + 120,
            "queries": [{"metric": "cpu_load", "host": "f0201", "resolution": 90}],
        },
    )["results"][0][0]
    assert e["error"] == "new sampling frequency (90) must be a multiple of old frequency (60)"


def test_for_all_nodes(store):
    r = run(store, {"cluster": "fritz", "from": T0, "to": T0 + 120, "for-all-nodes": ["cpu_load"]})
    assert sorted(q["host"] for q in r["queries"]) == ["f0201", "f0202"]
    assert r["queries"][0] == {
        "metric": "cpu_load",
        "host": r["queries"][0]["host"],
        "resolution": 0,
        "aggreg": False,
    }
    assert len(r["results"]) == 2 and all(len(row) == 1 for row in r["results"])


def test_keys_are_case_insensitive_and_unknown_ignored(store):
    r = run(
        store,
        {
            "Cluster": "fritz",
            "FROM": T0,
            "to": T0 + 60,
            "extra": 1,
            "Queries": [{"Metric": "cpu_load", "HOST": "f0201"}],
        },
    )
    assert r["results"][0][0]["data"] == [0.0]


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"", "EOF"),
        (b"not json", "invalid JSON"),
        (b'{"from": "yesterday"}', "ApiQueryRequest.from of type int64"),
        (b'{"from": 1.5}', "of type int64"),
        (b'{"with-stats": 1}', "of type bool"),
        (b'{"queries": [{"type-ids": [1]}]}', "ApiQuery.type-ids"),
        (b'{"queries": [5]}', "ApiQuery"),
        (b"[1,2]", "ApiQueryRequest"),
    ],
)
def test_bad_bodies(body, fragment):
    with pytest.raises(BadRequest) as ei:
        parse_query_request(body)
    assert fragment in str(ei.value)


def test_trailing_bytes_after_first_value_are_ignored():
    req = parse_query_request(b'{"cluster": "c", "from": 1, "to": 2} trailing')
    assert req.cluster == "c"


def test_selectors_rules():
    assert selectors("c", Query(metric="m", host="h")) == [["c", "h"]]
    assert selectors("c", Query(host="h", type="core", type_ids=["1"], aggreg=True)) == [["c", "h", "core1"]]
    assert selectors("c", Query(host="h", type="core", type_ids=["1", "2"], aggreg=True)) == [
        ["c", "h", ["core1", "core2"]]
    ]
    assert selectors("c", Query(host="h", type="core", type_ids=["1", "2"])) == [
        ["c", "h", "core1"],
        ["c", "h", "core2"],
    ]
    assert selectors(
        "c", Query(host="h", type="acc", type_ids=["0"], subtype="dev", subtype_ids=["a", "b"])
    ) == [
        ["c", "h", "acc0", "deva"],
        ["c", "h", "acc0", "devb"],
    ]
    assert selectors("c", Query(host="h", type="core", aggreg=True)) == [["c", "h", []]]


def test_query_by_url_lists_every_metric_for_every_host(store):
    req = request_from_url({"cluster": "fritz", "from": str(T0), "to": str(T0 + 120)}, store)
    out = orjson.loads(orjson.dumps(execute(store, req), option=orjson.OPT_SERIALIZE_NUMPY))
    assert len(out["queries"]) == 2 * 3
    req = request_from_url(
        {"cluster": "fritz", "from": str(T0), "to": str(T0 + 120), "host": "f0202", "metric": "cpu_load"},
        store,
    )
    out = orjson.loads(orjson.dumps(execute(store, req), option=orjson.OPT_SERIALIZE_NUMPY))
    assert out["results"] == [
        [
            {
                "data": [2.0, 2.0],
                "from": T0,
                "to": T0 + 120,
                "resolution": 60,
                "avg": 2.0,
                "min": 2.0,
                "max": 2.0,
            }
        ]
    ]
    with pytest.raises(BadRequest, match="'from' is a required"):
        request_from_url({"cluster": "fritz", "to": "5"}, store)
    with pytest.raises(BadRequest, match="must be an integer"):
        request_from_url({"cluster": "fritz", "from": "x", "to": "5"}, store)


def test_lttb_downsampling_through_query():
    s = make_store()
    for k in range(2000):
        s.write(["c", "h"], "cpu_load", T0 + 60 * k, math.sin(k / 50))
    e = run(
        s,
        {
            "cluster": "c",
            "from": T0,
            "to": T0 + 60 * 2000,
            "queries": [{"metric": "cpu_load", "host": "h", "resolution": 600}],
        },
    )["results"][0][0]
    assert e["resolution"] == 600 and len(e["data"]) == 200
