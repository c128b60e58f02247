"""Schema versions and migrations: fresh databases, upstream's version-10 job.db, revert, refusals, force."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest

from ccbackend.repository import (
    SCHEMA_VERSION,
    JobFilter,
    Order,
    SchemaVersionError,
    force_db,
    migrate_db,
    open_repository,
    revert_db,
)
from tests.conftest import DATA, missing_service, port_open, upstream_fixture

V8_SQL = DATA / "backend" / "db" / "v8_schema.sql"

# Upstream's index names after migration 11 (besides the automatic ones of UNIQUE/PRIMARY KEY).
V11_JOB_INDEXES = {
    "jobs_cluster_user",
    "jobs_cluster_project",
    "jobs_cluster_subcluster",
    "jobs_cluster_numnodes",
    "jobs_cluster_numhwthreads",
    "jobs_cluster_numacc",
    "jobs_cluster_energy",
    "jobs_cluster_duration_starttime",
    "jobs_cluster_starttime_duration",
    "jobs_cluster_partition_user",
    "jobs_cluster_partition_project",
    "jobs_cluster_partition_jobstate",
    "jobs_cluster_partition_shared",
    "jobs_cluster_partition_duration_starttime",
    "jobs_cluster_partition_starttime_duration",
    "jobs_cluster_jobstate_starttime_duration",
    "jobs_cluster_jobstate_duration_starttime",
    "jobs_cluster_shared_user",
    "jobs_cluster_shared_project",
    "jobs_cluster_shared_starttime_duration",
    "jobs_cluster_shared_duration_starttime",
    "jobs_user_starttime_duration",
    "jobs_user_duration_starttime",
    "jobs_project_user",
    "jobs_project_starttime_duration",
    "jobs_project_duration_starttime",
    "jobs_jobstate_user",
    "jobs_jobstate_project",
    "jobs_jobstate_starttime_duration",
    "jobs_jobstate_duration_starttime",
    "jobs_shared_user",
    "jobs_shared_project",
    "jobs_shared_starttime_duration",
    "jobs_shared_duration_starttime",
    "jobs_arrayjobid_starttime",
    "jobs_duration_starttime",
    "jobs_numnodes_starttime",
    "jobs_numhwthreads_starttime",
    "jobs_numacc_starttime",
    "jobs_energy_starttime",
    "jobs_starttime_duration",
    "jobs_numnodes_duration",
    "jobs_numhwthreads_duration",
    "jobs_numacc_duration",
    "jobs_energy_duration",
    "jobs_starttime",
    "jobs_cluster_user_starttime_stats",
    "jobs_cluster_project_starttime_stats",
    "jobs_cluster_jobstate_user_stats",
    "jobs_cluster_jobstate_project_stats",
    "jobs_cluster_jobstate_subcluster_stats",
    "jobs_running_user_stats",
    "jobs_running_project_stats",
    "jobs_running_subcluster_stats",
}
V11_OTHER_INDEXES = {
    "nodes_cluster",
    "nodes_cluster_subcluster",
    "nodestates_timestamp",
    "nodestates_state_timestamp",
    "nodestates_health_timestamp",
    "nodestates_nodeid_state",
    "nodestates_nodeid_health",
    "nodestates_nodeid_timestamp",
    "tags_jobid",
    "tags_tagid",
    "version_unique",
}
# What -revert-db brings back (upstream's 11 down).
V10_RESTORED = {
    "jobs_cluster_jobstate_user",
    "jobs_cluster_jobstate_project",
    "jobs_cluster_partition_numnodes",
    "jobs_cluster_jobstate_numnodes",
    "jobs_user_numnodes",
    "jobs_shared_energy",
    "jobs_cluster_arrayjobid_starttime",
    "jobs_duration",
}


def indexes(path: Path, table: str | None = None) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'"
        if table:
            return {r[0] for r in conn.execute(sql + " AND tbl_name = ?", (table,))}
        return {r[0] for r in conn.execute(sql)}
    finally:
        conn.close()


def version_row(path: Path) -> list[tuple[int, int]]:
    conn = sqlite3.connect(path)
    try:
        return [tuple(r) for r in conn.execute("SELECT version, dirty FROM schema_migrations")]
    finally:
        conn.close()


def columns(path: Path) -> dict[str, list[tuple[str, str, int]]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {
            t: [(r[1], r[2].upper(), r[3]) for r in conn.execute(f'PRAGMA table_info("{t}")')]
            for t in tables
            if t != "sqlite_stat1"
        }
    finally:
        conn.close()


def execute(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(sql)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def upstream_db(tmp_path: Path) -> Path:
    """Upstream's version-10 test database, copied with its WAL and SHM files."""
    src = upstream_fixture("cc-backend/internal/repository/testdata/job.db")
    for suffix in ("", "-wal", "-shm"):
        f = src.with_name(src.name + suffix)
        if f.exists():
            shutil.copyfile(f, tmp_path / f.name)
    return tmp_path / "job.db"


