"""PostgreSQL engine (asyncpg pool): upstream's logical schema with jsonb job documents, its migrations.

Table and column names are upstream's; `schema_migrations(version bigint, dirty boolean)` tracks the
version like golang-migrate does.  The schema lives in the first schema of the connection's
search_path (a DSN may carry `?search_path=name`), which the migration creates when missing.
Bulk inserts (`-init-db`) send each column as one array parameter (one statement per batch).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any, TypeVar

import asyncpg

from ..model import JOB_STATES, BadRequest, Job, JobTag, User
from . import _query as q
from .base import (
    SCHEMA_VERSION,
    DuplicateJobError,
    JobFilter,
    NodeStateRow,
    Order,
    Repository,
    RepositoryError,
    SchemaVersionError,
)

__all__ = ["PostgresRepository", "postgres_force", "postgres_migrate", "postgres_revert"]

log = logging.getLogger("ccbackend.repository")
T = TypeVar("T")

_LOCK_KEY = 0x63636261  # advisory lock serialising schema changes
_STEPS_UP = {10: "10_init.up.sql", 11: "11_indexes.up.sql"}
_STEPS_DOWN = {11: "11_indexes.down.sql"}


def _sql_file(name: str) -> str:
    return (resources.files("ccbackend.repository") / "migrations" / "postgres" / name).read_text("utf-8")


def _where(dsn: str) -> str:
    """The DSN without password, for messages."""
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return dsn


async def _connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as e:
        raise RepositoryError(f"cannot connect to PostgreSQL {_where(dsn)}: {e}") from None


# ---- schema and migrations ----------------------------------------------------------------------------


async def _ensure_schema(conn: asyncpg.Connection) -> None:
    """Create the first schema of search_path when it does not exist yet."""
    if await conn.fetchval("SELECT current_schema()") is not None:
        return
    path = await conn.fetchval("SHOW search_path")
    for part in str(path).split(","):
        name = part.strip().strip('"')
        if name and name != "$user":
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name.replace(chr(34), chr(34) * 2)}"')
            return
    raise RepositoryError("PostgreSQL: search_path names no schema to create the tables in")


async def _schema_version(conn: asyncpg.Connection) -> tuple[int, bool] | None:
    """(version, dirty), (0, False) for tables without schema_migrations, None for an empty schema."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        n = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
        return None if not n else (0, False)
    row = await conn.fetchrow("SELECT version, dirty FROM schema_migrations LIMIT 1")
    if row is None:
        return None
    return int(row[0]), bool(row[1])


async def _set_version(conn: asyncpg.Connection, version: int, dirty: bool) -> None:
    async with conn.transaction():
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL, dirty boolean NOT NULL)"
        )
        await conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version)")
        await conn.execute("DELETE FROM schema_migrations")
        await conn.execute("INSERT INTO schema_migrations (version, dirty) VALUES ($1, $2)", version, dirty)


async def _run_step(conn: asyncpg.Connection, target: int, script: str) -> None:
    await _set_version(conn, target, True)
    async with conn.transaction():
        await conn.execute(script)
    await _set_version(conn, target, False)


async def _create_fresh(conn: asyncpg.Connection) -> None:
    for target in sorted(_STEPS_UP):
        await _run_step(conn, target, _sql_file(_STEPS_UP[target]))


