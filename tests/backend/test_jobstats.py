"""Job statistics, footprints and energy against upstream data: the emmy archive jobs, the importer's
fritz fixtures and the footprint/energy columns upstream stored for those jobs in its test job.db."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from ccbackend.clusters import ClusterRegistry
from ccbackend.jobstats import (
    FootprintError,
    energy_footprint,
    footprint,
    job_statistics,
    series_statistics,
    statistics_from_node_stats,
)
from ccbackend.model import Job
from cccommon.schema import JobData, MetricStatistics, Series, load_cluster, load_job_data
from tests.conftest import DATA, upstream_fixture

ARCHIVE = "cc-backend/pkg/archive/testdata/archive"
IMPORTER = "cc-backend/internal/importer/testdata"
EMMY_JOBS = ["emmy/1403/244/1608923076", "emmy/1404/397/1609300556"]


@pytest.fixture(scope="module")
def upstream() -> ClusterRegistry:
    root = upstream_fixture(ARCHIVE)
    return ClusterRegistry([load_cluster(root / c / "cluster.json") for c in ("alex", "emmy", "fritz")])


def _meta(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@pytest.mark.parametrize("job_dir", EMMY_JOBS)
def test_emmy_statistics_match_meta_json(upstream: ClusterRegistry, job_dir: str) -> None:
    d = upstream_fixture(f"{ARCHIVE}/{job_dir}")
    meta = _meta(d / "meta.json")
    data = load_job_data(d / "data.json.gz")
    stats = job_statistics(data, meta["numNodes"], upstream, "emmy")
    assert set(stats) == set(data.metrics())
    for metric, s in stats.items():
        want = meta["statistics"][metric]
        if metric == "ipc":  # no series statistics in data.json; the meta.json values are nonsense (avg > max)
            assert s.min <= s.avg <= s.max
            continue
        assert s.min == want["min"] and s.max == want["max"], metric
        # these meta.json files come from an older tool that weighted samples, not nodes: ≤ 0.1 apart
        assert s.avg == pytest.approx(want["avg"], abs=0.1), metric
        # the unit comes from cluster.json (meta says cpu_load 'load', the cluster says ''); rapl_power
        # is not in emmy's cluster.json, so its unit is the data's
        mc = upstream.cluster_metric("emmy", metric)
        assert s.unit == (mc.unit if mc is not None else data[metric]["node"].unit)
    # exact rule: Σ node averages / numNodes, rounded to 2 decimals
    node = data["cpu_load"]["node"].series
    assert stats["cpu_load"].avg == round(sum(x.statistics.avg for x in node) / meta["numNodes"], 2)
    assert stats["mem_used"].unit.base == "B"  # cluster-level unit, not the data's 'B/s'


@pytest.mark.parametrize("name", ["fritzMinimal", "fritzError"])
def test_importer_fixtures_statistics(upstream: ClusterRegistry, name: str) -> None:
    meta = _meta(upstream_fixture(f"{IMPORTER}/meta-{name}.input"))
    data = load_job_data(upstream_fixture(f"{IMPORTER}/data-{name}.json"))
    fritz = ClusterRegistry([load_cluster(upstream_fixture(f"{IMPORTER}/cluster-fritz.json"))])
    stats = job_statistics(data, meta["numNodes"], fritz, "fritz")
    assert set(stats) == set(meta["statistics"])
    for metric, s in stats.items():
        want = meta["statistics"][metric]
        # meta.json has 3 decimals, the loader's series statistics 2
        for key in ("avg", "min", "max"):
            assert getattr(s, key) == pytest.approx(want[key], abs=0.0051), (metric, key)
    golden = _meta(upstream_fixture(f"{IMPORTER}/{name}-golden.json"))
    assert (meta["jobId"], meta["startTime"], meta["duration"]) == (
        golden["jobId"],
        golden["startTime"],
        golden["duration"],
    )


# footprint/energy columns of these two jobs in upstream's internal/repository/testdata/job.db
DB_ROWS = {
    "fritzMinimal": (
        {"cpu_load_avg": 31.64, "flops_any_avg": 45.012, "mem_bw_avg": 4.872, "mem_used_avg": 6.162},
        {"cpu_power": 0.01, "mem_power": 0},
        0.01,
    ),
    "fritzError": (
        {"cpu_load_avg": 52.72, "flops_any_avg": 635.672, "mem_bw_avg": 79.565, "mem_used_avg": 22.566},
        {"cpu_power": 0.03, "mem_power": 0},
        0.03,
    ),
}


@pytest.mark.parametrize("name", sorted(DB_ROWS))
def test_import_footprint_and_energy_match_upstream_db(upstream: ClusterRegistry, name: str) -> None:
    meta = _meta(upstream_fixture(f"{IMPORTER}/meta-{name}.input"))
    job = Job.from_meta(meta)
    fp = footprint(job, meta["statistics"], upstream, import_mode=True)
    efp, energy = energy_footprint(job, meta["statistics"], upstream)
    want_fp, want_efp, want_energy = DB_ROWS[name]
    assert fp == want_fp
    assert efp == want_efp
    assert energy == want_energy


def test_archive_footprint_uses_catalogue_stat(upstream: ClusterRegistry) -> None:
    meta = _meta(upstream_fixture(f"{IMPORTER}/meta-fritzError.input"))
    job = Job.from_meta(meta)
    fp = footprint(job, meta["statistics"], upstream)
    s = meta["statistics"]
    assert fp == {
        "cpu_load_avg": s["cpu_load"]["avg"],
        "mem_used_max": s["mem_used"]["max"],
        "flops_any_avg": s["flops_any"]["avg"],
        "mem_bw_avg": s["mem_bw"]["avg"],
    }
    # a footprint metric without statistics is 0; a subcluster without some metrics leaves them out
    spr = job.model_copy(update={"sub_cluster": "spr2tb"})
    assert footprint(spr, {}, upstream) == {"cpu_load_avg": 0.0, "mem_used_max": 0.0}
    with pytest.raises(FootprintError, match="unknown subcluster 'nope'"):
        footprint(job.model_copy(update={"sub_cluster": "nope"}), {}, upstream)


def test_energy_rules_on_own_cluster() -> None:
    reg = ClusterRegistry([load_cluster(DATA / "backend" / "clusters" / "tiny.json")])
    job = Job(cluster="tiny", sub_cluster="cpu", job_id=1, num_nodes=4, duration=7200)
    stats = {"cpu_power": MetricStatistics(avg=250.0, min=0, max=300), "core_energy": {"avg": 5e6}}
    efp, energy = energy_footprint(job, stats, reg)
    # 250 W × 4 nodes × 2 h = 2 kWh; `energy`-type metrics count 0 (as upstream)
    assert efp == {"cpu_power": 2.0, "core_energy": 0.0}
    assert energy == 2.0
    assert energy_footprint(job.model_copy(update={"duration": 1}), stats, reg) == ({"cpu_power": 0.0, "core_energy": 0.0}, 0.0)


def test_series_statistics_fallback_and_node_stats() -> None:
    s = Series(hostname="h", data=[1.0, None, 3.0, 2.0])
    assert series_statistics(s).model_dump() == {"avg": 2.0, "min": 1.0, "max": 3.0}
    assert series_statistics(Series(hostname="h", data=[None, None])).model_dump() == {"avg": 0, "min": 0, "max": 0}
    reg = ClusterRegistry([load_cluster(DATA / "backend" / "clusters" / "tiny.json")])
    node_stats = {
        "cpu_load": {"t01": MetricStatistics(avg=2.0, min=1.5, max=3.0), "t02": MetricStatistics(avg=1.0, min=0.5, max=4.0)}
    }
    out = statistics_from_node_stats(node_stats, 2, reg, "tiny")
    assert out["cpu_load"].model_dump(exclude_none=True) == {"avg": 1.5, "min": 0.5, "max": 4.0, "unit": {"base": ""}}
    # averaged over the job's node count, not over the hosts that answered
    assert statistics_from_node_stats(node_stats, 3, reg, "tiny")["cpu_load"].avg == 1.0


def test_statistics_are_fast_enough_for_init_db(upstream: ClusterRegistry) -> None:
    d = upstream_fixture(f"{ARCHIVE}/{EMMY_JOBS[0]}")
    data: JobData = load_job_data(d / "data.json.gz")
    meta = json.loads(gzip.decompress(gzip.compress((d / "meta.json").read_bytes())))
    job = Job.from_meta(meta)
    t0 = time.perf_counter()
    for _ in range(200):
        stats = job_statistics(data, 32, upstream, "emmy")
        footprint(job, stats, upstream, import_mode=True)
        energy_footprint(job, stats, upstream)
    per_job = (time.perf_counter() - t0) / 200
    assert per_job < 0.005, f"{per_job * 1e3:.2f} ms per job"
