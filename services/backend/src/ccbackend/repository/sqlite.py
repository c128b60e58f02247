"""SQLite engine: the upstream-compatible `job.db` (schema version 11), its migrations and the Repository.

All SQLite work runs in a small thread pool (one connection per thread, stdlib sqlite3), never on the
event loop.  Writes are serialised by an asyncio lock and run as `BEGIN IMMEDIATE` transactions, so
the Go binary can share the file (busy_timeout covers its writers).  `close()` checkpoints the WAL
with TRUNCATE so that the single `.db` file is a complete backup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

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

__all__ = ["SqliteRepository", "sqlite_force", "sqlite_migrate", "sqlite_revert", "sqlite_schema_version"]

log = logging.getLogger("ccbackend.repository")
T = TypeVar("T")

OLDEST_MIGRATABLE = 8
_CHUNK = 500  # bound parameters per IN list chunk
_ANALYSIS_LIMIT = 1000  # rows sampled per index by the ANALYZE after a bulk import


# ---- connections -----------------------------------------------------------------------------------


def _options(options: dict[str, Any] | None) -> dict[str, int]:
    o = options or {}

    def num(key: str, default: int) -> int:
        v = o.get(key, o.get(key.replace("-", "_"), default))
        if v is None:
            return default
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise RepositoryError(f"db-config: {key} must be an integer, got {v!r}") from None
        return n if n > 0 else default  # upstream: values <= 0 keep the default

    return {
        "cache_mb": num("cache-size-mb", 2048),
        "busy_ms": num("busy-timeout-ms", 60000),
        "max_open": max(1, num("max-open-connections", 4)),
        "soft_heap_mb": num("soft-heap-limit-mb", 16384),
    }


def _connect(path: str, opts: dict[str, int], journal: str | None = "WAL") -> sqlite3.Connection:
    """A connection with upstream's settings (WAL, synchronous NORMAL, foreign keys, busy timeout)."""
    conn = sqlite3.connect(
        path, timeout=opts["busy_ms"] / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(opts['busy_ms'])}")
    if journal is not None:
        conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute(f"PRAGMA cache_size = {-int(opts['cache_mb']) * 1024}")
    conn.execute(f"PRAGMA soft_heap_limit = {int(opts['soft_heap_mb']) * 1024 * 1024}")
    return conn


# ---- schema and migrations (blocking; called from threads) -------------------------------------------


def _sql_file(name: str) -> str:
    return (resources.files("ccbackend.repository") / "migrations" / "sqlite3" / name).read_text("utf-8")


