"""Metric data loading: scope planning, post-processing on upstream data, and the client and the
dispatcher against our real cc-metric-store daemon (written with /api/write, read with /api/query)."""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp
import numpy as np
import pytest

from ccbackend.clusters import ClusterRegistry
from ccbackend.metricdata import (
    ApiQuery,
    CCMetricStoreClient,
    MetricDataDispatcher,
    MetricDataError,
    MetricStoreExternal,
    parse_stores,
    stores_from_legacy,
)
from ccbackend.metricdata.scopes import coarser, scope_queries
from ccbackend.metricdata.transform import add_node_scope, add_statistics_series, round2
from ccbackend.model import Job
from cccommon.config import ConfigError
from cccommon.schema import JobMetric, Series, Unit, load_cluster, load_job_data
from tests.conftest import DATA, free_port, upstream_fixture
from tests.metricstore.conftest import README_PUBLIC_KEY, README_TOKEN

CLUSTERS = DATA / "backend" / "clusters"
NOW = int(time.time()) // 10 * 10
T0 = NOW - 600
N = 10  # samples written per series

STORE_METRICS = {
    "cpu_load": {"frequency": 10, "aggregation": None},
    "mem_used": {"frequency": 10, "aggregation": None},
    "flops_any": {"frequency": 10, "aggregation": "sum"},
    "mem_bw": {"frequency": 10, "aggregation": "sum"},
    "cpu_power": {"frequency": 10, "aggregation": "sum"},
    "core_energy": {"frequency": 10, "aggregation": "sum"},
    "acc_utilization": {"frequency": 10, "aggregation": "avg"},
}


@pytest.fixture(scope="module")
def registry() -> ClusterRegistry:
    return ClusterRegistry([load_cluster(CLUSTERS / "tiny.json"), load_cluster(CLUSTERS / "wild.json")])


def tiny_job(**kw: Any) -> Job:
    base: dict[str, Any] = {
        "cluster": "tiny",
        "sub_cluster": "cpu",
        "job_id": 42,
        "id": 7,
        "start_time": T0,
        "duration": N * 10,
        "num_nodes": 2,
        "job_state": "completed",
        "resources": [{"hostname": "t01"}, {"hostname": "t02", "hwthreads": [0, 4, 1, 5]}],
    }
    return Job.model_validate(base | kw)


# --------------------------------------------------------------------------- planning (no store)


def test_scope_ranks_follow_cc_lib() -> None:
    assert coarser("hwthread", "node") == "node"
    assert coarser("socket", "core") == "socket"
    assert coarser("hwthread", "accelerator") == "hwthread"  # CPU metric asked at GPU scope: native
    assert coarser("accelerator", "core") == "core"


