"""The importer: `init_db` over whole archives and `import_jobs` for file pairs, on both engines.

Archives are built in tmp_path from a cluster.json written here (footprint and energy metrics on two
subclusters) and from upstream's fritz cluster.json and importer fixtures; the expected footprint
and energy values are computed by hand from the statistics in the meta.json files.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from ccbackend.archive import ArchiveConfig, open_archive
from ccbackend.clusters import ClusterRegistry
from ccbackend.importer import ImportError_, JobCheckError, JobConverter, import_jobs, init_db, round2
from ccbackend.model import Job
from ccbackend.repository import JobFilter, open_repository
from tests.conftest import upstream_fixture

CLUSTER = {
    "name": "imp",
    "metricConfig": [
        {"name": "cpu_load", "unit": {"base": ""}, "scope": "node", "aggregation": "avg", "timestep": 60,
         "peak": 72, "normal": 72, "caution": 36, "alert": 10, "footprint": "avg"},
        {"name": "mem_used", "unit": {"base": "B", "prefix": "G"}, "scope": "node", "aggregation": "sum",
         "timestep": 60, "peak": 256, "normal": 128, "caution": 200, "alert": 240, "footprint": "max"},
        {"name": "cpu_power", "unit": {"base": "W"}, "scope": "socket", "aggregation": "sum", "timestep": 60,
         "peak": 500, "normal": 250, "caution": 100, "alert": 50, "energy": "power"},
        {"name": "acc_energy", "unit": {"base": "J"}, "scope": "node", "aggregation": "sum", "timestep": 60,
         "peak": 1, "normal": 1, "caution": 1, "alert": 1, "energy": "energy"},
    ],
    "subClusters": [
        {"name": "small", "nodes": "n[01-08]", "processorType": "x", "socketsPerNode": 1, "coresPerSocket": 2,
         "threadsPerCore": 1, "flopRateScalar": {"unit": {"base": "F/s", "prefix": "G"}, "value": 1},
         "flopRateSimd": {"unit": {"base": "F/s", "prefix": "G"}, "value": 1},
         "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": 1},
         "topology": {"node": [0, 1], "socket": [[0, 1]], "memoryDomain": [[0, 1]], "core": [[0], [1]]}},
        {"name": "big", "nodes": "g01", "processorType": "x", "socketsPerNode": 1, "coresPerSocket": 2,
         "threadsPerCore": 1, "flopRateScalar": {"unit": {"base": "F/s", "prefix": "G"}, "value": 1},
         "flopRateSimd": {"unit": {"base": "F/s", "prefix": "G"}, "value": 1},
         "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": 1},
         "topology": {"node": [0, 1], "socket": [[0, 1]], "memoryDomain": [[0, 1]], "core": [[0], [1]]}},
    ],
}  # fmt: skip


def meta(job_id: int, start: int, **kw: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "jobId": job_id, "user": "alice", "project": "p1", "cluster": "imp", "subCluster": "small",
        "partition": "batch", "numNodes": 2, "shared": "none", "jobState": "completed", "duration": 7200,
        "walltime": 86400, "startTime": start, "resources": [{"hostname": "n01"}, {"hostname": "n02"}],
        "metaData": {"jobName": "sim"},
        "statistics": {"cpu_load": {"unit": {"base": ""}, "avg": 1.5, "min": 1, "max": 2},
                       "mem_used": {"unit": {"base": "B", "prefix": "G"}, "avg": 10.25, "min": 2, "max": 20},
                       "cpu_power": {"unit": {"base": "W"}, "avg": 201.25, "min": 100, "max": 300}},
        "stopTime": start + 7200,  # legacy key: ignored by -init-db
    }  # fmt: skip
    m.update(kw)
    return {k: v for k, v in m.items() if v is not ...}


def write_job(root: Path, m: dict[str, Any], *, start_dir: int | None = None) -> None:
    start = m["startTime"] if start_dir is None else start_dir
    d = root / m["cluster"] / str(m["jobId"] // 1000) / f"{m['jobId'] % 1000:03d}" / str(start)
    d.mkdir(parents=True, exist_ok=True)
    (d / "meta.json").write_bytes(orjson.dumps(m))
    (d / "data.json").write_bytes(b"{}")


def new_archive(root: Path, cluster: dict[str, Any] | Path = CLUSTER) -> Any:
    (root / "version.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "version.txt").write_text("3\n")
    name = cluster["name"] if isinstance(cluster, dict) else orjson.loads(cluster.read_bytes())["name"]
    (root / name).mkdir()
    if isinstance(cluster, dict):
        (root / name / "cluster.json").write_bytes(orjson.dumps(cluster))
    else:
        shutil.copy(cluster, root / name / "cluster.json")
    return open_archive(ArchiveConfig.model_validate({"kind": "file", "path": str(root)}))


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "sqlite":
        r = await open_repository("sqlite3", str(tmp_path / "job.db"))
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        from ccbackend.repository import migrate_db

        await migrate_db("postgres", dsn)
        r = await open_repository("postgres", dsn)
        await r.delete_all_jobs()
    try:
        yield r
    finally:
        await r.delete_all_jobs()
        await r.close()


async def all_jobs(repo: Any) -> list[Job]:
    jobs = await repo.list_jobs(JobFilter(), with_meta_data=True)
    return sorted(jobs, key=lambda j: (j.cluster, j.job_id, j.start_time))


# --------------------------------------------------------------------------------------- init-db


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
@pytest.mark.asyncio
async def test_init_db_imports_good_jobs_and_skips_bad_ones(
    repo: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, processes: bool
) -> None:
    root = tmp_path / "archive"
    archive = new_archive(root)
    write_job(root, meta(100, 1700000000, tags=[{"type": "app", "name": "vasp", "scope": "alice"}]))
    write_job(root, meta(100, 1700090000, jobState="failed", tags=[{"type": "app", "name": "vasp"}]))
    write_job(root, meta(2001, 1700000500, subCluster="big", numNodes=1, resources=[{"hostname": "g01"}],
                         statistics=...))  # fmt: skip
    write_job(root, meta(3000, 1700000000, shared=..., exclusive=2))  # archive v2 spelling
    # bad ones: each is skipped with a message naming the file
    write_job(root, meta(4001, 1700000000, subCluster=""))
    write_job(root, meta(4002, 1700000000, jobState="stopped"))
    write_job(root, meta(4003, 1700000000, numNodes=3))
    write_job(root, meta(4004, 1700000000, user=""))
    write_job(root, meta(4005, 1700000000, subCluster="nope"))
    write_job(root, meta(4006, 1600000000), start_dir=1700000000)  # meta.json in the wrong directory
    write_job(root, meta(4007, 1700000000, duration="long"))
    (root / "imp" / "4" / "008" / "1700000000").mkdir(parents=True)  # no meta.json
    (root / "imp" / "4" / "009" / "1700000000").mkdir(parents=True)
    (root / "imp" / "4" / "009" / "1700000000" / "meta.json").write_text("{broken")
    registry = ClusterRegistry.from_archive(archive)
    # rows that -init-db must delete first
    await repo.insert_jobs([JobConverter(registry).convert(meta(9999, 1600000000), "old")])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ccbackend.importer"):
        imported, skipped, secs = await init_db(
            repo, archive, registry, progress=False, batch_size=2, processes=processes
        )
    assert (imported, skipped) == (4, 9) and secs > 0
    msgs = [r.getMessage() for r in caplog.records if "energy type 'energy'" not in r.getMessage()]
    assert msgs[0] == "Building job table..."
    assert msgs[-1].startswith("A total of 4 jobs have been registered in ") and msgs[-1].endswith(
        " seconds."
    )
    assert "Error in import of 9 jobs!" in msgs
    errors = "\n".join(m for m in msgs if m.startswith("init-db: skipping job"))
    for needle in (
        "4/001/1700000000/meta.json: cannot get subcluster",
        "4/005/1700000000/meta.json: cannot",
        "not a valid job state: 'stopped'",
        "len(resources) does not equal numNodes (2 vs 3)",
        "'resources' and 'user' should not be empty",
        "cannot get subcluster",
        "do not match the archive location",
        "field 'duration'",
        "4/008/1700000000/meta.json: job not found",
        "4/009/1700000000/meta.json: corrupt meta.json",
    ):
        assert needle in errors, needle  # fmt: skip

    jobs = await all_jobs(repo)
    assert [(j.job_id, j.start_time) for j in jobs] == [(100, 1700000000), (100, 1700090000), (2001, 1700000500),
                                                        (3000, 1700000000)]  # fmt: skip
    j = jobs[0]
    assert j.monitoring_status == 3 and j.sub_cluster == "small" and j.meta_data == {"jobName": "sim"}
    # import-mode footprint: always `<metric>_avg` with the average (upstream quirk, spec §3.5)
    assert j.footprint == {"cpu_load_avg": 1.5, "mem_used_avg": 10.25}
    # power metric: round2(201.25 W x 2 nodes x 2 h / 1000) = 0.81 kWh; `energy` metrics give 0
    assert j.energy_footprint == {"cpu_power": 0.81, "acc_energy": 0.0} and j.energy == 0.81
    assert [r.hostname for r in j.resources] == ["n01", "n02"]
    big = jobs[2]
    assert big.footprint == {"cpu_load_avg": 0.0, "mem_used_avg": 0.0} and big.energy == 0.0
    assert jobs[3].shared == "single_user"
    # tags recreated once, with scope global (the archived scope is ignored)
    tags = await repo.job_tags([jobs[0].id, jobs[1].id])
    assert {(t.type, t.name, t.scope) for ts in tags.values() for t in ts} == {("app", "vasp", "global")}
    assert len(await repo.list_tags()) == 1


@pytest.mark.asyncio
async def test_init_db_on_upstream_archive(repo: Any, tmp_path: Path) -> None:
    src = upstream_fixture("cc-backend/pkg/archive/testdata/archive")
    shutil.copytree(src, tmp_path / "archive")
    archive = open_archive(ArchiveConfig.model_validate({"kind": "file", "path": str(tmp_path / "archive")}))
    registry = ClusterRegistry.from_archive(archive)
    imported, skipped, _ = await init_db(repo, archive, registry, progress=False)
    assert (imported, skipped) == (2, 0)
    jobs = await all_jobs(repo)
    assert [(j.job_id, j.start_time, j.sub_cluster, j.num_nodes, j.user) for j in jobs] == [
        (1403244, 1608923076, "haswell", 32, "emmyUser6"),
        (1404397, 1609300556, "haswell", 32, "emmyUser6"),
    ]
    assert all(j.monitoring_status == 3 and j.job_state == "completed" for j in jobs)


@pytest.mark.asyncio
async def test_fritz_footprint_and_energy_from_upstream_cluster(repo: Any, tmp_path: Path) -> None:
    """fritz (upstream archive) has footprint metrics cpu_load, mem_used, flops_any, mem_bw and energy
    metrics cpu_power, mem_power; the importer's fritzMinimal job gets them computed from statistics."""
    root = tmp_path / "archive"
    archive = new_archive(
        root, upstream_fixture("cc-backend/pkg/archive/testdata/archive/fritz/cluster.json")
    )
    m = orjson.loads(
        upstream_fixture("cc-backend/internal/importer/testdata/meta-fritzMinimal.input").read_bytes()
    )
    write_job(root, m)
    registry = ClusterRegistry.from_archive(archive)
    assert (await init_db(repo, archive, registry, progress=False))[:2] == (1, 0)
    (j,) = await all_jobs(repo)
    s = m["statistics"]
    assert j.footprint == {f"{k}_avg": s[k]["avg"] for k in ("cpu_load", "mem_used", "flops_any", "mem_bw")}
    cpu = round2(s["cpu_power"]["avg"] * 1 * 177 / 3600 / 1000)
    mem = round2(s["mem_power"]["avg"] * 1 * 177 / 3600 / 1000)
    assert (cpu, mem) == (0.01, 0.0)
    assert j.energy_footprint == {"cpu_power": cpu, "mem_power": mem} and j.energy == round2(cpu + mem)


