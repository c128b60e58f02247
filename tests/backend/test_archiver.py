"""The archiver end to end: our metric store daemon → dispatcher → FsArchive in tmp_path → database.

The database is the real SqliteRepository; the same tests also run on a minimal in-test repository
(only the three methods the archiver calls) so the archiver is checked even where the SQLite
repository cannot be imported.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ccbackend.archive import FsArchive
from ccbackend.archiver import Archiver, build_meta, scopes_for
from ccbackend.clusters import ClusterRegistry
from ccbackend.metricdata import MetricDataDispatcher, MetricStoreExternal
from ccbackend.model import Job
from cccommon.schema import load_cluster
from tests.backend.test_metricdata import STORE_METRICS, T0, _lines, tiny_job
from tests.conftest import DATA, free_port
from tests.metricstore.conftest import README_PUBLIC_KEY, README_TOKEN

CLUSTERS = DATA / "backend" / "clusters"


class MiniRepo:
    """Just what the archiver needs from a Repository, kept in dicts."""

    engine = "mini"

    def __init__(self) -> None:
        self.jobs: dict[int, Job] = {}

    async def insert_job(self, job: Job) -> int:
        id = len(self.jobs) + 1
        self.jobs[id] = job.model_copy(update={"id": id})
        return id

    async def get_job(self, id: int) -> Job | None:
        return self.jobs.get(id)

    async def set_monitoring_status(self, id: int, status: int) -> None:
        self.jobs[id].monitoring_status = status

    async def update_archived(
        self, id: int, footprint: dict[str, float], energy_footprint: dict[str, float], energy: float, status: int
    ) -> None:
        j = self.jobs[id]
        j.footprint, j.energy_footprint, j.energy, j.monitoring_status = footprint, energy_footprint, energy, status

    async def close(self) -> None:
        pass


@pytest.fixture(params=["sqlite", "mini"])
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "mini":
        r: Any = MiniRepo()
    else:
        try:
            from ccbackend.repository import open_repository
        except ImportError as e:  # the SQLite repository is built by another part of the project
            pytest.skip(f"SqliteRepository not importable: {e}")
        r = await open_repository("sqlite3", str(tmp_path / "job.db"))
    yield r
    await r.close()


@pytest.fixture
def registry() -> ClusterRegistry:
    return ClusterRegistry([load_cluster(CLUSTERS / "tiny.json")])


@pytest.fixture
def archive(tmp_path: Path, registry: ClusterRegistry) -> FsArchive:
    a = FsArchive(tmp_path / "job-archive")
    a.version(bootstrap=True)
    a.store_cluster(registry.get("tiny"))
    return a


@pytest.fixture
async def store(daemon_factory: Any) -> Any:
    d = daemon_factory(metrics=STORE_METRICS, main={"jwt-public-key": README_PUBLIC_KEY}).start()
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{d.url}/api/write", data=_lines(), headers={"Authorization": f"Bearer {README_TOKEN}"}) as r:
            assert r.status == 200
    yield d
    d.stop()


def _job_dir(archive: FsArchive, job: Job) -> Path:
    return archive.root / job.cluster / str(job.job_id // 1000) / f"{job.job_id % 1000:03d}" / str(job.start_time)


def _read(d: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    meta = json.loads((d / "meta.json").read_text())
    raw = (d / "data.json.gz").read_bytes() if (d / "data.json.gz").exists() else None
    data = json.loads(gzip.decompress(raw)) if raw is not None else json.loads((d / "data.json").read_text())
    return meta, data


def test_scopes_for() -> None:
    assert scopes_for(tiny_job(num_nodes=8)) == ["node", "core"]
    assert scopes_for(tiny_job(num_nodes=9)) == ["node"]
    assert scopes_for(tiny_job(num_nodes=9, num_acc=2)) == ["node", "accelerator"]


def test_build_meta_keeps_state_and_tags() -> None:
    job = tiny_job(job_state="node_fail", tags=[{"id": 4, "type": "app", "name": "vasp", "scope": "global"}])
    meta = build_meta(job, {})
    doc = json.loads(meta.model_dump_json(by_alias=True, exclude_unset=True))
    assert doc["jobState"] == "node_fail" and doc["tags"] == [{"id": 0, "type": "app", "name": "vasp", "scope": "global"}]
    assert "id" not in doc and doc["statistics"] == {}


async def test_archive_job_end_to_end(store: Any, repo: Any, archive: FsArchive, registry: ClusterRegistry) -> None:
    dispatcher = MetricDataDispatcher(registry, [MetricStoreExternal(scope="tiny", url=store.url, token=README_TOKEN)])
    archiver = Archiver(repo, archive, dispatcher, registry)
    archiver.start()
    try:
        job = tiny_job(id=None, job_state="completed", monitoring_status=1)
        job.id = await repo.insert_job(job)
        await archiver.enqueue(job)
        assert await archiver.drain(30)
    finally:
        await dispatcher.close()

    meta, data = _read(_job_dir(archive, job))
    assert meta["jobId"] == 42 and meta["startTime"] == T0 and meta["jobState"] == "completed"
    st = meta["statistics"]
    assert st["cpu_load"] == {"unit": {"base": ""}, "avg": 6.0, "min": 1.0, "max": 11.0}
    assert st["flops_any"]["avg"] == 46.0 and st["flops_any"]["unit"] == {"base": "F/s", "prefix": "G"}
    assert st["mem_used"] == {"unit": {"base": "B", "prefix": "G"}, "avg": 52.25, "min": 100.0, "max": 109.0}
    assert "cpu_power" not in st and "acc_utilization" not in st
    # ≤ 8 nodes: node and core scope (socket-native mem_bw comes at socket scope)
    assert set(data["flops_any"]) == {"node", "core"}
    assert set(data["mem_bw"]) == {"node", "socket"}
    assert set(data["cpu_load"]) == {"node"}
    assert data["cpu_load"]["node"]["series"][0]["statistics"] == {"min": 1.0, "avg": 5.5, "max": 10.0}
    assert data["cpu_load"]["node"]["unit"] == {"base": ""}  # no "prefix": null
    assert data["flops_any"]["core"]["unit"] == {"base": "F/s", "prefix": "G"}
    assert "id" not in data["cpu_load"]["node"]["series"][0]
    assert [s["id"] for s in data["flops_any"]["core"]["series"]] == ["0", "1", "2", "3", "0", "1"]

    row = await repo.get_job(job.id)
    assert row.monitoring_status == 3
    assert row.footprint == {"cpu_load_avg": 6.0, "mem_used_max": 109.0, "flops_any_avg": 46.0, "mem_bw_avg": 20.0}
    assert row.energy_footprint == {"cpu_power": 0.0, "core_energy": 0.0}
    assert row.energy == 0.0
    assert archiver.archived._value.get() == 1 and archiver.failed._value.get() == 0


async def test_store_down_archives_meta_and_marks_failed(
    repo: Any, archive: FsArchive, registry: ClusterRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher = MetricDataDispatcher(
        registry, [MetricStoreExternal(scope="*", url=f"http://127.0.0.1:{free_port()}", token="")]
    )
    archiver = Archiver(repo, archive, dispatcher, registry)
    archiver.start()
    job = tiny_job(id=None, job_id=4711, job_state="timeout", monitoring_status=1)
    job.id = await repo.insert_job(job)
    with caplog.at_level(logging.ERROR, "ccbackend.archiver"):
        await archiver.enqueue(job)
        assert await archiver.drain(30)
    await dispatcher.close()
    meta, data = _read(_job_dir(archive, job))
    assert meta["jobId"] == 4711 and meta["statistics"] == {} and data == {}
    assert (await repo.get_job(job.id)).monitoring_status == 2
    assert "job 4711" in caplog.text and "metric store unavailable" in caplog.text
    assert archiver.failed._value.get() == 1


async def test_disabled_monitoring_and_archive_write_failure(
    repo: Any, archive: FsArchive, registry: ClusterRegistry, tmp_path: Path
) -> None:
    dispatcher = MetricDataDispatcher(registry, [])
    archiver = Archiver(repo, archive, dispatcher, registry, queue_size=2)
    archiver.start()
    off = tiny_job(id=None, job_id=5, monitoring_status=0)
    off.id = await repo.insert_job(off)
    await archiver.enqueue(off)
    assert archiver.pending() == 0
    assert await archiver.archive_job(off) == 0
    # a cluster the archive does not know: writing fails → status 2
    other = FsArchive(tmp_path / "empty-archive")
    other.version(bootstrap=True)
    bad = Archiver(repo, other, dispatcher, registry)
    job = tiny_job(id=None, job_id=6, monitoring_status=1)
    job.id = await repo.insert_job(job)
    assert await bad.archive_job(job) == 2
    assert (await repo.get_job(job.id)).monitoring_status == 2
    assert not _job_dir(archive, off).exists()
    assert await archiver.drain(1)


async def test_upstream_fritz_job_through_store_and_archiver(
    daemon_factory: Any, repo: Any, tmp_path: Path
) -> None:
    """Upstream's importer job (data-fritzMinimal) written into our store at its native scopes, then
    archived: the statistics must match the job's upstream meta.json and the footprint its values."""
    from tests.conftest import upstream_fixture

    base = "cc-backend/internal/importer/testdata"
    cluster = load_cluster(upstream_fixture(f"{base}/cluster-fritz.json"))
    registry = ClusterRegistry([cluster])
    upstream_meta = json.loads(upstream_fixture(f"{base}/meta-fritzMinimal.input").read_text())
    upstream_data = json.loads(upstream_fixture(f"{base}/data-fritzMinimal.json").read_text())
    archive = FsArchive(tmp_path / "fritz-archive")
    archive.version(bootstrap=True)
    archive.store_cluster(cluster)

    start = (int(__import__("time").time()) // 60) * 60 - 600
    lines = []
    for mc in cluster.metric_config:
        scoped = upstream_data[mc.name]
        native = {"hwthread": "core"}.get(mc.scope, mc.scope)  # fritz: core i is hwthread i
        for i, s in enumerate(scoped[native]["series"]):
            # upstream's socket series all carry id "0" (its aggregated-query id quirk): use the index
            sid = str(i) if mc.scope == "socket" else s.get("id")
            tags = "" if mc.scope == "node" else f",type={mc.scope},type-id={sid}"
            for k, v in enumerate(s["data"]):
                if v is not None:
                    lines.append(f"{mc.name},cluster=fritz,hostname={s['hostname']}{tags} value={v} {start + 60 * k}")
    metrics = {mc.name: {"frequency": 60, "aggregation": mc.aggregation or None} for mc in cluster.metric_config}
    store = daemon_factory(metrics=metrics).start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{store.url}/api/write", data="\n".join(lines) + "\n") as r:
                assert r.status == 200, await r.text()
        dispatcher = MetricDataDispatcher(registry, [MetricStoreExternal(scope="fritz", url=store.url, token="")])
        archiver = Archiver(repo, archive, dispatcher, registry)
        job = Job.from_meta(upstream_meta | {"startTime": start, "monitoringStatus": 1})
        job.statistics = None
        job.id = await repo.insert_job(job)
        assert await archiver.archive_job(job) == 3
        await dispatcher.close()
    finally:
        store.stop()

    meta, data = _read(_job_dir(archive, job))
    assert set(meta["statistics"]) == set(upstream_meta["statistics"])
    for metric, want in upstream_meta["statistics"].items():
        got = meta["statistics"][metric]
        mc = cluster.metric(metric)
        assert mc is not None and got["unit"] == mc.unit.model_dump(exclude_none=True), metric  # cluster.json's unit
        # sums of 72 core values that the fixture rounded to 2 decimals may be 72 × 0.005 off
        tol = 0.37 if mc.scope == "hwthread" and mc.aggregation == "sum" else 0.05
        for key in ("avg", "min", "max"):
            assert got[key] == pytest.approx(want[key], rel=2e-3, abs=tol), (metric, key)
    # 1 node: core scope archived too, with one series per core
    assert len(data["flops_any"]["core"]["series"]) == 72 and "statisticsSeries" in data["flops_any"]["core"]
    row = await repo.get_job(job.id)
    assert row.monitoring_status == 3
    assert row.footprint == pytest.approx(
        {"cpu_load_avg": 31.64, "mem_used_max": 6.23, "flops_any_avg": 45.01, "mem_bw_avg": 4.87}, abs=0.06
    )