def test_scope_queries_shapes(registry: ClusterRegistry) -> None:
    topo = registry.sub_cluster("tiny", "cpu").topology
    mine = [0, 4, 1, 5]  # socket 0, cores 0 and 1

    def shapes(native: str, requested: str, hw: list[int] = mine) -> list[tuple[Any, ...]]:
        out = scope_queries("m", native, requested, "t01", topo, hw, None)
        return [(p.scope, p.query.type, p.query.type_ids, p.query.aggreg, p.ids) for p in out]

    assert shapes("node", "node") == [("node", None, None, False, [None])]
    assert shapes("node", "core") == [("node", None, None, False, [None])]  # native is coarser
    assert shapes("hwthread", "hwthread") == [("hwthread", "hwthread", ["0", "4", "1", "5"], False, ["0", "4", "1", "5"])]
    assert shapes("hwthread", "node") == [("node", "hwthread", ["0", "4", "1", "5"], True, [None])]
    assert shapes("hwthread", "core") == [
        ("core", "hwthread", ["0", "4"], True, ["0"]),
        ("core", "hwthread", ["1", "5"], True, ["1"]),
    ]
    assert shapes("hwthread", "socket", list(range(8))) == [
        ("socket", "hwthread", ["0", "4", "1", "5"], True, ["0"]),
        ("socket", "hwthread", ["2", "6", "3", "7"], True, ["1"]),
    ]
    assert shapes("core", "core") == [("core", "core", ["0", "1"], False, ["0", "1"])]
    assert shapes("core", "socket", list(range(8))) == [
        ("socket", "core", ["0", "1"], True, ["0"]),
        ("socket", "core", ["2", "3"], True, ["1"]),
    ]
    assert shapes("core", "node") == [("node", "core", ["0", "1"], True, [None])]
    assert shapes("socket", "core") == [("socket", "socket", ["0"], False, ["0"])]
    assert shapes("socket", "node", list(range(8))) == [("node", "socket", ["0", "1"], True, [None])]
    assert shapes("memoryDomain", "socket", list(range(8))) == [
        ("socket", "memoryDomain", ["0"], True, ["0"]),
        ("socket", "memoryDomain", ["1"], True, ["1"]),
    ]
    assert shapes("memoryDomain", "memoryDomain") == [("memoryDomain", "memoryDomain", ["0"], False, ["0"])]
    gpu = registry.sub_cluster("tiny", "gpu").topology
    acc = ["00000000:0A:00.0"]
    q = scope_queries("a", "accelerator", "accelerator", "g1", gpu, [0, 1], acc)
    assert [(p.scope, p.query.type_ids, p.query.aggreg) for p in q] == [("accelerator", acc, False)]
    q = scope_queries("a", "accelerator", "node", "g1", gpu, [0, 1], acc)
    assert [(p.scope, p.query.aggreg, p.ids) for p in q] == [("node", True, [None])]
    assert scope_queries("a", "accelerator", "core", "g1", gpu, [0, 1], acc) == []
    assert scope_queries("a", "accelerator", "node", "g1", gpu, [0, 1], None) == []
    with pytest.raises(ValueError, match="unknown scope 'die'"):
        scope_queries("a", "die", "node", "g1", gpu, [0], None)


def test_api_query_json() -> None:
    q = ApiQuery("flops_any", "t01", "hwthread", ["0", "1"], True, 60)
    assert q.to_json() == {
        "metric": "flops_any",
        "host": "t01",
        "resolution": 60,
        "type": "hwthread",
        "type-ids": ["0", "1"],
        "aggreg": True,
    }
    assert ApiQuery.from_json(q.to_json()) == q
    assert ApiQuery("m", "h").to_json() == {"metric": "m", "host": "h", "resolution": 0, "aggreg": False}


# --------------------------------------------------------------------------- post-processing


def test_node_scope_synthesis_on_upstream_data() -> None:
    data = load_job_data(upstream_fixture("cc-backend/internal/importer/testdata/data-fritzMinimal.json"))
    for metric in ("flops_any", "mem_bw"):
        scoped = dict(data[metric])
        upstream_node = scoped.pop("node")
        finer = next(iter(scoped.values()))
        assert add_node_scope(scoped)
        node = scoped["node"]
        assert len(node.series) == 1 and node.series[0].hostname == "f0649"
        assert node.timestep == finer.timestep and node.unit == finer.unit
        got = np.asarray(node.series[0].data, dtype=float)
        want = np.asarray(upstream_node.series[0].data, dtype=float)
        # the store's aggregated node series is the sum of the finer series (each rounded to 2 decimals)
        assert np.allclose(got, want, atol=0.005 * len(finer.series) + 0.01), metric
        st = node.series[0].statistics
        assert st.avg == pytest.approx(sum(s.statistics.avg for s in finer.series) / len(finer.series))
        assert st.min == min(s.statistics.min for s in finer.series)
        assert st.max == max(s.statistics.max for s in finer.series)
    # node scope already present, or nothing finer: no-op
    assert not add_node_scope(dict(data["flops_any"]))
    assert not add_node_scope({})