@pytest.mark.asyncio
async def test_progress_lines_and_bar(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "archive"
    archive = new_archive(root)
    for i in range(5):
        write_job(root, meta(1000 * i + 1, 1700000000))
    registry = ClusterRegistry.from_archive(archive)
    repo = await open_repository("sqlite3", str(tmp_path / "p.db"))
    try:

        class Tty(io.StringIO):
            def isatty(self) -> bool:
                return True

        tty = Tty()
        await init_db(repo, archive, registry, progress=True, stream=tty)
        assert "\r[" in tty.getvalue() and "100.0%  5 jobs processed" in tty.getvalue()
        plain = io.StringIO()
        with caplog.at_level(logging.INFO, logger="ccbackend.importer"):
            await init_db(repo, archive, registry, progress=True, stream=plain)
        assert plain.getvalue() == ""  # not a terminal: no bar; log lines every few seconds instead
        assert (await repo.count_jobs(JobFilter())) == 5
    finally:
        await repo.close()


def test_round2_rounds_halves_away_from_zero() -> None:
    assert (round2(0.125), round2(2.675000001), round2(-0.125), round2(0.0049)) == (0.13, 2.68, -0.13, 0.0)


def test_converter_rejects_without_archive() -> None:
    registry = ClusterRegistry([])
    with pytest.raises(JobCheckError, match="no such cluster: 'imp'"):
        JobConverter(registry).convert(meta(1, 1), "x/meta.json")


# ------------------------------------------------------------------------------------ import-job


def fritz_setup(tmp_path: Path) -> tuple[Any, ClusterRegistry, Path]:
    td = upstream_fixture("cc-backend/internal/importer/testdata")
    archive = new_archive(tmp_path / "archive", td / "cluster-fritz.json")
    return archive, ClusterRegistry.from_archive(archive), td


@pytest.mark.asyncio
async def test_import_jobs_golden_and_tags_keep_scope(repo: Any, tmp_path: Path) -> None:
    archive, registry, td = fritz_setup(tmp_path)
    m = orjson.loads((td / "meta-fritzError.input").read_bytes())
    m["tags"] = [{"type": "app", "name": "ams", "scope": "k106eb10"}, {"type": "class", "name": "lowload"}]
    tagged = tmp_path / "meta-tagged.json"
    tagged.write_bytes(orjson.dumps(m))
    flag = f"{td}/meta-fritzMinimal.input:{td}/data-fritzMinimal.json,{tagged}:{td}/data-fritzError.json"
    ids = await import_jobs(repo, archive, registry, flag)
    assert len(ids) == 2
    for name, id_ in zip(("fritzMinimal", "fritzError"), ids, strict=True):
        golden = orjson.loads((td / f"{name}-golden.json").read_bytes())
        job = await repo.find_job(golden["jobId"], golden["cluster"], golden["startTime"])
        assert job is not None and job.id == id_ and job.duration == golden["duration"]
        assert job.monitoring_status == 3
        assert archive.exists("fritz", golden["jobId"], golden["startTime"])
    tags = (await repo.job_tags([ids[1]]))[ids[1]]
    assert sorted((t.type, t.name, t.scope) for t in tags) == [
        ("app", "ams", "k106eb10"),
        ("class", "lowload", "global"),
    ]
    archived = archive.load_meta_dict("fritz", 398955, 1675956725)
    assert archived["monitoringStatus"] == 3 and archived["footprint"]["cpu_load_avg"] == 52.72
    assert archived["metaData"]["jobName"] and {t["name"] for t in archived["tags"]} == {"ams", "lowload"}
    data = archive.load_data("fritz", 398955, 1675956725)
    assert "cpu_load" in data.metrics()


@pytest.mark.asyncio
async def test_import_jobs_errors(repo: Any, tmp_path: Path) -> None:
    archive, registry, td = fritz_setup(tmp_path)
    good_data = f"{td}/data-fritzMinimal.json"

    def variant(name: str, **kw: Any) -> str:
        m = orjson.loads((td / "meta-fritzMinimal.input").read_bytes())
        m.update(kw)
        p = tmp_path / f"{name}.json"
        p.write_bytes(orjson.dumps({k: v for k, v in m.items() if v is not ...}))
        return str(p)

    cases = [
        ("nonsense", "invalid import flag format"),
        (f"{tmp_path}/missing.json:{good_data}", "missing.json: cannot read job metadata"),
        (f"{variant('legacy', exclusive=1)}:{good_data}", 'json: unknown field "exclusive"'),
        (f"{variant('nosub', subCluster='')}:{good_data}", "cannot get subcluster"),
        (f"{variant('badstate', jobState='stopped')}:{good_data}", "not a valid job state"),
        (f"{variant('nodes', numNodes=2)}:{good_data}", "len(resources) does not equal numNodes"),
    ]
    bad_data = tmp_path / "data-extra.json"
    d = orjson.loads((td / "data-fritzMinimal.json").read_bytes())
    d["cpu_load"]["node"]["bogus"] = 1
    bad_data.write_bytes(orjson.dumps(d))
    cases.append((f"{td}/meta-fritzMinimal.input:{bad_data}", 'unknown field "bogus"'))
    for flag, msg in cases:
        with pytest.raises(ImportError_, match=msg.replace("(", r"\(").replace(")", r"\)")):
            await import_jobs(repo, archive, registry, flag)
    assert await repo.count_jobs(JobFilter()) == 0
    assert not archive.exists("fritz", 398764, 1675954353)


def test_converter_agrees_with_jobstats_import_mode(tmp_path: Path) -> None:
    """The importer's per-subcluster plan gives what ccbackend.jobstats computes for the same job."""
    from ccbackend import jobstats

    archive = new_archive(
        tmp_path / "archive", upstream_fixture("cc-backend/pkg/archive/testdata/archive/fritz/cluster.json")
    )
    registry = ClusterRegistry.from_archive(archive)
    m = orjson.loads(
        upstream_fixture("cc-backend/internal/importer/testdata/meta-fritzError.input").read_bytes()
    )
    for duration in (260, 7200, 86400):
        m["duration"] = duration
        job = JobConverter(registry).convert(m, "meta.json")
        assert job.footprint == jobstats.footprint(job, m["statistics"], registry, import_mode=True)
        assert (job.energy_footprint, job.energy) == jobstats.energy_footprint(job, m["statistics"], registry)


# ------------------------------------------------------------------- fast row path vs model path


def _rc(tmp_path: Path) -> Any:
    from ccbackend.importer import RowConverter

    archive = new_archive(tmp_path / "archive")
    return RowConverter(JobConverter(ClusterRegistry.from_archive(archive)))


FAST_CASES: dict[str, dict[str, Any]] = {
    "plain": {},
    "int averages and a missing power metric": {
        "statistics": {"cpu_load": {"avg": 3}, "mem_used": {"avg": 0}, "other": {"avg": 1.25, "unit": {}}}},
    "no statistics, legacy exclusive": {"statistics": ..., "shared": ..., "exclusive": 0},
    "null statistics and metaData": {"statistics": None, "metaData": None},
    "resources with every field and unknown keys": {
        "numNodes": 1, "numHwthreads": 4, "numAcc": 2,
        "resources": [{"configuration": "c", "accelerators": ["0", "1"], "hwthreads": [0, 1, 2, 3],
                       "hostname": "n01", "legacy": True}]},
    "empty hwthreads list kept": {"numNodes": 1, "resources": [{"hostname": "n01", "hwthreads": []}]},
    "unicode and escapes in strings": {
        "project": "pröject \u2028", "metaData": {"jobScript": "#!/bin/sh\n\techo \"hi\" \\ \u00e9\U0001F600\x01"}},
    "tags with scope and id": {"tags": [{"type": "app", "name": "vasp", "scope": "alice", "id": 7},
                                        {"type": "class", "name": "x"}]},
    "empty tags, nulls for optional counts": {"tags": [], "numHwthreads": None, "numAcc": None, "duration": None},
    "running job, submit time, array id, smt": {"jobState": "running", "submitTime": 1699999000,
                                                 "arrayJobId": 77, "smt": 2, "requestedMemory": 1 << 40},
    "statistics of metrics no plan needs are not looked at": {
        "statistics": {"cpu_load": {"avg": 2.5}, "odd": 5, "cpu_user": {"avg": "n/a"}}},
    "unknown top-level keys": {"energy": 99, "footprint": {"x": 1}, "monitoringStatus": 1,
                               "concurrentJobs": {"items": None, "count": 0}, "whatever": [1, 2]},
}  # fmt: skip


@pytest.mark.parametrize("case", list(FAST_CASES), ids=list(FAST_CASES))
def test_fast_rows_equal_model_rows(tmp_path: Path, case: str) -> None:
    """Well-formed files take the fast path, and its row and tags are exactly what the Job model gives."""
    rc = _rc(tmp_path)
    m = meta(5, 1700000000, **FAST_CASES[case])
    raw = orjson.dumps(m)
    fast = rc._fast(rc._decoder.decode(raw))
    assert fast is not None, "fast path refused a well-formed file"
    assert fast == rc.slow(orjson.loads(raw), "x/meta.json")
    assert rc.from_json(raw, "imp", 5, 1700000000, "x/meta.json") == fast
    assert rc.from_dict(orjson.loads(raw), "imp", 5, 1700000000, "x/meta.json") == fast


SLOW_CASES: dict[str, tuple[dict[str, Any], str | None]] = {
    # accepted by the model (lax) but not by the fast path's exact types: same row as the model path
    "integer-valued float count": ({"numNodes": 2.0}, None),
    "walltime as digit string": ({"walltime": "86400"}, None),
    "non-object statistics of a footprint metric": ({"statistics": {"cpu_load": [1]}}, None),
    # refused: the model path's messages
    "footprint average not a number": ({"statistics": {"cpu_load": {"avg": "high"}}},
                                       "field 'statistics.cpu_load.avg': expected a number"),
    "boolean average": ({"statistics": {"cpu_power": {"avg": True}}}, "field 'statistics.cpu_power.avg'"),
    "tag without name": ({"tags": [{"type": "app"}]}, "field 'tags[0].name'"),
    "hostname missing": ({"resources": [{"hostname": "n01"}, {"hwthreads": [1]}]}, "field 'resources[1].hostname'"),
    "metaData value not a string": ({"metaData": {"jobName": 5}}, "field 'metaData.jobName'"),
    "null partition": ({"partition": None}, "field 'partition'"),
    "negative accelerators": ({"numAcc": -1}, "'numNodes', 'numAcc' or 'numHWThreads' invalid"),
    "integer beyond int64": ({"walltime": 2**63}, "walltime: integer 9223372036854775808 out of the 64-bit range"),
    "huge hwthread": ({"numNodes": 1, "resources": [{"hostname": "n01", "hwthreads": [2**64]}]}, "resources"),
    "bad shared": ({"shared": "some"}, "field 'shared': must be one of none, single_user, multi_user"),
    "not a list of resources": ({"resources": {"hostname": "n01"}}, "'resources' and 'user' should not be empty"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SLOW_CASES), ids=list(SLOW_CASES))
def test_files_the_fast_path_refuses_get_the_model_decision(tmp_path: Path, case: str) -> None:
    rc = _rc(tmp_path)
    kw, error = SLOW_CASES[case]
    raw = json.dumps(meta(5, 1700000000, **kw)).encode()  # the stdlib writes integers beyond 64 bits too
    try:
        m = rc._decoder.decode(raw)
    except Exception:  # noqa: BLE001 - refused by the decoder is one way to leave the fast path
        m = None
    assert m is None or rc._fast(m) is None
    if error is None:
        got = rc.from_json(raw, "imp", 5, 1700000000, "x/meta.json")
        assert got == rc.slow(orjson.loads(raw), "x/meta.json")
    else:
        with pytest.raises(JobCheckError) as e:
            rc.from_json(raw, "imp", 5, 1700000000, "x/meta.json")
        assert str(e.value).startswith("x/meta.json: ") and error in str(e.value)


@pytest.mark.asyncio
async def test_init_db_large_meta_json_and_key_reader(tmp_path: Path) -> None:
    """A meta.json beyond the read buffer is read whole; the non-file reader (`_load_keys`) gives the same rows."""
    from ccbackend.importer import RowConverter, _load_keys, _load_l1

    root = tmp_path / "archive"
    archive = new_archive(root)
    script = "echo " + "x" * 200_000
    write_job(
        root, meta(1001, 1700000000, metaData={"jobScript": script}, tags=[{"type": "app", "name": "big"}])
    )
    write_job(root, meta(1002, 1700000000))
    write_job(root, meta(1003, 1700000000, jobState="stopped"))
    registry = ClusterRegistry.from_archive(archive)
    rc = RowConverter(JobConverter(registry))
    by_dir = _load_l1(rc, "imp", 1, str(root / "imp" / "1"))
    by_key = _load_keys(rc, archive, archive.job_keys())
    assert by_dir.rows == by_key.rows and len(by_dir.rows) == 2
    assert by_dir.tags == by_key.tags == [(0, "app", "big")]
    assert (
        len(by_dir.errors) == len(by_key.errors) == 1
        and "not a valid job state: 'stopped'" in by_dir.errors[0]
    )
    repo = await open_repository("sqlite3", str(tmp_path / "big.db"))
    try:
        assert (await init_db(repo, archive, registry, progress=False))[:2] == (2, 1)
        (big,) = [j for j in await all_jobs(repo) if j.job_id == 1001]
        assert big.meta_data == {"jobScript": script}
    finally:
        await repo.close()


@pytest.mark.asyncio
async def test_sqlite_insert_job_rows_duplicates_and_tags(tmp_path: Path) -> None:
    from ccbackend.importer import RowConverter

    archive = new_archive(tmp_path / "archive")
    rc = RowConverter(JobConverter(ClusterRegistry.from_archive(archive)))
    repo = await open_repository("sqlite3", str(tmp_path / "rows.db"))
    try:
        rows = [rc.from_dict(meta(i, 1700000000), "imp", i, 1700000000, "m")[0] for i in (1, 2, 3)]
        assert await repo.insert_job_rows(rows[:1], [(0, "app", "vasp")]) == [1]
        # a batch with a row already stored and a repeated row: the batch falls back to one by one
        ids = await repo.insert_job_rows([rows[1], rows[0], rows[2], rows[2]],
                                         [(0, "app", "vasp"), (1, "app", "vasp"), (2, "app", "gromacs"),
                                          (3, "app", "lammps")])  # fmt: skip
        assert ids == [2, None, 3, None]
        assert {(t.type, t.name, t.scope) for t in await repo.list_tags()} == {("app", "vasp", "global"),
                                                                               ("app", "gromacs", "global")}  # fmt: skip
        tags = await repo.job_tags([1, 2, 3])
        assert {i: [t.name for t in ts] for i, ts in tags.items()} == {
            1: ["vasp"],
            2: ["vasp"],
            3: ["gromacs"],
        }
        assert await repo.insert_job_rows([], []) == []
        # the CHECK constraints hold although the batch skips SQLite's own (slow) evaluation of them
        from ccbackend.repository import RepositoryError
        from ccbackend.repository._query import INSERT_COLUMNS

        for col, bad in (("job_state", "stopped"), ("shared", "exclusive"), ("monitoring_status", 7)):
            row = list(rc.from_dict(meta(9, 1700000000), "imp", 9, 1700000000, "m")[0])
            row[INSERT_COLUMNS.index(col)] = bad
            with pytest.raises(RepositoryError, match=f"CHECK constraint failed: {col}"):
                await repo.insert_job_rows([rows[2], tuple(row)], [])
        assert len(await all_jobs(repo)) == 3  # nothing of the refused batches went in
        job = await repo.get_job(3)
        assert job is not None and (job.job_id, job.monitoring_status, job.footprint) == (
            3, 3, {"cpu_load_avg": 1.5, "mem_used_avg": 10.25})  # fmt: skip
    finally:
        await repo.close()


@pytest.mark.asyncio
async def test_sqlite_bulk_import_uses_a_rollback_journal_only_while_alone(tmp_path: Path) -> None:
    import sqlite3

    from ccbackend.importer import RowConverter

    archive = new_archive(tmp_path / "archive")
    rc = RowConverter(JobConverter(ClusterRegistry.from_archive(archive)))
    rows = [rc.from_dict(meta(i, 1700000000), "imp", i, 1700000000, "m")[0] for i in (1, 2, 3)]
    db = tmp_path / "bulk.db"
    repo = await open_repository("sqlite3", str(db))

    def mode() -> str:
        c = sqlite3.connect(db)
        try:
            return str(c.execute("PRAGMA journal_mode").fetchone()[0])
        finally:
            c.close()

    try:
        assert mode() == "wal"
        async with repo.bulk_import():
            assert mode() == "delete"
            assert await repo.insert_job_rows(rows[:2], []) == [1, 2]
        assert mode() == "wal"
        assert [j.job_id for j in await all_jobs(repo)] == [1, 2]
        # another connection (another process, say) has the database open: WAL stays, the import works
        other = sqlite3.connect(db)
        other.execute("SELECT count(*) FROM job").fetchone()
        try:
            async with repo.bulk_import():
                assert mode() == "wal"
                assert await repo.insert_job_rows(rows[2:], []) == [3]
        finally:
            other.close()
        assert mode() == "wal" and len(await all_jobs(repo)) == 3
        # an import that fails half-way still rebuilds the indexes and returns to WAL
        with pytest.raises(RuntimeError):
            async with repo.bulk_import():
                raise RuntimeError("disk full")
        assert mode() == "wal"
        c = sqlite3.connect(db)
        n = c.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'job'"
        ).fetchone()[0]
        c.close()
        assert n > 50
    finally:
        await repo.close()