async def _locked(dsn: str, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    conn = await _connect(dsn)
    try:
        await _ensure_schema(conn)
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            return await fn(conn)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    except asyncpg.PostgresError as e:
        raise RepositoryError(f"PostgreSQL {_where(dsn)}: {e}") from None
    finally:
        await conn.close()


async def postgres_migrate(dsn: str) -> tuple[int, int]:
    """Create the schema or apply pending steps; returns (from, to)."""

    async def run(conn: asyncpg.Connection) -> tuple[int, int]:
        version = await _schema_version(conn)
        if version is None:
            await _create_fresh(conn)
            return 0, SCHEMA_VERSION
        v, dirty = version
        if dirty or v == 0 or v > SCHEMA_VERSION:
            q.check_version(version, _where(dsn))
        for target in range(v + 1, SCHEMA_VERSION + 1):
            await _run_step(conn, target, _sql_file(_STEPS_UP[target]))
        return v, SCHEMA_VERSION

    return await _locked(dsn, run)


async def postgres_revert(dsn: str) -> tuple[int, int]:
    async def run(conn: asyncpg.Connection) -> tuple[int, int]:
        version = await _schema_version(conn)
        q.check_version(version, _where(dsn))
        if version is None:
            raise SchemaVersionError(f"database {_where(dsn)} is empty: nothing to revert")
        await _run_step(conn, SCHEMA_VERSION - 1, _sql_file(_STEPS_DOWN[SCHEMA_VERSION]))
        return SCHEMA_VERSION, SCHEMA_VERSION - 1

    return await _locked(dsn, run)


async def postgres_force(dsn: str) -> None:
    async def run(conn: asyncpg.Connection) -> None:
        await _set_version(conn, SCHEMA_VERSION, False)

    await _locked(dsn, run)


def _v11_job_indexes() -> dict[str, str]:
    return q.job_index_statements([_sql_file(_STEPS_UP[v]) for v in sorted(_STEPS_UP)])


async def _job_index_defs(conn: asyncpg.Connection) -> dict[str, str]:
    """Name -> definition of the job indexes that do not back a constraint."""
    rows = await conn.fetch(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema() "
        "AND i.tablename = 'job' AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
        "WHERE c.conname = i.indexname AND c.connamespace = current_schema()::regnamespace)"
    )
    return {r[0]: r[1] for r in rows}


async def _ensure_job_indexes(conn: asyncpg.Connection) -> None:
    """Create missing version-11 job indexes (e.g. after an interrupted bulk import)."""
    have = await _job_index_defs(conn)
    missing = {n: s for n, s in _v11_job_indexes().items() if n not in have}
    if missing:
        log.info("creating %d missing job indexes: %s", len(missing), ", ".join(sorted(missing)))
        for stmt in missing.values():
            await conn.execute(stmt)


async def _open_check(conn: asyncpg.Connection, where: str) -> None:
    version = await _schema_version(conn)
    if version is None:
        await _create_fresh(conn)
        log.info("created PostgreSQL schema at version %d", SCHEMA_VERSION)
        return
    q.check_version(version, where)
    await _ensure_job_indexes(conn)
    cols = ", ".join(q.INSERT_COLUMNS)
    async with conn.transaction():
        moved = await conn.execute(
            f"INSERT INTO job ({cols}) SELECT {cols} FROM job_cache ON CONFLICT DO NOTHING"
        )
        await conn.execute("DELETE FROM job_cache")
    if _count(moved):
        log.info("moved %d jobs from job_cache into job", _count(moved))


def _count(status: str) -> int:
    """Row count of a command status such as 'UPDATE 3' or 'INSERT 0 3'."""
    try:
        return int(status.rsplit(" ", 1)[1])
    except (IndexError, ValueError):
        return 0


# ---- the repository ------------------------------------------------------------------------------------

_INSERT_JOB = (
    f"INSERT INTO job ({', '.join(q.INSERT_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i + 1}' for i in range(len(q.INSERT_COLUMNS)))})"
)

# One statement for a whole batch: column arrays unnested in order, duplicates of the unique key skipped.
_ARRAY_TYPES = {
    "job_id": "bigint",
    "submit_time": "bigint",
    "start_time": "bigint",
    "array_job_id": "bigint",
    "duration": "integer",
    "walltime": "integer",
    "num_nodes": "integer",
    "num_hwthreads": "integer",
    "num_acc": "integer",
    "smt": "integer",
    "monitoring_status": "smallint",
    "energy": "double precision",
}
_JSONB = {"meta_data", "resources", "energy_footprint", "footprint"}
_BULK_INSERT = (
    f"INSERT INTO job ({', '.join(q.INSERT_COLUMNS)}) SELECT "
    + ", ".join(f"u.{c}::jsonb" if c in _JSONB else f"u.{c}" for c in q.INSERT_COLUMNS)
    + " FROM unnest("
    + ", ".join(f"${i + 1}::{_ARRAY_TYPES.get(c, 'text')}[]" for i, c in enumerate(q.INSERT_COLUMNS))
    + f") AS u({', '.join(q.INSERT_COLUMNS)}) "
    "ON CONFLICT (job_id, cluster, start_time) DO NOTHING RETURNING id, job_id, cluster, start_time"
)


class PostgresRepository(Repository):
    """Repository on PostgreSQL; create with `await PostgresRepository.open(dsn, options)`."""

    engine = "postgres"

    def __init__(self, dsn: str, pool: asyncpg.Pool) -> None:
        self.dsn = dsn
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, options: dict[str, Any] | None = None) -> PostgresRepository:
        o = options or {}
        try:
            max_size = int(o.get("max-open-connections", o.get("max_open_connections", 8)) or 8)
            max_size = max_size if max_size > 0 else 8
        except (TypeError, ValueError):
            raise RepositoryError("db-config: max-open-connections must be an integer") from None

        async def setup(conn: asyncpg.Connection) -> None:
            await _open_check(conn, _where(dsn))

        await _locked(dsn, setup)
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise RepositoryError(f"cannot connect to PostgreSQL {_where(dsn)}: {e}") from None
        return cls(dsn, pool)

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], tx: bool = False) -> T:
        try:
            async with self._pool.acquire() as conn:
                if not tx:
                    return await fn(conn)
                async with conn.transaction():
                    return await fn(conn)
        except asyncpg.PostgresError as e:
            raise RepositoryError(f"database error: {e}") from e

    async def _execute(self, sql: str, *args: Any) -> int:
        return _count(await self._run(lambda c: c.execute(sql, *args)))

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._run(lambda c: c.fetch(sql, *args))

    async def close(self) -> None:
        await self._pool.close()

    async def optimize(self) -> None:
        await self._run(lambda c: c.execute("VACUUM ANALYZE"))

    @contextlib.asynccontextmanager
    async def bulk_import(self) -> AsyncIterator[None]:
        """Drop the job indexes while a large import (`-init-db`) runs and rebuild them afterwards."""

        async def drop(conn: asyncpg.Connection) -> dict[str, str]:
            saved = await _job_index_defs(conn)
            for name in saved:
                await conn.execute(f'DROP INDEX "{name}"')
            return saved

        async def rebuild(conn: asyncpg.Connection, saved: dict[str, str]) -> None:
            await conn.execute("SET maintenance_work_mem = '256MB'")
            for sql in saved.values():
                await conn.execute(sql)
            await _ensure_job_indexes(conn)
            await conn.execute("RESET maintenance_work_mem")
            await conn.execute("ANALYZE job")

        saved = await self._run(drop, tx=True)
        log.info("bulk import: dropped %d job indexes", len(saved))
        try:
            yield
        finally:
            started = time.monotonic()
            await self._run(lambda c: rebuild(c, saved))
            log.info("bulk import: rebuilt job indexes in %.1f s", time.monotonic() - started)

    # ---- jobs ---------------------------------------------------------------------------------------

    async def insert_job(self, job: Job) -> int:
        row = q.job_row(job)

        async def run(conn: asyncpg.Connection) -> int:
            try:
                return int(await conn.fetchval(_INSERT_JOB + " RETURNING id", *row))
            except asyncpg.UniqueViolationError:
                raise _duplicate(job) from None

        return await self._run(run)

    async def insert_jobs(self, jobs: list[Job]) -> list[int | None]:
        if not jobs:
            return []
        columns = [list(c) for c in zip(*(q.job_row(j) for j in jobs), strict=True)]

        async def run(conn: asyncpg.Connection) -> list[int | None]:
            inserted = await conn.fetch(_BULK_INSERT, *columns)
            by_key = {(r["job_id"], r["cluster"], r["start_time"]): int(r["id"]) for r in inserted}
            ids: list[int | None] = []
            for j in jobs:
                ids.append(by_key.pop((j.job_id, j.cluster, j.start_time), None))
            await _link_tags(conn, jobs, ids)
            return ids

        return await self._run(run, tx=True)

    async def start_times(self, job_id: int, cluster: str) -> list[tuple[int, int]]:
        rows = await self._fetch(
            "SELECT id, start_time FROM job WHERE job_id = $1 AND cluster = $2 ORDER BY start_time", job_id, cluster
        )
        return [(int(r[0]), int(r[1])) for r in rows]

    async def get_job(self, id: int) -> Job | None:
        rows = await self._fetch(f"SELECT {q.SELECT_JOB} FROM job WHERE job.id = $1", id)
        return q.job_from_row(rows[0]) if rows else None

    async def find_job(self, job_id: int, cluster: str | None = None, start_time: int | None = None) -> Job | None:
        b = q.Sql(q.POSTGRES)
        rows = await self._fetch(q.find_job_sql(b, job_id, cluster, start_time), *b.params)
        return q.job_from_row(rows[0]) if rows else None

    async def list_jobs(
        self,
        flt: JobFilter,
        order: Order | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_meta_data: bool = False,
    ) -> list[Job]:
        b = q.Sql(q.POSTGRES)
        rows = await self._fetch(q.list_jobs_sql(b, flt, order, limit, offset), *b.params)
        now = int(time.time())
        return [q.job_from_row(r, with_meta_data, now) for r in rows]

    async def count_jobs(self, flt: JobFilter) -> int:
        b = q.Sql(q.POSTGRES)
        sql = "SELECT count(*) FROM job" + q.where_clause(b, flt)
        return int(await self._run(lambda c: c.fetchval(sql, *b.params)))

    async def stop_job(self, id: int, job_state: str, duration: int, monitoring_status: int) -> None:
        if job_state not in JOB_STATES:
            raise BadRequest(f"invalid job state {job_state!r}")
        await self._execute(
            "UPDATE job SET job_state = $1, duration = $2, monitoring_status = $3 WHERE id = $4",
            job_state,
            duration,
            monitoring_status,
            id,
        )

    async def set_monitoring_status(self, id: int, status: int) -> None:
        await self._execute("UPDATE job SET monitoring_status = $1 WHERE id = $2", status, id)

    async def update_archived(
        self,
        id: int,
        footprint: dict[str, float],
        energy_footprint: dict[str, float],
        energy: float,
        monitoring_status: int,
    ) -> None:
        await self._execute(
            "UPDATE job SET footprint = $1, energy_footprint = $2, energy = $3, monitoring_status = $4 WHERE id = $5",
            q.dump_json(footprint),
            q.dump_json(energy_footprint),
            float(energy),
            monitoring_status,
            id,
        )

    async def update_footprint(self, id: int, footprint: dict[str, float]) -> None:
        await self._execute("UPDATE job SET footprint = $1 WHERE id = $2", q.dump_json(footprint), id)

    async def update_running_durations(self, now: int) -> int:
        return await self._execute("UPDATE job SET duration = $1 - start_time WHERE job_state = 'running'", now)

    async def set_meta_data(self, id: int, key: str, value: str) -> dict[str, str]:
        async def run(conn: asyncpg.Connection) -> dict[str, str]:
            row = await conn.fetchrow("SELECT meta_data FROM job WHERE id = $1 FOR UPDATE", id)
            if row is None:
                raise RepositoryError(f"job with db id {id} not found")
            meta = q.load_json(row[0]) or {}
            meta[key] = value
            await conn.execute("UPDATE job SET meta_data = $1 WHERE id = $2", q.dump_json(meta), id)
            return meta

        return await self._run(run, tx=True)

    async def delete_job(self, id: int) -> int:
        return await self._execute("DELETE FROM job WHERE id = $1", id)

    async def delete_jobs_before(self, ts: int, omit_tagged: str = "none") -> int:
        return await self._execute(
            "DELETE FROM job WHERE job.start_time < $1" + q.omit_tagged_clause(omit_tagged), ts
        )

    async def delete_all_jobs(self) -> None:
        async def run(conn: asyncpg.Connection) -> None:
            await conn.execute("DELETE FROM jobtag")
            await conn.execute("DELETE FROM tag")
            await conn.execute("DELETE FROM job")

        await self._run(run, tx=True)

    async def running_jobs(self, cluster: str | None = None) -> list[Job]:
        flt = JobFilter(state=["running"], cluster=[cluster] if cluster is not None else None)
        return await self.list_jobs(flt, Order("start_time", False), with_meta_data=True)

    async def used_nodes(self, before_ts: int) -> dict[str, list[str]]:
        rows = await self._fetch(
            "SELECT cluster, resources FROM job WHERE job_state = 'running' AND start_time < $1", before_ts
        )
        out: dict[str, set[str]] = {}
        for cluster, res in rows:
            out.setdefault(cluster, set()).update(q.hostnames(res))
        return {c: sorted(h) for c, h in sorted(out.items())}

    async def stop_jobs_exceeding_walltime(self, now: int, grace: int) -> int:
        return await self._execute(
            "UPDATE job SET job_state = 'failed', duration = 0, monitoring_status = 2 "
            "WHERE job_state = 'running' AND walltime > 0 AND start_time < $1 - walltime",
            now - grace,
        )

    # ---- tags ---------------------------------------------------------------------------------------

    async def job_tags(self, job_ids: list[int]) -> dict[int, list[JobTag]]:
        out: dict[int, list[JobTag]] = {int(i): [] for i in job_ids}
        if not job_ids:
            return out
        rows = await self._fetch(
            "SELECT jobtag.job_id, tag.id, tag.tag_type, tag.tag_name, tag.tag_scope FROM jobtag "
            "JOIN tag ON tag.id = jobtag.tag_id WHERE jobtag.job_id = ANY($1::bigint[]) ORDER BY tag.id",
            list(job_ids),
        )
        for r in rows:
            out.setdefault(int(r[0]), []).append(q.tag_from_row(tuple(r)[1:]))
        return out

    async def find_tag(self, tag_type: str, name: str, scope: str) -> JobTag | None:
        rows = await self._fetch(
            "SELECT id, tag_type, tag_name, tag_scope FROM tag WHERE tag_type = $1 AND tag_name = $2 "
            "AND tag_scope = $3",
            tag_type,
            name,
            scope or "global",
        )
        return q.tag_from_row(tuple(rows[0])) if rows else None

    async def create_tag(self, tag_type: str, name: str, scope: str) -> JobTag:
        scope = scope or "global"

        async def run(conn: asyncpg.Connection) -> JobTag:
            try:
                tid = await conn.fetchval(
                    "INSERT INTO tag (tag_type, tag_name, tag_scope) VALUES ($1, $2, $3) RETURNING id",
                    tag_type,
                    name,
                    scope,
                )
            except asyncpg.UniqueViolationError:
                raise RepositoryError(
                    f"a tag with type {tag_type!r} and name {name!r} already exists (in some scope)"
                ) from None
            return JobTag(id=int(tid), type=tag_type, name=name, scope=scope)

        return await self._run(run)

    async def list_tags(self) -> list[JobTag]:
        rows = await self._fetch("SELECT id, tag_type, tag_name, tag_scope FROM tag ORDER BY id")
        return [q.tag_from_row(tuple(r)) for r in rows]

    async def attach_tag(self, job_id: int, tag_id: int) -> None:
        async def run(conn: asyncpg.Connection) -> None:
            try:
                await conn.execute("INSERT INTO jobtag (job_id, tag_id) VALUES ($1, $2)", job_id, tag_id)
            except asyncpg.UniqueViolationError:
                raise RepositoryError(f"tag {tag_id} is already attached to job {job_id}") from None
            except asyncpg.ForeignKeyViolationError:
                raise RepositoryError(
                    f"cannot attach tag {tag_id} to job {job_id}: job or tag does not exist"
                ) from None

        await self._run(run)

    async def detach_tag(self, job_id: int, tag_id: int) -> None:
        await self._execute("DELETE FROM jobtag WHERE job_id = $1 AND tag_id = $2", job_id, tag_id)

    async def delete_tag(self, tag_id: int) -> None:
        async def run(conn: asyncpg.Connection) -> None:
            await conn.execute("DELETE FROM jobtag WHERE tag_id = $1", tag_id)
            await conn.execute("DELETE FROM tag WHERE id = $1", tag_id)

        await self._run(run, tx=True)

    # ---- users --------------------------------------------------------------------------------------

    async def get_user(self, username: str) -> User | None:
        rows = await self._fetch(f"SELECT {q.USER_COLUMNS} FROM hpc_user WHERE username = $1", username)
        return q.user_from_row(tuple(rows[0])) if rows else None

    async def add_user(self, user: User) -> None:
        row = q.user_row(user)

        async def run(conn: asyncpg.Connection) -> None:
            try:
                await conn.execute(
                    f"INSERT INTO hpc_user ({q.USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)", *row
                )
            except asyncpg.UniqueViolationError:
                raise RepositoryError(f"user {user.username!r} already exists") from None

        await self._run(run)

    async def update_user(self, user: User) -> None:
        row = q.user_row(user)
        n = await self._execute(
            "UPDATE hpc_user SET password = $1, ldap = $2, name = $3, roles = $4, email = $5, projects = $6 "
            "WHERE username = $7",
            *row[1:],
            row[0],
        )
        if n == 0:
            raise RepositoryError(f"user {user.username!r} does not exist")

    async def delete_user(self, username: str) -> int:
        return await self._execute("DELETE FROM hpc_user WHERE username = $1", username)

    async def list_users(self) -> list[User]:
        rows = await self._fetch(f"SELECT {q.USER_COLUMNS} FROM hpc_user ORDER BY username")
        return [q.user_from_row(tuple(r)) for r in rows]

    # ---- configuration -------------------------------------------------------------------------------

    async def user_config(self, username: str) -> dict[str, Any]:
        rows = await self._fetch(
            "SELECT confkey, value FROM configuration WHERE username = $1 ORDER BY confkey", username
        )
        out: dict[str, Any] = {}
        for key, value in rows:
            try:
                out[key] = q.load_json(value)
            except ValueError:
                out[key] = value
        return out

    async def set_user_config(self, username: str, key: str, value: Any) -> None:
        async def run(conn: asyncpg.Connection) -> None:
            try:
                await conn.execute(
                    "INSERT INTO configuration (username, confkey, value) VALUES ($1, $2, $3) "
                    "ON CONFLICT (username, confkey) DO UPDATE SET value = excluded.value",
                    username,
                    key,
                    q.dump_json(value),
                )
            except asyncpg.ForeignKeyViolationError:
                raise RepositoryError(f"storing configuration {key!r}: user {username!r} does not exist") from None

        await self._run(run)

    # ---- nodes --------------------------------------------------------------------------------------

    async def add_node_states(self, rows: list[NodeStateRow]) -> None:
        async def run(conn: asyncpg.Connection) -> None:
            node_ids: dict[tuple[str, str], int] = {}
            for r in rows:
                key = (r.hostname, r.cluster)
                if key not in node_ids:
                    meta = None if r.meta_data is None else q.dump_json(r.meta_data)
                    node_ids[key] = await conn.fetchval(
                        "INSERT INTO node (hostname, cluster, subcluster, meta_data) VALUES ($1, $2, $3, $4) "
                        "ON CONFLICT (hostname, cluster) DO UPDATE SET "
                        "meta_data = COALESCE(excluded.meta_data, node.meta_data) RETURNING id",
                        r.hostname,
                        r.cluster,
                        r.sub_cluster,
                        meta,
                    )
            await conn.executemany(
                "INSERT INTO node_state (time_stamp, jobs_running, cpus_allocated, memory_allocated, "
                "gpus_allocated, node_state, health_state, health_metrics, node_id) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                [
                    (
                        r.time_stamp,
                        r.jobs_running,
                        r.cpus_allocated,
                        r.memory_allocated,
                        r.gpus_allocated,
                        r.node_state,
                        r.health_state,
                        r.health_metrics,
                        node_ids[(r.hostname, r.cluster)],
                    )
                    for r in rows
                ],
            )

        await self._run(run, tx=True)

    async def latest_node_states(self, cluster: str | None = None) -> list[NodeStateRow]:
        sql = q.NODE_STATE_SELECT
        args: tuple[Any, ...] = ()
        if cluster is not None:
            sql += " AND n.cluster = $1"
            args = (cluster,)
        rows = await self._fetch(sql + " ORDER BY n.cluster, n.hostname", *args)
        return [q.node_state_from_row(tuple(r)) for r in rows]