def test_statistics_series_rules() -> None:
    data = load_job_data(upstream_fixture("cc-backend/internal/importer/testdata/data-fritzMinimal.json"))
    core = data["flops_any"]["core"].model_copy(deep=True)
    assert core.statistics_series is None and len(core.series) == 72
    assert add_statistics_series(core)
    ss = core.statistics_series
    assert ss is not None and ss.mean is None
    mat = np.asarray([s.data for s in core.series], dtype=float)
    assert ss.min == list(mat.min(axis=0)) and ss.max == list(mat.max(axis=0))
    assert ss.median == list(np.median(mat, axis=0))
    assert not add_statistics_series(core)  # already there
    few = JobMetric(unit=Unit(base=""), timestep=60, series=core.series[:7])
    assert not add_statistics_series(few)

    # gaps: median counts them as 0, min/max skip them, < 3 values → null, beyond shortest → null
    rows = [[1.0, None, 5.0, 9.0], [2.0, None, None, 9.0], [3.0, 4.0, None, 9.0]] + [[None, 7.0, 6.0]] * 5
    jm = JobMetric(unit=Unit(base=""), timestep=60, series=[Series(hostname=f"h{i}", data=r) for i, r in enumerate(rows)])
    assert add_statistics_series(jm)
    ss = jm.statistics_series
    assert ss is not None
    assert ss.min == [1.0, 4.0, 5.0, None]
    assert ss.max == [3.0, 7.0, 6.0, None]
    assert ss.median == [0.0, 7.0, 6.0, None]


def test_round2_is_half_away_from_zero() -> None:
    assert round2(0.125) == 0.13 and round2(-0.125) == -0.13 and round2(2.675) == 2.68
    assert round2(1336.519) == 1336.52
    assert np.isnan(round2(float("nan")))


# --------------------------------------------------------------------------- configuration


def test_store_config_forms() -> None:
    stores = parse_stores([{"scope": "tiny", "url": "http://127.0.0.1:8081/", "token": "x"}])
    assert stores[0].url == "http://127.0.0.1:8081"
    with pytest.raises(ConfigError, match=r"metric-store-external\[1\]\.url"):
        parse_stores([{"scope": "*", "url": "http://a", "token": ""}, {"scope": "a", "url": "ftp://x", "token": ""}])
    with pytest.raises(ConfigError, match=r"metric-store-external\[0\]\.token"):
        parse_stores([{"scope": "*", "url": "http://a"}])
    legacy = stores_from_legacy(
        [
            {"name": "fritz", "metricDataRepository": {"kind": "cc-metric-store", "url": "http://ms:8082", "token": "t"}},
            {"name": "nodata"},
        ]
    )
    assert [(s.scope, s.url, s.token) for s in legacy] == [("fritz", "http://ms:8082", "t")]
    with pytest.raises(ConfigError, match=r"clusters\[0\]\.metricDataRepository\.kind.*'prometheus'"):
        stores_from_legacy([{"name": "a", "metricDataRepository": {"kind": "prometheus", "url": "http://p"}}])


def test_store_selection(registry: ClusterRegistry) -> None:
    d = MetricDataDispatcher(
        registry,
        [
            MetricStoreExternal(scope="tiny-gpu", url="http://gpu:1", token=""),
            MetricStoreExternal(scope="tiny", url="http://tiny:1", token=""),
            MetricStoreExternal(scope="*", url="http://any:1", token=""),
        ],
    )
    assert d.store_for("tiny", "gpu").url == "http://gpu:1"
    assert d.store_for("tiny", "cpu").url == "http://tiny:1"
    assert d.store_for("wild", "any").url == "http://any:1"
    with pytest.raises(MetricDataError, match="no metric store configured for cluster 'wild'"):
        MetricDataDispatcher(registry, []).store_for("wild", "any")


# --------------------------------------------------------------------------- against the real store


