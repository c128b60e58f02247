"""The Repository contract, run against SQLite and PostgreSQL alike (one fresh database per test)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ccbackend.model import BadRequest, Job, User
from ccbackend.repository import (
    DuplicateJobError,
    JobFilter,
    NodeStateRow,
    Order,
    Repository,
    RepositoryError,
    open_repository,
)
from tests.conftest import DATA, missing_service, port_open

JOBS_FILE = DATA / "backend" / "db" / "jobs.json"
NOW = 1700030000


def load_jobs() -> list[Job]:
    return [Job.model_validate(d) for d in orjson.loads(JOBS_FILE.read_bytes())]


async def _pg_repo(dsn: str) -> tuple[Repository, Any]:
    import asyncpg

    schema = f"ccrepo_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in dsn else "?"
    try:
        repo = await open_repository("postgres", f"{dsn}{sep}search_path={schema}")
    except RepositoryError as e:
        missing_service(f"PostgreSQL not usable: {e}")

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    return repo, drop


@pytest.fixture(params=["sqlite", "postgres"])
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repository]:
    if request.param == "sqlite":
        r = await open_repository("sqlite3", str(tmp_path / "job.db"))
        yield r
        await r.close()
        return
    if not port_open("127.0.0.1", 5432):
        missing_service("no PostgreSQL on 127.0.0.1:5432")
    dsn = request.getfixturevalue("postgres_dsn")
    r, drop = await _pg_repo(dsn)
    yield r
    await r.close()
    await drop()


@pytest.fixture
async def filled(repo: Repository) -> tuple[Repository, list[int]]:
    ids = await repo.insert_jobs(load_jobs())
    assert all(i is not None for i in ids)
    return repo, [int(i) for i in ids if i is not None]


def job_ids(jobs: list[Job]) -> list[int]:
    return [j.job_id for j in jobs]


# ---- insert / read ------------------------------------------------------------------------------------


async def test_insert_and_get_round_trip(repo: Repository) -> None:
    src = load_jobs()[2]
    db_id = await repo.insert_job(src)
    job = await repo.get_job(db_id)
    assert job is not None and job.id == db_id
    assert (job.job_id, job.cluster, job.sub_cluster, job.partition) == (1003, "alex", "a40", "a40")
    assert (job.user, job.project, job.shared, job.job_state) == ("carol", "proj_b", "single_user", "completed")
    assert job.resources[0].hostname == "a0128" and job.resources[0].accelerators == ["00000000:E1:00.0"]
    assert job.footprint == {"flops_any_avg": 900.0, "acc_utilization_avg": 88.0}
    assert job.energy_footprint == {"acc_power": 2.5, "cpu_power": 0.5}
    assert job.meta_data == {"jobName": "train_net"}
    assert (job.num_nodes, job.num_hwthreads, job.num_acc, job.energy) == (1, 16, 1, 3.0)
    assert job.tags is None  # tags come from job_tags
    assert await repo.get_job(db_id + 1000) is None


async def test_running_job_duration_is_live(repo: Repository) -> None:
    src = load_jobs()[4]
    db_id = await repo.insert_job(src)
    job = await repo.get_job(db_id)
    assert job is not None and job.job_state == "running"
    assert job.duration >= NOW - src.start_time  # computed from the clock, not the stored 0
    assert job.footprint is None and job.meta_data is None


async def test_duplicate_job_rejected(repo: Repository) -> None:
    src = load_jobs()[0]
    await repo.insert_job(src)
    with pytest.raises(DuplicateJobError, match="1001"):
        await repo.insert_job(src)
    other = src.model_copy(update={"start_time": src.start_time + 1})
    assert await repo.insert_job(other) > 0
    assert [s for _, s in await repo.start_times(1001, "fritz")] == [src.start_time, src.start_time + 1]


async def test_invalid_state_rejected(repo: Repository) -> None:
    bad = load_jobs()[0].model_copy(update={"job_state": "stopped"})
    with pytest.raises(BadRequest, match="stopped"):
        await repo.insert_job(bad)


async def test_insert_jobs_bulk_tags_and_duplicates(repo: Repository) -> None:
    jobs = load_jobs()
    ids = await repo.insert_jobs(jobs + [jobs[0]])
    assert ids[-1] is None and all(i is not None for i in ids[:-1])
    again = await repo.insert_jobs([jobs[1]])
    assert again == [None]
    tags = await repo.list_tags()
    assert {(t.type, t.name, t.scope) for t in tags} == {
        ("app", "vasp", "global"),
        ("app", "python", "global"),
        ("jobClass", "lowload", "global"),
    }
    by_job = await repo.job_tags([i for i in ids if i is not None])
    assert [t.name for t in by_job[ids[0]]] == ["vasp"]
    assert sorted(t.name for t in by_job[ids[2]]) == ["lowload", "python"]
    assert by_job[ids[1]] == []
    assert await repo.count_jobs(JobFilter()) == len(jobs)


async def test_insert_jobs_reuses_existing_tag_of_other_scope(repo: Repository) -> None:
    private = await repo.create_tag("app", "vasp", "alice")
    ids = await repo.insert_jobs([load_jobs()[0]])
    tags = (await repo.job_tags([ids[0]]))[ids[0]]
    assert [(t.id, t.scope) for t in tags] == [(private.id, "alice")]


async def test_find_job(filled: tuple[Repository, list[int]]) -> None:
    repo, ids = filled
    newest = await repo.find_job(1001)
    assert newest is not None and newest.cluster == "alex"  # the later start time wins
    on_fritz = await repo.find_job(1001, "fritz")
    assert on_fritz is not None and on_fritz.id == ids[0] and on_fritz.meta_data["jobName"] == "vasp_relax"
    assert await repo.find_job(1001, "fritz", 1700000000) is not None
    assert await repo.find_job(1001, "fritz", 1700000001) is None
    assert await repo.find_job(999999) is None


# ---- filters ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (JobFilter(), [1001, 1002, 1003, 1004, 1005, 1006, 1001, 1007]),
        (JobFilter(cluster=["alex"]), [1003, 1004, 1001]),
        (JobFilter(cluster=["alex", "fritz"], state=["running"]), [1005, 1006]),
        (JobFilter(state=["completed", "failed"]), [1001, 1002, 1003]),
        (JobFilter(user=["alice"]), [1001, 1006, 1001]),
        (JobFilter(project=["proj_b"]), [1003, 1004]),
        (JobFilter(partition=["singlenode"]), [1001, 1006, 1007]),
        (JobFilter(sub_cluster=["a40"]), [1003, 1001]),
        (JobFilter(job_id=[1001]), [1001, 1001]),
        (JobFilter(array_job_id=77), [1006, 1001]),
        (JobFilter(shared="single_user"), [1003]),
        (JobFilter(start_time=(1700003600, 1700010800)), [1002, 1003, 1004]),
        (JobFilter(start_time=(None, 1700003600)), [1001, 1002]),
        (JobFilter(duration=(3600, None), state=["completed", "timeout"]), [1001, 1003, 1004]),
        (JobFilter(num_nodes=(2, 2)), [1004, 1006]),
        (JobFilter(num_hwthreads=(100, 200)), [1005, 1006]),
        (JobFilter(num_acc=(1, None)), [1003, 1004, 1001]),
        (JobFilter(energy=(1.0, 5.0)), [1001, 1003]),
        (JobFilter(footprint={"flops_any_avg": (100, 1000)}), [1001, 1003]),
        (JobFilter(footprint={"mem_bw_avg": (None, 50.0), "flops_any_avg": (50, None)}), [1001]),
        (JobFilter(footprint={"acc_utilization_avg": (0, None)}), [1003]),
        (JobFilter(node="f01"), [1001, 1006]),
        (JobFilter(node="F02"), [1002]),
        (JobFilter(node="a05"), [1004]),
        (JobFilter(user_contains="ALI"), [1001, 1006, 1001]),
        (JobFilter(project_contains="proj_"), [1001, 1002, 1003, 1004, 1005, 1006, 1001]),
        (JobFilter(job_name_contains="RELAX"), [1001]),
        (JobFilter(visible_users=["bob"], visible_projects=["proj_b"]), [1002, 1003, 1004]),
        (JobFilter(visible_users=["alice"]), [1001, 1006, 1001]),
        (JobFilter(visible_users=[], visible_projects=[]), []),
        (JobFilter(ids=[]), []),
        (JobFilter(min_running_for=10**9), [1001, 1002, 1003, 1004, 1001, 1007]),
        (JobFilter(min_running_for=10), [1001, 1002, 1003, 1004, 1005, 1006, 1001, 1007]),
    ],
)
async def test_filters(filled: tuple[Repository, list[int]], flt: JobFilter, expected: list[int]) -> None:
    repo, _ = filled
    jobs = await repo.list_jobs(flt, Order("start_time", descending=False))
    assert job_ids(jobs) == expected
    assert await repo.count_jobs(flt) == len(expected)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        # SQL metacharacters are matched literally, never as SQL or LIKE wildcards
        (JobFilter(user_contains="' OR 1=1 --"), []),
        (JobFilter(user=["' OR 1=1 --"]), []),
        (JobFilter(cluster=["fritz' OR '1'='1"]), []),
        (JobFilter(user_contains="'"), [1004]),
        (JobFilter(user_contains="o'b"), [1004]),
        (JobFilter(user_contains="%"), []),
        (JobFilter(project_contains="%"), [1007]),
        (JobFilter(project_contains="0%"), [1007]),
        (JobFilter(user_contains="_"), [1007]),
        (JobFilter(user_contains="e_x"), [1007]),
        (JobFilter(user_contains="e_"), [1007]),
        (JobFilter(user_contains="a_i"), []),
        (JobFilter(job_name_contains="0%_d"), [1002]),
        (JobFilter(job_name_contains="%"), [1002]),
        (JobFilter(job_name_contains="h_u"), [1004]),
        (JobFilter(job_name_contains="\\"), []),
        (JobFilter(node="%"), []),
        (JobFilter(node="_"), []),
        (JobFilter(node="' OR 1=1 --"), []),
    ],
)
async def test_filters_treat_metacharacters_literally(
    filled: tuple[Repository, list[int]], flt: JobFilter, expected: list[int]
) -> None:
    repo, _ = filled
    assert job_ids(await repo.list_jobs(flt, Order("start_time", descending=False))) == expected


async def test_tag_filter(filled: tuple[Repository, list[int]]) -> None:
    repo, ids = filled
    tags = {t.name: t.id for t in await repo.list_tags()}
    assert job_ids(await repo.list_jobs(JobFilter(tags=[tags["vasp"]]))) == [1001]
    both = await repo.list_jobs(JobFilter(tags=[tags["vasp"], tags["python"], tags["lowload"]]))
    assert sorted(job_ids(both)) == [1001, 1003]  # each job once, even with two matching tags
    assert await repo.count_jobs(JobFilter(tags=[tags["vasp"], tags["python"], tags["lowload"]])) == 2


async def test_invalid_footprint_key_and_sort_field(filled: tuple[Repository, list[int]]) -> None:
    repo, _ = filled
    with pytest.raises(BadRequest, match="footprint key"):
        await repo.list_jobs(JobFilter(footprint={"x') OR 1=1 --": (0, 1)}))
    with pytest.raises(BadRequest, match="sorting field"):
        await repo.list_jobs(JobFilter(), Order("start_time; DROP TABLE job"))
    with pytest.raises(BadRequest, match="sorting field"):
        await repo.list_jobs(JobFilter(), Order("resources"))
    with pytest.raises(BadRequest, match="footprint key"):
        await repo.list_jobs(JobFilter(), Order("footprint:a.b"))
    assert await repo.count_jobs(JobFilter()) == 8


# ---- ordering and pagination -----------------------------------------------------------------------------


async def test_default_order_and_pagination(filled: tuple[Repository, list[int]]) -> None:
    repo, _ = filled
    all_desc = await repo.list_jobs(JobFilter())
    assert [j.start_time for j in all_desc] == sorted((j.start_time for j in all_desc), reverse=True)
    pages = [await repo.list_jobs(JobFilter(), limit=3, offset=o) for o in (0, 3, 6)]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [j.id for p in pages for j in p] == [j.id for j in all_desc]
    assert await repo.list_jobs(JobFilter(), limit=5, offset=100) == []
    assert len(await repo.list_jobs(JobFilter(), offset=6)) == 2
    with pytest.raises(BadRequest):
        await repo.list_jobs(JobFilter(), limit=-1)


@pytest.mark.parametrize(
    ("field", "descending", "expected"),
    [
        ("duration", True, [1004, 1003, 1001]),
        ("numNodes", True, [1002, 1006, 1004]),  # ties: newest DB id first
        ("num_hwthreads", False, [1003, 1001, 1004]),
        ("energy", True, [1004, 1003, 1001]),
        ("user", False, [1001, 1006, 1001]),
        ("jobId", True, [1007, 1006, 1005]),
        ("footprint:flops_any_avg", True, [1004, 1003, 1001]),
        ("footprint:mem_bw_avg", False, [1002, 1001, 1007]),
    ],
)
async def test_order_by(
    filled: tuple[Repository, list[int]], field: str, descending: bool, expected: list[int]
) -> None:
    repo, _ = filled
    flt = JobFilter(state=["completed", "failed", "timeout", "running", "cancelled", "out_of_memory"])
    jobs = await repo.list_jobs(flt, Order(field, descending), limit=3)
    assert job_ids(jobs) == expected


async def test_meta_data_only_on_request(filled: tuple[Repository, list[int]]) -> None:
    repo, ids = filled
    [plain] = await repo.list_jobs(JobFilter(ids=[ids[0]]))
    [full] = await repo.list_jobs(JobFilter(ids=[ids[0]]), with_meta_data=True)
    assert plain.meta_data is None
    assert full.meta_data == {"jobName": "vasp_relax", "jobScript": "#!/bin/bash\nsrun vasp"}


# ---- updates -------------------------------------------------------------------------------------------------


async def test_stop_archive_and_updates(filled: tuple[Repository, list[int]]) -> None:
    repo, ids = filled
    running = ids[4]
    await repo.stop_job(running, "completed", 1234, 1)
    job = await repo.get_job(running)
    assert job is not None and (job.job_state, job.duration, job.monitoring_status) == ("completed", 1234, 1)
    with pytest.raises(BadRequest):
        await repo.stop_job(running, "stopped", 1, 1)
    await repo.update_archived(running, {"cpu_load_avg": 3.5}, {"cpu_power": 0.25}, 0.25, 3)
    job = await repo.get_job(running)
    assert job is not None
    assert (job.footprint, job.energy_footprint, job.energy, job.monitoring_status) == (
        {"cpu_load_avg": 3.5},
        {"cpu_power": 0.25},
        0.25,
        3,
    )
    await repo.set_monitoring_status(running, 2)
    await repo.update_footprint(running, {"flops_any_avg": 7.0})
    job = await repo.get_job(running)
    assert job is not None and job.monitoring_status == 2 and job.footprint == {"flops_any_avg": 7.0}


async def test_update_running_durations(filled: tuple[Repository, list[int]]) -> None:
    repo, ids = filled
    assert await repo.update_running_durations(1700020000) == 2
    # the stored value is visible where jobs are sorted by duration (reads compute it live)
    jobs = await repo.list_jobs(JobFilter(state=["running"]), Order("duration", True))
    assert job_ids(jobs) == [1005, 1006]


async def test_set_meta_data_merges(filled: tuple[Repository, list[int]]) -> None:
    repo, ids = filled
    merged = await repo.set_meta_data(ids[0], "jobScript", "new")
    assert merged == {"jobName": "vasp_relax", "jobScript": "new"}
    assert await repo.set_meta_data(ids[4], "k", "v") == {"k": "v"}  # stored JSON null
    job = await repo.get_job(ids[0])
    assert job is not None and job.meta_data == merged
    with pytest.raises(RepositoryError, match="not found"):
        await repo.set_meta_data(10**9, "k", "v")


async def test_running_jobs_used_nodes_walltime(filled: tuple[Repository, list[int]]) -> None:
    repo, ids = filled
    assert job_ids(await repo.running_jobs()) == [1005, 1006]
    assert job_ids(await repo.running_jobs("alex")) == []
    assert await repo.used_nodes(1700020000) == {"fritz": ["f0101", "f0102", "f1101"]}
    assert await repo.used_nodes(1700015000) == {"fritz": ["f1101"]}
    assert await repo.used_nodes(1700000000) == {}
    # 1005: walltime 600, started 1700014400 -> exceeded at 1700015000 + grace
    assert await repo.stop_jobs_exceeding_walltime(1700015000, 100) == 0
    assert await repo.stop_jobs_exceeding_walltime(1700015100, 60) == 1
    job = await repo.get_job(ids[4])
    assert job is not None and (job.job_state, job.duration, job.monitoring_status) == ("failed", 0, 2)
    assert job_ids(await repo.running_jobs()) == [1006]  # walltime 0 = unknown, never stopped


# ---- deletes ---------------------------------------------------------------------------------------------------


async def test_delete_job_cascades_to_jobtag(filled: tuple[Repository, list[int]]) -> None:
    repo, ids = filled
    assert await repo.delete_job(ids[2]) == 1
    assert await repo.delete_job(ids[2]) == 0
    assert await repo.get_job(ids[2]) is None
    assert (await repo.job_tags([ids[2]]))[ids[2]] == []
    assert len(await repo.list_tags()) == 3  # tags survive


@pytest.mark.parametrize(
    ("omit", "deleted", "left"),
    [
        ("none", 4, [1005, 1006, 1001, 1007]),
        ("all", 2, [1001, 1003, 1005, 1006, 1001, 1007]),
        ("user", 3, [1001, 1005, 1006, 1001, 1007]),
    ],
)
async def test_delete_jobs_before(
    filled: tuple[Repository, list[int]], omit: str, deleted: int, left: list[int]
) -> None:
    repo, ids = filled
    # 1003 has an app tag and a jobClass tag; 1001 a user-defined one after this:
    tag = await repo.create_tag("mine", "keep", "alice")
    await repo.attach_tag(ids[0], tag.id)
    assert await repo.delete_jobs_before(1700014400, omit) == deleted
    assert job_ids(await repo.list_jobs(JobFilter(), Order("start_time", False))) == left


async def test_delete_jobs_before_rejects_unknown_mode(filled: tuple[Repository, list[int]]) -> None:
    repo, _ = filled
    with pytest.raises(BadRequest, match="omit-tagged"):
        await repo.delete_jobs_before(1700014400, "some")
    assert await repo.count_jobs(JobFilter()) == 8


async def test_delete_all_jobs(filled: tuple[Repository, list[int]]) -> None:
    repo, _ = filled
    await repo.delete_all_jobs()
    assert await repo.count_jobs(JobFilter()) == 0
    assert await repo.list_tags() == []


# ---- tags ------------------------------------------------------------------------------------------------------


async def test_tags_scopes_and_links(filled: tuple[Repository, list[int]]) -> None:
    repo, ids = filled
    t = await repo.create_tag("review", "interesting", "")
    assert t.scope == "global" and t.id > 0
    assert await repo.find_tag("review", "interesting", "global") == t
    assert await repo.find_tag("review", "interesting", "") == t
    assert await repo.find_tag("review", "interesting", "admin") is None
    with pytest.raises(RepositoryError, match="already exists"):
        await repo.create_tag("review", "interesting", "admin")  # UNIQUE(type, name) ignores the scope
    priv = await repo.create_tag("review", "mine", "bob")
    assert (await repo.find_tag("review", "mine", "bob")) == priv
    await repo.attach_tag(ids[1], t.id)
    await repo.attach_tag(ids[1], priv.id)
    with pytest.raises(RepositoryError, match="already attached"):
        await repo.attach_tag(ids[1], t.id)
    with pytest.raises(RepositoryError):
        await repo.attach_tag(10**9, t.id)
    assert [x.name for x in (await repo.job_tags([ids[1]]))[ids[1]]] == ["interesting", "mine"]
    await repo.detach_tag(ids[1], priv.id)
    assert [x.name for x in (await repo.job_tags([ids[1]]))[ids[1]]] == ["interesting"]
    await repo.delete_tag(t.id)
    assert (await repo.job_tags([ids[1]]))[ids[1]] == []
    assert await repo.find_tag("review", "interesting", "global") is None
    assert [x.name for x in await repo.list_tags()][-1] == "mine"


async def test_job_tags_many_ids(filled: tuple[Repository, list[int]]) -> None:
    repo, ids = filled
    many = list(range(1, 1200)) + ids
    out = await repo.job_tags(many)
    assert [t.name for t in out[ids[0]]] == ["vasp"]
    assert out[999] == []


# ---- users and configuration ------------------------------------------------------------------------------------


async def test_users(repo: Repository) -> None:
    u = User(username="demo", name="Demo User", email="d@x", roles=["admin", "api"], projects=[], password="$2a$10$x")
    await repo.add_user(u)
    with pytest.raises(RepositoryError, match="already exists"):
        await repo.add_user(u)
    got = await repo.get_user("demo")
    assert got == u
    tok = User(username="svc", roles=["api"], auth_source=2)
    await repo.add_user(tok)
    assert await repo.get_user("svc") == tok
    u2 = u.model_copy(update={"roles": ["manager"], "projects": ["proj_a", "proj_b"], "auth_source": 1, "email": ""})
    await repo.update_user(u2)
    assert await repo.get_user("demo") == u2
    with pytest.raises(RepositoryError, match="does not exist"):
        await repo.update_user(User(username="nobody"))
    assert [x.username for x in await repo.list_users()] == ["demo", "svc"]
    assert await repo.delete_user("svc") == 1
    assert await repo.delete_user("svc") == 0
    assert await repo.get_user("svc") is None


async def test_user_config(repo: Repository) -> None:
    await repo.add_user(User(username="alice", roles=["user"]))
    assert await repo.user_config("alice") == {}
    await repo.set_user_config("alice", "plotConfiguration_plotsPerRow", 3)
    await repo.set_user_config("alice", "metricConfig_jobListMetrics:fritz", ["flops_any", "mem_bw"])
    await repo.set_user_config("alice", "plotConfiguration_plotsPerRow", 4)
    assert await repo.user_config("alice") == {
        "metricConfig_jobListMetrics:fritz": ["flops_any", "mem_bw"],
        "plotConfiguration_plotsPerRow": 4,
    }
    with pytest.raises(RepositoryError, match="does not exist"):
        await repo.set_user_config("ghost", "k", 1)
    await repo.delete_user("alice")
    assert await repo.user_config("alice") == {}  # cascaded


# ---- nodes --------------------------------------------------------------------------------------------------------


async def test_node_states(repo: Repository) -> None:
    rows = [
        NodeStateRow("f0101", "fritz", "main", 100, "idle", "full"),
        NodeStateRow("f0102", "fritz", "main", 100, "allocated", "partial", '{"missing":["mem_bw"]}', 1, 72, 1000),
        NodeStateRow("a0101", "alex", "a40", 100, "down", "full", meta_data={"rack": "r1"}),
    ]
    await repo.add_node_states(rows)
    await repo.add_node_states(
        [
            NodeStateRow("f0101", "fritz", "main", 200, "mixed", "failed", "", 2, 36, 500, 0),
            NodeStateRow("f0102", "fritz", "main", 50, "idle", "full"),  # older report: not the latest
        ]
    )
    latest = await repo.latest_node_states()
    assert [(r.cluster, r.hostname, r.time_stamp, r.node_state, r.health_state) for r in latest] == [
        ("alex", "a0101", 100, "down", "full"),
        ("fritz", "f0101", 200, "mixed", "failed"),
        ("fritz", "f0102", 100, "allocated", "partial"),
    ]
    f0102 = latest[2]
    assert (f0102.jobs_running, f0102.cpus_allocated, f0102.memory_allocated) == (1, 72, 1000)
    assert f0102.health_metrics == '{"missing":["mem_bw"]}' and f0102.sub_cluster == "main"
    assert latest[0].meta_data == {"rack": "r1"}
    assert [r.hostname for r in await repo.latest_node_states("fritz")] == ["f0101", "f0102"]
    with pytest.raises(RepositoryError):
        await repo.add_node_states([NodeStateRow("x", "fritz", "main", 1, "sleeping", "full")])
    assert len(await repo.latest_node_states()) == 3  # the failed batch left nothing behind


# ---- engine specifics -------------------------------------------------------------------------------------------------


async def test_optimize_keeps_data(filled: tuple[Repository, list[int]]) -> None:
    repo, _ = filled
    await repo.optimize()
    assert await repo.count_jobs(JobFilter()) == 8


async def test_sqlite_close_checkpoints_wal(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    repo = await open_repository("sqlite", str(path))
    await repo.insert_jobs(load_jobs())
    assert (tmp_path / "job.db-wal").exists()
    await repo.close()
    wal = tmp_path / "job.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM job").fetchone()[0] == 8
        # JSON columns are written as TEXT
        assert {r[0] for r in conn.execute("SELECT DISTINCT typeof(resources) FROM job")} == {"text"}
        assert conn.execute("SELECT count(*) FROM job WHERE footprint IS NULL").fetchone()[0] == 0
    finally:
        conn.close()
    with pytest.raises(RepositoryError, match="closed"):
        await repo.count_jobs(JobFilter())


async def test_sqlite_moves_job_cache_rows_on_open(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    repo = await open_repository("sqlite3", str(path))
    await repo.insert_job(load_jobs()[0])
    await repo.close()
    conn = sqlite3.connect(path)
    cols = "job_id, cluster, subcluster, start_time, hpc_user, project, duration, walltime, job_state, resources, "
    cols += "num_nodes, shared, footprint"
    values = "(?, 'fritz', 'main', ?, 'u', 'p', 0, 0, 'running', '[{\"hostname\":\"f1\"}]', 1, 'none', 'null')"
    conn.execute(f"INSERT INTO job_cache ({cols}) VALUES {values}", (4242, 1700000500))
    conn.execute(f"INSERT INTO job_cache ({cols}) VALUES {values}", (1001, 1700000000))  # already in job
    conn.commit()
    conn.close()
    repo = await open_repository("sqlite3", str(path), options={"busy-timeout-ms": 1000, "cache-size-mb": 16})
    try:
        assert sorted(job_ids(await repo.list_jobs(JobFilter()))) == [1001, 4242]
    finally:
        await repo.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM job_cache").fetchone()[0] == 0
    conn.close()


async def test_unknown_driver_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="mysql"):
        await open_repository("mysql", "x")
    with pytest.raises(RepositoryError, match="busy-timeout-ms"):
        await open_repository("sqlite3", str(tmp_path / "a.db"), options={"busy-timeout-ms": "soon"})
    with pytest.raises(RepositoryError, match="does not exist"):
        await open_repository("sqlite3", str(tmp_path / "missing" / "a.db"))
    # upstream's db-config keys, dashed or as the config model dumps them; values <= 0 keep the default
    for opts in ({"cache-size-mb": 0, "busy-timeout-ms": -1}, {"cache_size_mb": 64, "max_open_connections": 2}):
        repo = await open_repository("sqlite3", str(tmp_path / "b.db"), options=opts)
        pragma = await repo._read(  # type: ignore[attr-defined]
            lambda c: (c.execute("PRAGMA busy_timeout").fetchone()[0], c.execute("PRAGMA cache_size").fetchone()[0])
        )
        assert pragma == ((60000, -2048 * 1024) if "busy-timeout-ms" in opts else (60000, -64 * 1024))
        await repo.close()


async def test_bulk_import_rebuilds_indexes(repo: Repository) -> None:
    before = await _job_indexes(repo)
    assert len(before) >= 15
    async with repo.bulk_import():  # type: ignore[attr-defined]
        assert await _job_indexes(repo) == set()
        ids = await repo.insert_jobs(load_jobs())
    assert await _job_indexes(repo) == before
    assert None not in ids and await repo.count_jobs(JobFilter(cluster=["alex"])) == 3
    with pytest.raises(RuntimeError):
        async with repo.bulk_import():  # type: ignore[attr-defined]
            raise RuntimeError("import failed")
    assert await _job_indexes(repo) == before  # rebuilt even when the import failed


async def _job_indexes(repo: Repository) -> set[str]:
    """Names of the job indexes that do not back a constraint."""
    if repo.engine == "sqlite":
        path = repo.path  # type: ignore[attr-defined]
        conn = sqlite3.connect(path)
        try:
            rows = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'job' AND sql IS NOT NULL"
            ).fetchall()
        finally:
            conn.close()
        return {r[0] for r in rows}
    rows = await repo._pool.fetch(  # type: ignore[attr-defined]
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'job' "
        "AND indexname LIKE 'jobs\\_%'"
    )
    return {r[0] for r in rows}


async def test_missing_indexes_recreated_on_open(repo: Repository) -> None:
    before = await _job_indexes(repo)
    if repo.engine == "sqlite":
        path = repo.path  # type: ignore[attr-defined]
        await repo.close()
        conn = sqlite3.connect(path)
        conn.execute("DROP INDEX jobs_running_user_stats")
        conn.execute("DROP INDEX jobs_starttime")
        conn.commit()
        conn.close()
        again = await open_repository("sqlite3", path)
    else:
        await repo._pool.execute("DROP INDEX jobs_running_user_stats")  # type: ignore[attr-defined]
        await repo._pool.execute("DROP INDEX jobs_starttime")  # type: ignore[attr-defined]
        again = await open_repository("postgres", repo.dsn)  # type: ignore[attr-defined]
    try:
        assert await _job_indexes(again) == before
    finally:
        await again.close()


async def test_concurrent_reads_and_writes(repo: Repository) -> None:
    base = load_jobs()[0]
    jobs = [base.model_copy(update={"job_id": 50000 + i, "start_time": 1700000000 + i}) for i in range(40)]

    async def write(j: Job) -> int:
        return await repo.insert_job(j)

    async def read() -> int:
        return await repo.count_jobs(JobFilter(cluster=["fritz"]))

    results = await asyncio.gather(*(write(j) for j in jobs), *(read() for _ in range(40)))
    ids = results[:40]
    assert len(set(ids)) == 40
    assert all(0 <= n <= 40 for n in results[40:])
    assert await repo.count_jobs(JobFilter(cluster=["fritz"])) == 40