@pytest.fixture
def v8_db(tmp_path: Path) -> Path:
    path = tmp_path / "v8.db"
    execute(path, V8_SQL.read_text())
    return path


# ---- fresh databases ------------------------------------------------------------------------------------


async def test_fresh_sqlite_is_version_11_with_upstream_indexes(tmp_path: Path) -> None:
    path = tmp_path / "var" / "job.db"
    assert await migrate_db("sqlite3", str(path)) == (0, SCHEMA_VERSION)
    assert version_row(path) == [(11, 0)]
    assert indexes(path, "job") == V11_JOB_INDEXES
    assert indexes(path) == V11_JOB_INDEXES | V11_OTHER_INDEXES
    assert set(columns(path)) == {
        "configuration",
        "hpc_user",
        "job",
        "job_cache",
        "jobtag",
        "node",
        "node_state",
        "schema_migrations",
        "tag",
    }
    assert await migrate_db("sqlite3", str(path)) == (11, 11)  # already up to date


async def test_open_creates_missing_database(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    repo = await open_repository("sqlite3", str(path))
    await repo.close()
    assert version_row(path) == [(11, 0)]
    assert indexes(path, "job") == V11_JOB_INDEXES


async def test_fresh_schema_enforces_checks(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    await migrate_db("sqlite", str(path))
    conn = sqlite3.connect(path)
    try:
        base = (
            "INSERT INTO job (job_id, cluster, subcluster, start_time, hpc_user, project, duration, walltime, "
            "job_state, resources, num_nodes, shared, monitoring_status) VALUES "
        )
        conn.execute(base + "(1, 'c', 's', 1, 'u', 'p', 0, 0, 'out_of_memory', '[]', 1, 'none', 1)")
        for bad in (
            "(2, 'c', 's', 1, 'u', 'p', 0, 0, 'stopped', '[]', 1, 'none', 1)",
            "(3, 'c', 's', 1, 'u', 'p', 0, 0, 'running', '[]', 1, 'exclusive', 1)",
            "(4, 'c', 's', 1, 'u', 'p', 0, 0, 'running', '[]', 1, 'none', 4)",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                conn.execute(base + bad)
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            conn.execute(base + "(1, 'c', 's', 1, 'u', 'p', 0, 0, 'running', '[]', 1, 'none', 1)")
    finally:
        conn.close()


# ---- upstream's version-10 database ----------------------------------------------------------------------


async def test_upstream_v10_refused_then_migrated(upstream_db: Path) -> None:
    with pytest.raises(SchemaVersionError, match="schema version 10 is outdated, run -migrate-db"):
        await open_repository("sqlite3", str(upstream_db))
    assert await migrate_db("sqlite3", str(upstream_db)) == (10, 11)
    assert version_row(upstream_db) == [(11, 0)]
    assert V11_JOB_INDEXES <= indexes(upstream_db, "job")
    assert not (V10_RESTORED - {"jobs_cluster_jobstate_user", "jobs_cluster_jobstate_project"}) & indexes(upstream_db)

    repo = await open_repository("sqlite3", str(upstream_db))
    try:
        assert await repo.count_jobs(JobFilter()) == 544
        jobs = await repo.list_jobs(JobFilter(), limit=None, with_meta_data=True)
        assert len(jobs) == 544
        assert all(j.resources and j.resources[0].hostname for j in jobs)
        first = await repo.get_job(1)
        assert first is not None and (first.job_id, first.cluster, first.sub_cluster) == (679694, "alex", "a40")
        assert first.footprint is not None and first.footprint["cpu_load_avg"] == 36.87
        assert first.meta_data is not None and first.meta_data["jobName"] == "retrain_SNN"
        assert first.resources[0].hwthreads is not None and first.resources[0].accelerators == ["00000000:E1:00.0"]
        # BLOB JSON works in SQL too: footprint range/sort and node search
        top = await repo.list_jobs(JobFilter(footprint={"cpu_load_avg": (36.87, 36.87)}))
        assert 1 in [j.id for j in top]
        by_node = await repo.list_jobs(JobFilter(node="a0128"))
        assert 1 in [j.id for j in by_node]
        srt = await repo.list_jobs(JobFilter(cluster=["alex"]), Order("footprint:cpu_load_avg", True), limit=5)
        values = [j.footprint["cpu_load_avg"] for j in srt if j.footprint]
        assert values == sorted(values, reverse=True) and len(values) == 5
        tags = await repo.list_tags()
        assert ("app", "python", "demo") in {(t.type, t.name, t.scope) for t in tags}
        user = await repo.get_user("demo")
        assert user is not None and user.roles == ["admin", "api"]
        # the version-11 job_state CHECK accepts the stored spelling out_of_memory
        await repo.stop_job(2, "out_of_memory", 10, 3)
        await repo.add_node_states([])
    finally:
        await repo.close()
    conn = sqlite3.connect(upstream_db)
    try:
        assert conn.execute("SELECT typeof(resources) FROM job WHERE id = 1").fetchone()[0] == "blob"
        cols = {r[1] for r in conn.execute("PRAGMA table_info(node_state)")}
        assert "health_metrics" in cols
    finally:
        conn.close()


async def test_upstream_migrated_matches_fresh_columns(upstream_db: Path, tmp_path: Path) -> None:
    await migrate_db("sqlite3", str(upstream_db))
    fresh = tmp_path / "fresh.db"
    await migrate_db("sqlite3", str(fresh))
    a, b = columns(upstream_db), columns(fresh)
    for table in b:
        # same columns (node_state.health_metrics may sit at the end where the repair added it)
        assert sorted(c[0] for c in a[table]) == sorted(c[0] for c in b[table]), table


async def test_revert_and_migrate_again(upstream_db: Path) -> None:
    await migrate_db("sqlite3", str(upstream_db))
    assert await revert_db("sqlite3", str(upstream_db)) == (11, 10)
    assert version_row(upstream_db) == [(10, 0)]
    idx = indexes(upstream_db)
    assert V10_RESTORED <= idx
    assert not {i for i in idx if i.endswith("_stats")}
    with pytest.raises(SchemaVersionError, match="10 is outdated"):
        await open_repository("sqlite3", str(upstream_db))
    with pytest.raises(SchemaVersionError, match="10 is outdated"):
        await revert_db("sqlite3", str(upstream_db))
    assert await migrate_db("sqlite3", str(upstream_db)) == (10, 11)
    assert indexes(upstream_db, "job") >= V11_JOB_INDEXES
    repo = await open_repository("sqlite3", str(upstream_db))
    try:
        assert await repo.count_jobs(JobFilter()) == 544
    finally:
        await repo.close()


# ---- version 8 ---------------------------------------------------------------------------------------------


async def test_v8_migrates_to_11(v8_db: Path) -> None:
    assert await migrate_db("sqlite3", str(v8_db)) == (8, 11)
    assert version_row(v8_db) == [(11, 0)]
    assert indexes(v8_db, "job") == V11_JOB_INDEXES
    repo = await open_repository("sqlite3", str(v8_db))
    try:
        jobs = await repo.list_jobs(JobFilter(), Order("start_time", False), with_meta_data=True)
        assert [(j.job_id, j.shared, j.submit_time) for j in jobs] == [
            (5001, "multi_user", 0),
            (5002, "none", 0),
            (5003, "single_user", 0),
        ]
        assert jobs[0].footprint == {"flops_any_avg": 1.5, "mem_used_max": 3}
        assert jobs[0].meta_data == {"jobName": "a"} and jobs[0].energy_footprint == {"cpu_power": 0.5}
        # the table rebuild kept the tag links (no cascade while job was dropped)
        tags = await repo.job_tags([j.id for j in jobs if j.id is not None])
        assert [len(v) for v in tags.values()] == [1, 0, 1]
        assert await repo.user_config("u1") == {"plotConfiguration_plotsPerRow": 3}
        await repo.add_node_states([])
    finally:
        await repo.close()


async def test_v8_with_stopped_job_fails_and_stays_dirty(v8_db: Path) -> None:
    execute(v8_db, "UPDATE job SET job_state = 'stopped' WHERE id = 2;")
    with pytest.raises(Exception, match="CHECK"):
        await migrate_db("sqlite3", str(v8_db))
    assert version_row(v8_db) == [(9, 1)]  # like golang-migrate: dirty at the failed step
    conn = sqlite3.connect(v8_db)
    assert "exclusive" in {r[1] for r in conn.execute("PRAGMA table_info(job)")}  # step rolled back
    conn.close()
    with pytest.raises(SchemaVersionError, match="dirty.*-force-db"):
        await open_repository("sqlite3", str(v8_db))
    with pytest.raises(SchemaVersionError, match="dirty"):
        await migrate_db("sqlite3", str(v8_db))


# ---- refusals and force ---------------------------------------------------------------------------------


async def test_dirty_refused_until_forced(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    await migrate_db("sqlite3", str(path))
    execute(path, "UPDATE schema_migrations SET dirty = 1;")
    with pytest.raises(SchemaVersionError, match=r"schema version 11 is dirty.*fix the database manually, then run -force-db"):
        await open_repository("sqlite3", str(path))
    await force_db("sqlite3", str(path))
    assert version_row(path) == [(11, 0)]
    repo = await open_repository("sqlite3", str(path))
    await repo.close()


async def test_force_sets_version_without_sql(upstream_db: Path) -> None:
    before = indexes(upstream_db)
    await force_db("sqlite3", str(upstream_db))
    assert version_row(upstream_db) == [(11, 0)]
    assert indexes(upstream_db) == before  # no migration SQL ran


async def test_legacy_newer_and_too_old_refused(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.db"
    execute(legacy, "CREATE TABLE job (id INTEGER PRIMARY KEY, job_id BIGINT);")
    with pytest.raises(SchemaVersionError, match=r"legacy.*version 0"):
        await open_repository("sqlite3", str(legacy))
    with pytest.raises(SchemaVersionError, match="legacy"):
        await migrate_db("sqlite3", str(legacy))

    newer = tmp_path / "newer.db"
    await migrate_db("sqlite3", str(newer))
    execute(newer, "UPDATE schema_migrations SET version = 12;")
    with pytest.raises(SchemaVersionError, match="12 is newer than the supported version 11"):
        await open_repository("sqlite3", str(newer))
    with pytest.raises(SchemaVersionError, match="newer"):
        await migrate_db("sqlite3", str(newer))

    old = tmp_path / "old.db"
    await migrate_db("sqlite3", str(old))
    execute(old, "UPDATE schema_migrations SET version = 7;")
    with pytest.raises(SchemaVersionError, match="7 is too old"):
        await migrate_db("sqlite3", str(old))
    with pytest.raises(SchemaVersionError, match="does not exist"):
        await revert_db("sqlite3", str(tmp_path / "nothing.db"))


# ---- PostgreSQL -------------------------------------------------------------------------------------------


async def test_postgres_migrate_revert_force(request: pytest.FixtureRequest) -> None:
    if not port_open("127.0.0.1", 5432):
        missing_service("no PostgreSQL on 127.0.0.1:5432")
    import asyncpg

    base = request.getfixturevalue("postgres_dsn")
    schema = f"ccmig_{uuid.uuid4().hex[:12]}"
    dsn = f"{base}{'&' if '?' in base else '?'}search_path={schema}"
    try:
        assert await migrate_db("postgres", dsn) == (0, 11)
        assert await migrate_db("postgresql", dsn) == (11, 11)
        assert await revert_db("postgres", dsn) == (11, 10)
        with pytest.raises(SchemaVersionError, match="10 is outdated, run -migrate-db"):
            await open_repository("postgres", dsn)
        assert await migrate_db("postgres", dsn) == (10, 11)
        conn = await asyncpg.connect(base)
        try:
            names = {
                r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema)
            }
            assert {"jobs_starttime", "jobs_cluster_user_starttime_stats", "jobs_running_user_stats"} <= names
            await conn.execute(f'UPDATE "{schema}".schema_migrations SET dirty = true')
            with pytest.raises(SchemaVersionError, match="dirty"):
                await open_repository("postgres", dsn)
            await force_db("postgres", dsn)
            row = await conn.fetchrow(f'SELECT version, dirty FROM "{schema}".schema_migrations')
            assert tuple(row) == (11, False)
            repo = await open_repository("postgres", dsn)
            assert await repo.count_jobs(JobFilter()) == 0
            await repo.close()
        finally:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()
    except BaseException:
        conn = await asyncpg.connect(base)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
        raise