def _lines() -> str:
    out = []
    for k in range(N):
        ts = T0 + 10 * k
        for host, load in (("t01", 1.0), ("t02", 2.0)):
            out.append(f"cpu_load,cluster=tiny,hostname={host} value={load + k} {ts}")
            for t in range(8):
                out.append(f"flops_any,cluster=tiny,hostname={host},type=hwthread,type-id={t} value={t + k} {ts}")
            for s in range(2):
                out.append(f"mem_bw,cluster=tiny,hostname={host},type=socket,type-id={s} value={10 * (s + 1)} {ts}")
        out.append(f"mem_used,cluster=tiny,hostname=t01 value={100 + k} {ts}")  # t02 has none
        for c in (0, 1, 3):  # core 2 of t01 has no data
            out.append(f"core_energy,cluster=tiny,hostname=t01,type=core,type-id={c} value={c} {ts}")
    return "\n".join(out) + "\n"


@pytest.fixture
async def store(daemon_factory):
    d = daemon_factory(metrics=STORE_METRICS, main={"jwt-public-key": README_PUBLIC_KEY}).start()
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{d.url}/api/write", data=_lines(), headers={"Authorization": f"Bearer {README_TOKEN}"}
        ) as r:
            assert r.status == 200, await r.text()
    yield d
    d.stop()


async def test_client_query_and_healthcheck(store) -> None:
    c = CCMetricStoreClient(store.url, README_TOKEN)
    try:
        res = await c.query(
            "tiny",
            T0,
            T0 + 100,
            [
                ApiQuery("cpu_load", "t01"),
                ApiQuery("flops_any", "t02", "hwthread", ["0", "1"], False),
                ApiQuery("flops_any", "t02", "hwthread", ["0", "1"], True),
                ApiQuery("cpu_load", "nohost"),
            ],
        )
        assert [len(r) for r in res.results] == [1, 2, 1, 0]
        e = res.results[0][0]
        assert list(e.data) == [1.0 + k for k in range(N)] and e.resolution == 10 and e.from_ == T0
        assert (e.avg, e.min, e.max) == (5.5, 1.0, 10.0)
        assert list(res.results[2][0].data) == [1.0 + 2 * k for k in range(N)]
        stats_only = await c.query("tiny", T0, T0 + 100, [ApiQuery("cpu_load", "t02")], with_data=False)
        assert stats_only.results[0][0].data is None and stats_only.results[0][0].avg == 6.5
        every = await c.query("tiny", T0, T0 + 100, [], for_all_nodes=["cpu_load"], with_data=False)
        assert sorted(q.host for q in every.queries) == ["t01", "t02"] and len(every.results) == 2
        health = await c.healthcheck("tiny", ["t01", "t99"], ["cpu_load", "mem_used"])
        assert set(health) >= {"t01"} and "State" in health["t01"]
    finally:
        await c.close()
    bad = CCMetricStoreClient(store.url, "not-a-token")
    with pytest.raises(MetricDataError, match=r"HTTP 401"):
        await bad.query("tiny", T0, T0 + 100, [ApiQuery("cpu_load", "t01")])
    await bad.close()