async def _link_tags(conn: asyncpg.Connection, jobs: list[Job], ids: list[int | None]) -> None:
    """Create the tags of newly inserted jobs (scope global, found by type+name) and link them."""
    pairs = [(i, t.type, t.name) for j, i in zip(jobs, ids, strict=True) if i is not None for t in j.tags or ()]
    if not pairs:
        return
    keys = sorted({(t, n) for _, t, n in pairs})
    types = [k[0] for k in keys]
    names = [k[1] for k in keys]
    await conn.execute(
        "INSERT INTO tag (tag_type, tag_name, tag_scope) SELECT t, n, 'global' FROM unnest($1::text[], $2::text[]) "
        "AS u(t, n) ON CONFLICT (tag_type, tag_name) DO NOTHING",
        types,
        names,
    )
    rows = await conn.fetch(
        "SELECT tag.id, tag.tag_type, tag.tag_name FROM tag JOIN unnest($1::text[], $2::text[]) AS u(t, n) "
        "ON tag.tag_type = u.t AND tag.tag_name = u.n",
        types,
        names,
    )
    tag_ids = {(r[1], r[2]): int(r[0]) for r in rows}
    await conn.execute(
        "INSERT INTO jobtag (job_id, tag_id) SELECT * FROM unnest($1::bigint[], $2::bigint[]) "
        "ON CONFLICT DO NOTHING",
        [p[0] for p in pairs],
        [tag_ids[(p[1], p[2])] for p in pairs],
    )


def _duplicate(job: Job) -> DuplicateJobError:
    return DuplicateJobError(
        f"a job with jobId {job.job_id} on cluster {job.cluster!r} and startTime {job.start_time} already exists"
    )