def _statements(script: str) -> list[str]:
    """Split a SQL script into complete statements."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    rest = "\n".join(ln for ln in buf.splitlines() if not ln.strip().startswith("--")).strip()
    if rest:
        out.append(rest)
    return out


def _exec_script(conn: sqlite3.Connection, script: str) -> None:
    for stmt in _statements(script):
        conn.execute(stmt)


def _table_names(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def sqlite_schema_version(conn: sqlite3.Connection) -> tuple[int, bool] | None:
    """(version, dirty), (0, False) for a legacy database, None for an empty one."""
    tables = _table_names(conn) - {"sqlite_sequence", "sqlite_stat1", "sqlite_stat4"}
    if "schema_migrations" not in tables:
        return None if not tables else (0, False)
    row = conn.execute("SELECT version, dirty FROM schema_migrations LIMIT 1").fetchone()
    if row is None:
        return None if tables == {"schema_migrations"} else (0, False)
    return int(row[0]), bool(row[1])


def _set_version(conn: sqlite3.Connection, version: int, dirty: bool) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version uint64,dirty bool)")
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version)")
    conn.execute("DELETE FROM schema_migrations")
    conn.execute("INSERT INTO schema_migrations (version, dirty) VALUES (?, ?)", (version, int(dirty)))
    conn.execute("COMMIT")


def _run_step(conn: sqlite3.Connection, target: int, body: Callable[[sqlite3.Connection], None]) -> None:
    """One migration step: (target, dirty) before, the SQL in its own transaction, (target, clean) after."""
    _set_version(conn, target, True)
    conn.execute("PRAGMA foreign_keys = OFF")  # table rebuilds must not cascade into jobtag
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            body(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    _set_version(conn, target, False)


def _create_fresh(conn: sqlite3.Connection) -> None:
    _exec_script(conn, _sql_file("v11_tables.sql"))
    _exec_script(conn, _sql_file("job_indexes_v09.sql"))
    _exec_script(conn, _sql_file("11_optimize-indexes.up.sql"))


def _table_sql(conn: sqlite3.Connection, table: str) -> str:
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return row[0] if row else ""


def _v11_table_ddl(table: str, new_name: str) -> str:
    script = _sql_file("v11_tables.sql")
    start = script.index(f'CREATE TABLE "{table}" (')
    end = script.index(");", start) + 2
    return script[start:end].replace(f'CREATE TABLE "{table}"', f'CREATE TABLE "{new_name}"', 1)


def _repair_v10(conn: sqlite3.Connection) -> None:
    """Bring development variants of version 10 to the released shape before the step to 11.

    Some version-10 databases (upstream's own test database among them) lack node_state.health_metrics
    and spell the state `out-of-memory` in the job CHECK, which would refuse the stored value
    `out_of_memory`.
    """
    cols = {r[1] for r in conn.execute("PRAGMA table_info(node_state)")}
    if cols and "health_metrics" not in cols:
        conn.execute("ALTER TABLE node_state ADD COLUMN health_metrics TEXT")
    for table in ("job", "job_cache"):
        if "'out-of-memory'" not in _table_sql(conn, table):
            continue
        cols_sql = ", ".join(q.JOB_COLUMNS)
        select = cols_sql.replace("job_state", "REPLACE(job_state, 'out-of-memory', 'out_of_memory')")
        conn.execute(_v11_table_ddl(table, f"{table}_new"))
        conn.execute(f"INSERT INTO {table}_new ({cols_sql}) SELECT {select} FROM {table}")
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
        log.info("rebuilt table %s with the version-11 job_state CHECK", table)


def _step(target: int) -> Callable[[sqlite3.Connection], None]:
    def up9(conn: sqlite3.Connection) -> None:
        _exec_script(conn, _sql_file("09_add-job-cache.up.sql"))
        _exec_script(conn, _sql_file("job_indexes_v09.sql"))

    def up10(conn: sqlite3.Connection) -> None:
        _exec_script(conn, _sql_file("10_node-table.up.sql"))

    def up11(conn: sqlite3.Connection) -> None:
        _repair_v10(conn)
        _exec_script(conn, _sql_file("job_indexes_v09.sql"))
        _exec_script(conn, _sql_file("11_optimize-indexes.up.sql"))

    return {9: up9, 10: up10, 11: up11}[target]


def sqlite_migrate(path: str) -> tuple[int, int]:
    """Apply pending up-migrations (creating the file when missing); returns (from, to)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(path, _options(None))
    try:
        version = sqlite_schema_version(conn)
        if version is None:
            conn.execute("BEGIN IMMEDIATE")
            _create_fresh(conn)
            conn.execute("COMMIT")
            _set_version(conn, SCHEMA_VERSION, False)
            log.info("created database %s at schema version %d", path, SCHEMA_VERSION)
            return 0, SCHEMA_VERSION
        v, dirty = version
        if dirty or v == 0 or v > SCHEMA_VERSION:
            q.check_version(version, path)
        if v == SCHEMA_VERSION:
            log.info("database %s: schema version %d already up to date", path, v)
            return v, v
        if v < OLDEST_MIGRATABLE:
            raise SchemaVersionError(
                f"database {path}: schema version {v} is too old to migrate here (oldest supported "
                f"{OLDEST_MIGRATABLE}); migrate it with upstream cc-backend 1.4 first"
            )
        for target in range(v + 1, SCHEMA_VERSION + 1):
            log.info("database %s: migrating to schema version %d", path, target)
            _run_step(conn, target, _step(target))
        return v, SCHEMA_VERSION
    finally:
        conn.close()


def sqlite_revert(path: str) -> tuple[int, int]:
    """Migrate 11 -> 10 (`-revert-db`); returns (from, to)."""
    if not Path(path).exists():
        raise SchemaVersionError(f"database {path} does not exist")
    conn = _connect(path, _options(None))
    try:
        version = sqlite_schema_version(conn)
        q.check_version(version, path)
        if version is None:
            raise SchemaVersionError(f"database {path} is empty: nothing to revert")
        _run_step(
            conn, SCHEMA_VERSION - 1, lambda c: _exec_script(c, _sql_file("11_optimize-indexes.down.sql"))
        )
        return SCHEMA_VERSION, SCHEMA_VERSION - 1
    finally:
        conn.close()


def sqlite_force(path: str) -> None:
    """Set the version row to (11, clean) without running SQL (`-force-db`)."""
    if not Path(path).exists():
        raise SchemaVersionError(f"database {path} does not exist")
    conn = _connect(path, _options(None))
    try:
        _set_version(conn, SCHEMA_VERSION, False)
    finally:
        conn.close()


def _v11_job_indexes() -> dict[str, str]:
    return q.job_index_statements([_sql_file("job_indexes_v09.sql"), _sql_file("11_optimize-indexes.up.sql")])


def _ensure_job_indexes(conn: sqlite3.Connection) -> None:
    """Create missing version-11 job indexes (e.g. after a bulk import that was interrupted)."""
    have = {
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'job'")
    }
    missing = {n: s for n, s in _v11_job_indexes().items() if n not in have}
    if not missing:
        return
    log.info("creating %d missing job indexes: %s", len(missing), ", ".join(sorted(missing)))
    conn.execute("BEGIN IMMEDIATE")
    for stmt in missing.values():
        conn.execute(stmt)
    conn.execute("COMMIT")


def _open_check(path: str, opts: dict[str, int]) -> None:
    """Version check on open (an empty/new file is created at version 11); moves job_cache rows to job."""
    conn = _connect(path, opts)
    try:
        version = sqlite_schema_version(conn)
        if version is None:
            conn.execute("BEGIN IMMEDIATE")
            _create_fresh(conn)
            conn.execute("COMMIT")
            _set_version(conn, SCHEMA_VERSION, False)
            log.info("created database %s at schema version %d", path, SCHEMA_VERSION)
            return
        q.check_version(version, path)
        _ensure_job_indexes(conn)
        cols = ", ".join(q.INSERT_COLUMNS)
        conn.execute("BEGIN IMMEDIATE")
        moved = conn.execute(f"INSERT OR IGNORE INTO job ({cols}) SELECT {cols} FROM job_cache").rowcount
        conn.execute("DELETE FROM job_cache")
        conn.execute("COMMIT")
        if moved:
            log.info("moved %d jobs from job_cache into job", moved)
    finally:
        conn.close()


# ---- the repository ------------------------------------------------------------------------------------


class SqliteRepository(Repository):
    """Repository on an SQLite file; create with `await SqliteRepository.open(path, options)`."""

    engine = "sqlite"

    def __init__(self, path: str, opts: dict[str, int]) -> None:
        self.path = path
        self._opts = opts
        self._pool = ThreadPoolExecutor(max_workers=opts["max_open"], thread_name_prefix="sqlite")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        #: journal mode of new connections (DELETE only while a bulk import runs) and the connection
        #: generation: a thread whose connection is older opens a new one
        self._journal = "WAL"
        self._gen = 0
        self._wlock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: str, options: dict[str, Any] | None = None) -> SqliteRepository:
        opts = _options(options)
        if path != ":memory:":
            parent = Path(path).parent
            if not parent.is_dir():
                raise RepositoryError(f"database {path}: directory {parent} does not exist")
        await asyncio.to_thread(_open_check, path, opts)
        return cls(path, opts)

    # ---- plumbing ---------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.gen != self._gen:
            conn = _connect(self.path, self._opts, self._journal)
            self._local.conn = conn
            self._local.gen = self._gen
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _drop_connections(self) -> None:
        """Close every pooled connection (each thread opens a new one on its next use)."""
        with self._conns_lock:
            conns, self._conns = self._conns, []
            self._gen += 1
        for c in conns:
            c.close()

    def _switch_journal(self, mode: str) -> bool:
        """Change the journal mode; False (and no change) when another connection, e.g. another
        process, has the database open: leaving or entering WAL needs the only connection."""
        self._drop_connections()
        conn = _connect(self.path, self._opts, journal=None)
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            got = conn.execute(f"PRAGMA journal_mode = {mode}").fetchone()[0]
        except sqlite3.OperationalError as e:
            log.info("journal mode stays %s: %s", self._journal, e)
            return False
        finally:
            conn.close()
        if str(got).upper() != mode:
            return False
        self._journal = mode
        return True

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RepositoryError("repository is closed")

        def run() -> T:
            try:
                return fn(self._conn(), *args)
            except sqlite3.Error as e:
                raise RepositoryError(f"database error: {e}") from e

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RepositoryError("repository is closed")

        def run() -> T:
            conn = self._conn()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn, *args)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise RepositoryError(f"database error: {e}") from e

        async with self._wlock:
            return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    async def _exclusive(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn)` under the write lock without an enclosing transaction (it manages its own)."""
        async with self._wlock:
            return await self._read(fn, *args)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._wlock:
            await asyncio.to_thread(self._close_all)

    def _close_all(self) -> None:
        self._pool.shutdown(wait=True)
        with self._conns_lock:
            conns, self._conns = self._conns, []
        try:
            conn = _connect(self.path, self._opts)
            conn.execute("PRAGMA optimize")
            for c in conns:
                c.close()
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
        except sqlite3.Error as e:
            log.warning("database %s: closing failed: %s", self.path, e)

    async def optimize(self) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("VACUUM")
            conn.execute("ANALYZE")

        async with self._wlock:
            await self._read(run)

    @contextlib.asynccontextmanager
    async def bulk_import(self) -> AsyncIterator[None]:
        """Drop the job indexes while a large import (`-init-db`) runs and rebuild them afterwards.

        Inserting into an index-free table and building the indexes once is several times faster than
        maintaining some 50 indexes row by row.  An interrupted import is repaired on the next open.

        While it runs the database uses a rollback journal instead of WAL when no other process has it
        open: the rows and the new index pages then go straight into the database file instead of
        through the WAL and a checkpoint (some 10 % of an `-init-db`). Nothing else may use this
        repository during the import (init-db is a command-line operation).
        """

        def drop(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            saved = [
                (name, sql)
                for name, sql in conn.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'job' AND sql IS NOT NULL"
                )
            ]
            for name, _ in saved:
                conn.execute(f'DROP INDEX "{name}"')
            return saved

        def build(conn: sqlite3.Connection, saved: list[tuple[str, str]]) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Reading sqlite_master first also refreshes this connection's schema cache: CREATE INDEX
                # checks "already exists" against that cache without revalidating it.
                have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'job'")}
                wanted = dict(saved)
                for name, sql in _v11_job_indexes().items():
                    wanted.setdefault(name, sql)
                for name, sql in wanted.items():
                    if name not in have:
                        conn.execute(sql)
                # statistics from a sample of each index: a full ANALYZE of 50-odd indexes costs as much
                # as building several of them, and the planner only needs their rough shape
                conn.execute(f"PRAGMA analysis_limit = {_ANALYSIS_LIMIT}")
                try:
                    conn.execute("ANALYZE job")
                finally:
                    conn.execute("PRAGMA analysis_limit = 0")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        def rebuild(conn: sqlite3.Connection, saved: list[tuple[str, str]]) -> None:
            # CREATE INDEX sorts some 20 % faster with the sorter's runs in temp files (page-cached) than
            # with temp_store=MEMORY; the setting can only change outside a transaction
            conn.execute("PRAGMA temp_store = FILE")
            try:
                build(conn, saved)
            except sqlite3.OperationalError as e:
                log.warning(
                    "bulk import: building indexes with temp files failed (%s), retrying in memory", e
                )
                conn.execute("PRAGMA temp_store = MEMORY")
                build(conn, saved)
            finally:
                conn.execute("PRAGMA temp_store = MEMORY")

        saved = await self._write(drop)
        log.info("bulk import: dropped %d job indexes", len(saved))
        switched = self.path != ":memory:" and await self._exclusive(
            lambda _conn: self._switch_journal("DELETE")
        )
        try:
            yield
        finally:
            try:
                started = time.monotonic()
                await self._exclusive(rebuild, saved)
                log.info("bulk import: rebuilt job indexes in %.1f s", time.monotonic() - started)
            finally:
                if switched and not await self._exclusive(lambda _conn: self._switch_journal("WAL")):
                    log.warning("bulk import: could not return to WAL mode; the next start does")

    # ---- jobs ---------------------------------------------------------------------------------------

    async def insert_job(self, job: Job) -> int:
        row = q.job_row(job)

        def run(conn: sqlite3.Connection) -> int:
            try:
                cur = conn.execute(_INSERT_JOB, row)
            except sqlite3.IntegrityError as e:
                if "UNIQUE" in str(e):
                    raise _duplicate(job) from None
                raise RepositoryError(f"inserting job {job.job_id} failed: {e}") from None
            return int(cur.lastrowid or 0)

        return await self._write(run)

    async def insert_jobs(self, jobs: list[Job]) -> list[int | None]:
        rows = [q.job_row(j) for j in jobs]
        tags = [(i, t.type, t.name) for i, j in enumerate(jobs) for t in j.tags or ()]
        return await self.insert_job_rows(rows, tags)

    async def insert_job_rows(
        self, rows: Sequence[tuple[Any, ...]], tags: Sequence[tuple[int, str, str]] = ()
    ) -> list[int | None]:
        """Insert ready rows (`_query.INSERT_COLUMNS` order, e.g. from `q.job_row`) in one transaction.

        Returns the new ids in order, None where the unique key collided.  `tags` are (row index, type,
        name): tags are created by type+name with scope global when missing and linked to the new jobs.
        """
        if not rows:
            return []
        return await self._write(_insert_rows, rows, tags)

    async def start_times(self, job_id: int, cluster: str) -> list[tuple[int, int]]:
        def run(conn: sqlite3.Connection) -> list[tuple[int, int]]:
            cur = conn.execute(
                "SELECT id, start_time FROM job WHERE job_id = ? AND cluster = ? ORDER BY start_time",
                (job_id, cluster),
            )
            return [(int(a), int(b)) for a, b in cur]

        return await self._read(run)

    async def get_job(self, id: int) -> Job | None:
        def run(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(f"SELECT {q.SELECT_JOB} FROM job WHERE job.id = ?", (id,)).fetchone()
            return q.job_from_row(row) if row else None

        return await self._read(run)

    async def find_job(
        self, job_id: int, cluster: str | None = None, start_time: int | None = None
    ) -> Job | None:
        b = q.Sql(q.SQLITE)
        sql = q.find_job_sql(b, job_id, cluster, start_time)

        def run(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(sql, b.params).fetchone()
            return q.job_from_row(row) if row else None

        return await self._read(run)

    async def list_jobs(
        self,
        flt: JobFilter,
        order: Order | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_meta_data: bool = False,
    ) -> list[Job]:
        b = q.Sql(q.SQLITE)
        sql = q.list_jobs_sql(b, flt, order, limit, offset)

        def run(conn: sqlite3.Connection) -> list[Job]:
            now = int(time.time())
            return [q.job_from_row(r, with_meta_data, now) for r in conn.execute(sql, b.params)]

        return await self._read(run)

    async def count_jobs(self, flt: JobFilter) -> int:
        b = q.Sql(q.SQLITE)
        sql = "SELECT count(*) FROM job" + q.where_clause(b, flt)
        return await self._read(lambda conn: int(conn.execute(sql, b.params).fetchone()[0]))

    async def stop_job(self, id: int, job_state: str, duration: int, monitoring_status: int) -> None:
        if job_state not in JOB_STATES:
            raise BadRequest(f"invalid job state {job_state!r}")
        await self._write(
            lambda c: c.execute(
                "UPDATE job SET job_state = ?, duration = ?, monitoring_status = ? WHERE id = ?",
                (job_state, duration, monitoring_status, id),
            )
        )

    async def set_monitoring_status(self, id: int, status: int) -> None:
        await self._write(
            lambda c: c.execute("UPDATE job SET monitoring_status = ? WHERE id = ?", (status, id))
        )

    async def update_archived(
        self,
        id: int,
        footprint: dict[str, float],
        energy_footprint: dict[str, float],
        energy: float,
        monitoring_status: int,
    ) -> None:
        params = (q.dump_json(footprint), q.dump_json(energy_footprint), energy, monitoring_status, id)
        await self._write(
            lambda c: c.execute(
                "UPDATE job SET footprint = ?, energy_footprint = ?, energy = ?, monitoring_status = ? WHERE id = ?",
                params,
            )
        )

    async def update_footprint(self, id: int, footprint: dict[str, float]) -> None:
        fp = q.dump_json(footprint)
        await self._write(lambda c: c.execute("UPDATE job SET footprint = ? WHERE id = ?", (fp, id)))

    async def update_running_durations(self, now: int) -> int:
        return await self._write(
            lambda c: (
                c.execute(
                    "UPDATE job SET duration = ? - start_time WHERE job_state = 'running'", (now,)
                ).rowcount
            )
        )

    async def set_meta_data(self, id: int, key: str, value: str) -> dict[str, str]:
        def run(conn: sqlite3.Connection) -> dict[str, str]:
            row = conn.execute("SELECT meta_data FROM job WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise RepositoryError(f"job with db id {id} not found")
            meta = q.load_json(row[0]) or {}
            meta[key] = value
            conn.execute("UPDATE job SET meta_data = ? WHERE id = ?", (q.dump_json(meta), id))
            return meta

        return await self._write(run)

    async def delete_job(self, id: int) -> int:
        return await self._write(lambda c: c.execute("DELETE FROM job WHERE id = ?", (id,)).rowcount)

    async def delete_jobs_before(self, ts: int, omit_tagged: str = "none") -> int:
        sql = "DELETE FROM job WHERE job.start_time < ?" + q.omit_tagged_clause(omit_tagged)
        return await self._write(lambda c: c.execute(sql, (ts,)).rowcount)

    async def delete_all_jobs(self) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM jobtag")
            conn.execute("DELETE FROM tag")
            conn.execute("DELETE FROM job")

        await self._write(run)

    async def running_jobs(self, cluster: str | None = None) -> list[Job]:
        flt = JobFilter(state=["running"], cluster=[cluster] if cluster is not None else None)
        return await self.list_jobs(flt, Order("start_time", False), with_meta_data=True)

    async def used_nodes(self, before_ts: int) -> dict[str, list[str]]:
        def run(conn: sqlite3.Connection) -> dict[str, list[str]]:
            out: dict[str, set[str]] = {}
            cur = conn.execute(
                "SELECT cluster, resources FROM job WHERE job_state = 'running' AND start_time < ?",
                (before_ts,),
            )
            for cluster, res in cur:
                out.setdefault(cluster, set()).update(q.hostnames(res))
            return {c: sorted(h) for c, h in sorted(out.items())}

        return await self._read(run)

    async def stop_jobs_exceeding_walltime(self, now: int, grace: int) -> int:
        return await self._write(
            lambda c: (
                c.execute(
                    "UPDATE job SET job_state = 'failed', duration = 0, monitoring_status = 2 "
                    "WHERE job_state = 'running' AND walltime > 0 AND start_time < ? - walltime",
                    (now - grace,),
                ).rowcount
            )
        )

    # ---- tags ---------------------------------------------------------------------------------------

    async def job_tags(self, job_ids: list[int]) -> dict[int, list[JobTag]]:
        def run(conn: sqlite3.Connection) -> dict[int, list[JobTag]]:
            unique = list(dict.fromkeys(int(i) for i in job_ids))
            out: dict[int, list[JobTag]] = {i: [] for i in unique}
            for i in range(0, len(unique), _CHUNK):
                chunk = unique[i : i + _CHUNK]
                cur = conn.execute(
                    "SELECT jobtag.job_id, tag.id, tag.tag_type, tag.tag_name, tag.tag_scope FROM jobtag "
                    f"JOIN tag ON tag.id = jobtag.tag_id WHERE jobtag.job_id IN ({','.join('?' * len(chunk))}) "
                    "ORDER BY tag.id",
                    chunk,
                )
                for row in cur:
                    out.setdefault(int(row[0]), []).append(q.tag_from_row(row[1:]))
            return out

        return await self._read(run)

    async def find_tag(self, tag_type: str, name: str, scope: str) -> JobTag | None:
        def run(conn: sqlite3.Connection) -> JobTag | None:
            row = conn.execute(
                "SELECT id, tag_type, tag_name, tag_scope FROM tag WHERE tag_type = ? AND tag_name = ? "
                "AND tag_scope = ?",
                (tag_type, name, scope or "global"),
            ).fetchone()
            return q.tag_from_row(row) if row else None

        return await self._read(run)

    async def create_tag(self, tag_type: str, name: str, scope: str) -> JobTag:
        scope = scope or "global"

        def run(conn: sqlite3.Connection) -> JobTag:
            try:
                cur = conn.execute(
                    "INSERT INTO tag (tag_type, tag_name, tag_scope) VALUES (?, ?, ?)",
                    (tag_type, name, scope),
                )
            except sqlite3.IntegrityError:
                raise _tag_exists(tag_type, name) from None
            return JobTag(id=int(cur.lastrowid or 0), type=tag_type, name=name, scope=scope)

        return await self._write(run)

    async def list_tags(self) -> list[JobTag]:
        return await self._read(
            lambda c: [
                q.tag_from_row(r)
                for r in c.execute("SELECT id, tag_type, tag_name, tag_scope FROM tag ORDER BY id")
            ]
        )

    async def attach_tag(self, job_id: int, tag_id: int) -> None:
        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute("INSERT INTO jobtag (job_id, tag_id) VALUES (?, ?)", (job_id, tag_id))
            except sqlite3.IntegrityError as e:
                raise _attach_error(job_id, tag_id, "FOREIGN KEY" in str(e)) from None

        await self._write(run)

    async def detach_tag(self, job_id: int, tag_id: int) -> None:
        await self._write(
            lambda c: c.execute("DELETE FROM jobtag WHERE job_id = ? AND tag_id = ?", (job_id, tag_id))
        )

    async def delete_tag(self, tag_id: int) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM jobtag WHERE tag_id = ?", (tag_id,))
            conn.execute("DELETE FROM tag WHERE id = ?", (tag_id,))

        await self._write(run)

    # ---- users --------------------------------------------------------------------------------------

    async def get_user(self, username: str) -> User | None:
        def run(conn: sqlite3.Connection) -> User | None:
            row = conn.execute(
                f"SELECT {q.USER_COLUMNS} FROM hpc_user WHERE username = ?", (username,)
            ).fetchone()
            return q.user_from_row(row) if row else None

        return await self._read(run)

    async def add_user(self, user: User) -> None:
        row = q.user_row(user)

        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(f"INSERT INTO hpc_user ({q.USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            except sqlite3.IntegrityError:
                raise RepositoryError(f"user {user.username!r} already exists") from None

        await self._write(run)

    async def update_user(self, user: User) -> None:
        row = q.user_row(user)

        def run(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE hpc_user SET password = ?, ldap = ?, name = ?, roles = ?, email = ?, projects = ? "
                "WHERE username = ?",
                (*row[1:], row[0]),
            )
            if cur.rowcount == 0:
                raise RepositoryError(f"user {user.username!r} does not exist")

        await self._write(run)

    async def delete_user(self, username: str) -> int:
        return await self._write(
            lambda c: c.execute("DELETE FROM hpc_user WHERE username = ?", (username,)).rowcount
        )

    async def list_users(self) -> list[User]:
        return await self._read(
            lambda c: [
                q.user_from_row(r)
                for r in c.execute(f"SELECT {q.USER_COLUMNS} FROM hpc_user ORDER BY username")
            ]
        )

    # ---- configuration -------------------------------------------------------------------------------

    async def user_config(self, username: str) -> dict[str, Any]:
        def run(conn: sqlite3.Connection) -> dict[str, Any]:
            cur = conn.execute(
                "SELECT confkey, value FROM configuration WHERE username = ? ORDER BY confkey", (username,)
            )
            return {k: _config_value(v) for k, v in cur}

        return await self._read(run)

    async def set_user_config(self, username: str, key: str, value: Any) -> None:
        text = q.dump_json(value)

        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO configuration (username, confkey, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (username, confkey) DO UPDATE SET value = excluded.value",
                    (username, key, text),
                )
            except sqlite3.IntegrityError:
                raise RepositoryError(
                    f"storing configuration {key!r}: user {username!r} does not exist"
                ) from None

        await self._write(run)

    # ---- nodes --------------------------------------------------------------------------------------

    async def add_node_states(self, rows: list[NodeStateRow]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            node_ids: dict[tuple[str, str], int] = {}
            for r in rows:
                key = (r.hostname, r.cluster)
                nid = node_ids.get(key)
                if nid is None:
                    meta = None if r.meta_data is None else q.dump_json(r.meta_data)
                    conn.execute(
                        "INSERT INTO node (hostname, cluster, subcluster, meta_data) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (hostname, cluster) DO NOTHING",
                        (r.hostname, r.cluster, r.sub_cluster, meta),
                    )
                    if meta is not None:
                        conn.execute(
                            "UPDATE node SET meta_data = ? WHERE hostname = ? AND cluster = ?", (meta, *key)
                        )
                    nid = conn.execute(
                        "SELECT id FROM node WHERE hostname = ? AND cluster = ?", key
                    ).fetchone()[0]
                    node_ids[key] = nid
                conn.execute(
                    "INSERT INTO node_state (time_stamp, jobs_running, cpus_allocated, memory_allocated, "
                    "gpus_allocated, node_state, health_state, health_metrics, node_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.time_stamp,
                        r.jobs_running,
                        r.cpus_allocated,
                        r.memory_allocated,
                        r.gpus_allocated,
                        r.node_state,
                        r.health_state,
                        r.health_metrics,
                        nid,
                    ),
                )

        await self._write(run)

    async def latest_node_states(self, cluster: str | None = None) -> list[NodeStateRow]:
        sql = q.NODE_STATE_SELECT
        params: tuple[Any, ...] = ()
        if cluster is not None:
            sql += " AND n.cluster = ?"
            params = (cluster,)
        sql += " ORDER BY n.cluster, n.hostname"
        return await self._read(lambda c: [q.node_state_from_row(r) for r in c.execute(sql, params)])


_INSERT_JOB = (
    f"INSERT INTO job ({', '.join(q.INSERT_COLUMNS)}) VALUES ({', '.join('?' * len(q.INSERT_COLUMNS))})"
)


_INSERT_JOB_IGNORE = _INSERT_JOB + " ON CONFLICT DO NOTHING"


_COL_STATE = q.INSERT_COLUMNS.index("job_state")
_COL_SHARED = q.INSERT_COLUMNS.index("shared")
_COL_MONITORING = q.INSERT_COLUMNS.index("monitoring_status")
_SHARED_VALUES = frozenset({"none", "single_user", "multi_user"})
_JOB_STATES = frozenset(JOB_STATES)


def _check_rows(rows: Sequence[tuple[Any, ...]]) -> None:
    """The job table's CHECK constraints, in Python: SQLite evaluates their `IN (...)` lists by building a
    temporary index at every execution, which costs 10 µs per row in an executemany (more than the insert
    itself); rows checked here are inserted with `ignore_check_constraints`."""
    for i, r in enumerate(rows):
        if r[_COL_STATE] not in _JOB_STATES:
            raise RepositoryError(
                f"database error: CHECK constraint failed: job_state {r[_COL_STATE]!r} (row {i})"
            )
        if r[_COL_SHARED] not in _SHARED_VALUES:
            raise RepositoryError(
                f"database error: CHECK constraint failed: shared {r[_COL_SHARED]!r} (row {i})"
            )
        if r[_COL_MONITORING] not in (0, 1, 2, 3):
            raise RepositoryError(
                f"database error: CHECK constraint failed: monitoring_status {r[_COL_MONITORING]!r} (row {i})"
            )


def _insert_rows(
    conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], tags: Sequence[tuple[int, str, str]]
) -> list[int | None]:
    """executemany for the whole batch; ids follow from max(id) when every row went in, else row by row."""
    _check_rows(rows)
    conn.execute("SAVEPOINT insert_rows")
    before = conn.execute("SELECT max(id) FROM job").fetchone()[0] or 0
    conn.execute("PRAGMA ignore_check_constraints = ON")
    try:
        inserted = conn.executemany(_INSERT_JOB_IGNORE, rows).rowcount
    finally:
        conn.execute("PRAGMA ignore_check_constraints = OFF")
    last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    ids: list[int | None]
    if inserted == len(rows) and last == before + len(rows):
        conn.execute("RELEASE insert_rows")
        ids = list(range(before + 1, last + 1))
    else:  # duplicates (or rowids out of order): redo one by one to learn which row got which id
        conn.execute("ROLLBACK TO insert_rows")
        conn.execute("RELEASE insert_rows")
        ids = []
        for row in rows:
            cur = conn.execute(_INSERT_JOB_IGNORE, row)
            ids.append(int(cur.lastrowid or 0) if cur.rowcount == 1 else None)
    if tags:
        tag_ids: dict[tuple[str, str], int] = {}
        links = []
        for i, tag_type, tag_name in tags:
            job_id = ids[i]
            if job_id is None:
                continue
            key = (tag_type, tag_name)
            tid = tag_ids.get(key)
            if tid is None:
                conn.execute(
                    "INSERT INTO tag (tag_type, tag_name, tag_scope) VALUES (?, ?, 'global') ON CONFLICT DO NOTHING",
                    key,
                )
                tid = conn.execute("SELECT id FROM tag WHERE tag_type = ? AND tag_name = ?", key).fetchone()[
                    0
                ]
                tag_ids[key] = tid
            links.append((job_id, tid))
        conn.executemany("INSERT OR IGNORE INTO jobtag (job_id, tag_id) VALUES (?, ?)", links)
    return ids


def _duplicate(job: Job) -> DuplicateJobError:
    return DuplicateJobError(
        f"a job with jobId {job.job_id} on cluster {job.cluster!r} and startTime {job.start_time} already exists"
    )


def _tag_exists(tag_type: str, name: str) -> RepositoryError:
    return RepositoryError(f"a tag with type {tag_type!r} and name {name!r} already exists (in some scope)")


def _attach_error(job_id: int, tag_id: int, missing: bool) -> RepositoryError:
    if missing:
        return RepositoryError(f"cannot attach tag {tag_id} to job {job_id}: job or tag does not exist")
    return RepositoryError(f"tag {tag_id} is already attached to job {job_id}")


def _config_value(value: Any) -> Any:
    try:
        return q.load_json(value)
    except ValueError:
        return value.decode() if isinstance(value, bytes) else value