async def test_dispatcher_loads_job_data(store, registry: ClusterRegistry, caplog: pytest.LogCaptureFixture) -> None:
    d = MetricDataDispatcher(registry, [MetricStoreExternal(scope="tiny", url=store.url, token=README_TOKEN)])
    job = tiny_job()
    try:
        with caplog.at_level(logging.WARNING, "ccbackend.metricdata"):
            data = await d.load_job_data(job, None, ["node", "core"], 0)
        assert sorted(data.metrics()) == ["core_energy", "cpu_load", "flops_any", "mem_bw", "mem_used"]
        # node metric, one series per host, stats rounded
        load = data["cpu_load"]["node"]
        assert [s.hostname for s in load.series] == ["t01", "t02"]
        assert load.timestep == 10 and load.unit.base == ""
        assert load.series[1].data == [2.0 + k for k in range(N)]
        assert load.series[1].statistics.model_dump() == {"avg": 6.5, "min": 2.0, "max": 11.0}
        assert load.series[0].id is None
        # hwthread metric at node scope: sum over the job's hwthreads of each host
        fl = data["flops_any"]
        assert set(fl) == {"node", "core"}
        assert fl["node"].series[0].data == [28.0 + 8 * k for k in range(N)]  # t01: all 8 hwthreads
        assert fl["node"].series[1].data == [10.0 + 4 * k for k in range(N)]  # t02: 0,4,1,5
        # ... and at core scope: each core sums its two hwthreads
        cores = [(s.hostname, s.id, s.data[0]) for s in fl["core"].series]
        assert cores == [
            ("t01", "0", 4.0), ("t01", "1", 6.0), ("t01", "2", 8.0), ("t01", "3", 10.0),
            ("t02", "0", 4.0), ("t02", "1", 6.0),
        ]
        # socket-native metric asked at core scope arrives at socket scope
        assert set(data["mem_bw"]) == {"node", "socket"}
        assert [s.data[0] for s in data["mem_bw"]["node"].series] == [30.0, 10.0]
        assert [(s.hostname, s.id) for s in data["mem_bw"]["socket"].series] == [("t01", "0"), ("t01", "1"), ("t02", "0")]
        # a short multi-id row is re-asked per id, so ids stay right
        ce = data["core_energy"]["core"].series
        assert [(s.hostname, s.id, s.data[0]) for s in ce] == [("t01", "0", 0.0), ("t01", "1", 1.0), ("t01", "3", 3.0)]
        # partial data: mem_used only for t01, with a warning naming the job
        assert [s.hostname for s in data["mem_used"]["node"].series] == ["t01"]
        warned = [r.getMessage() for r in caplog.records if "job 42" in r.getMessage()]
        assert warned and "mem_used@t02" in warned[0] and "cpu_power" in warned[0]

        # hwthread scope: 8 + 4 series → statisticsSeries
        hw = await d.load_job_data(job, ["flops_any"], ["hwthread"], 0)
        assert list(hw.metrics()) == ["flops_any"] and list(hw["flops_any"]) == ["hwthread"]
        ss = hw["flops_any"]["hwthread"].statistics_series
        assert ss is not None and ss.min[0] == 0.0 and ss.max[0] == 7.0 and ss.median[0] == 3.5

        # the resolution reaches the store: short series stay native, a non-multiple is a series error
        coarse = await d.load_job_data(job, ["cpu_load"], ["node"], 20)
        assert coarse["cpu_load"]["node"].timestep == 10
        caplog.clear()
        with caplog.at_level(logging.WARNING, "ccbackend.metricdata"):
            assert len(await d.load_job_data(job, ["cpu_load"], ["node"], 15)) == 0
        assert "must be a multiple" in caplog.text

        # running-job statistics (no samples)
        stats = await d.load_job_stats(job, ["cpu_load", "mem_used"])
        assert stats["cpu_load"]["t02"].avg == 6.5 and set(stats["mem_used"]) == {"t01"}

        # node views: whole nodes (all hwthreads), subcluster from the node lists, unknown hosts skipped
        nodes = await d.load_node_data("tiny", ["t02", "zz"], ["cpu_load", "flops_any"], ["node", "socket"], T0, T0 + 100)
        assert set(nodes) == {"t02"}
        assert [jm.series[0].data[0] for jm in nodes["t02"]["cpu_load"]] == [2.0]
        by_scope = {len(jm.series): jm for jm in nodes["t02"]["flops_any"]}
        assert by_scope[1].series[0].data[:2] == [28.0, 36.0]  # node: all 8 hwthreads
        assert [(s.id, s.data[0]) for s in by_scope[2].series] == [("0", 10.0), ("1", 18.0)]

        with pytest.raises(ValueError, match="unknown metric scope 'die'"):
            await d.load_job_data(job, None, ["die"], 0)
    finally:
        await d.close()


async def test_store_down_raises(registry: ClusterRegistry) -> None:
    d = MetricDataDispatcher(registry, [MetricStoreExternal(scope="*", url=f"http://127.0.0.1:{free_port()}", token="")])
    try:
        with pytest.raises(MetricDataError, match=r"metric store http://127\.0\.0\.1:\d+/api/query"):
            await d.load_job_data(tiny_job(), None, ["node"], 0)
    finally:
        await d.close()