def test_load_l1_reads_a_large_directory_with_reader_threads_in_order(tmp_path: Path) -> None:
    """A `<jobId // 1000>` directory with many jobs is read by several threads; rows keep the
    directory order and every broken job is reported once."""
    from ccbackend import importer
    from ccbackend.importer import RowConverter, _load_l1

    root = tmp_path / "archive"
    archive = new_archive(root)
    for i in range(1, 61):
        write_job(root, meta(1000 + i, 1700000000 + i))
    write_job(root, meta(1000 + 61, 1700000100), start_dir=1700000100)
    (root / "imp" / "1" / "007" / str(1700000007) / "meta.json").write_bytes(b"{not json")
    (root / "imp" / "1" / "011" / str(1700000011) / "meta.json").unlink()
    (root / "imp" / "1" / "012" / "notanumber").mkdir()  # ignored, as upstream
    rc = RowConverter(JobConverter(ClusterRegistry.from_archive(archive)))
    assert 61 >= 2 * importer._READERS  # the threaded path
    batch = _load_l1(rc, "imp", 1, str(root / "imp" / "1"))
    got = [r[0] for r in batch.rows]
    assert got == [1000 + i for i in range(1, 62) if i not in (7, 11)]
    assert len(batch.errors) == 2
    assert any("1/007/" in e for e in batch.errors) and any(
        "011" in e and "no meta.json" in e for e in batch.errors
    )
