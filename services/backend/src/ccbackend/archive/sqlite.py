"""SQLite job-archive backend (``archive.kind: "sqlite"``, spec backend-data.md §1.7).

One database file holds everything, in upstream's tables: ``jobs`` (meta.json bytes and plain or
gzip data bytes per job, unique on job id + cluster + start time), ``clusters`` (cluster.json bytes)
and ``metadata`` (``version`` = "3", ``compress_last``). Writes are upserts on the unique keys.

Unlike upstream, the cluster list also includes clusters that have a stored cluster.json but no
jobs yet (upstream lists only clusters that have jobs, so a fresh archive has none).

One connection, serialised by a lock, so the methods can be called from worker threads
(``asyncio.to_thread``); WAL mode lets other processes read meanwhile.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cccommon.schema import JobMeta

from .base import (
    ARCHIVE_VERSION,
    ArchiveBackend,
    ArchiveError,
    JobKey,
    JobNotFoundError,
    Progress,
    check_name,
    decode_meta,
    job_key,
    report_skipped,
)

__all__ = ["SqliteArchive"]

log = logging.getLogger("ccbackend.archive.sqlite")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    cluster TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    meta_json BLOB NOT NULL,
    data_json BLOB,
    data_compressed BOOLEAN DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE(job_id, cluster, start_time)
);
CREATE INDEX IF NOT EXISTS idx_jobs_cluster ON jobs(cluster);
CREATE INDEX IF NOT EXISTS idx_jobs_start_time ON jobs(start_time);
CREATE INDEX IF NOT EXISTS idx_jobs_cluster_start ON jobs(cluster, start_time);
CREATE INDEX IF NOT EXISTS idx_jobs_lookup ON jobs(cluster, job_id, start_time);
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY,
    config_json BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS metadata (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-64000",
    "PRAGMA busy_timeout=60000",
)

_WHERE_KEY = "job_id = ? AND cluster = ? AND start_time = ?"
_ITER_BATCH = 500


class SqliteArchive(ArchiveBackend):
    """A job archive in one SQLite database file."""

    kind = "sqlite"

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(db_path)
        self._lock = threading.RLock()
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            for p in _PRAGMAS:
                self._db.execute(p)
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise ArchiveError(self.path, f"cannot open SQLite archive: {e}") from None

    def __repr__(self) -> str:
        return f"SqliteArchive({str(self.path)!r})"

    def close(self) -> None:
        """Checkpoint the WAL into the database file and close the connection."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.close()
            except sqlite3.ProgrammingError:  # already closed
                pass

    def _exec(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, args)
            except sqlite3.Error as e:
                raise ArchiveError(self.path, f"database error: {e}") from None

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> tuple[object, ...] | None:
        with self._lock:
            return self._exec(sql, args).fetchone()

    # ------------------------------------------------------------------ version and clusters

    def version(self, *, bootstrap: bool = False) -> int:
        """Check metadata ``version`` is 3; with `bootstrap` a database without it is initialised."""
        row = self._one("SELECT value FROM metadata WHERE key = 'version'")
        if row is None:
            empty = self._one("SELECT COUNT(*) FROM jobs") == (0,)
            if not (bootstrap and empty):
                raise ArchiveError(self.path, "archive version missing in table metadata")
            self._exec("INSERT INTO metadata (key, value) VALUES ('version', ?)", (str(ARCHIVE_VERSION),))
            log.info("%s: new SQLite job archive initialised (version %d)", self.path, ARCHIVE_VERSION)
            return ARCHIVE_VERSION
        value = str(row[0]).strip()
        if not value.isdecimal():
            raise ArchiveError(self.path, f"invalid archive version {value!r}, need {ARCHIVE_VERSION}")
        if int(value) != ARCHIVE_VERSION:
            raise ArchiveError(self.path, f"unsupported version {value}, need {ARCHIVE_VERSION}")
        return ARCHIVE_VERSION

    def clusters(self) -> list[str]:
        """Clusters that have jobs or a stored cluster.json, sorted."""
        with self._lock:
            rows = self._exec("SELECT DISTINCT cluster FROM jobs UNION SELECT name FROM clusters").fetchall()
        return sorted(r[0] for r in rows)

    def _where(self, name: str, file: str = "cluster.json") -> str:
        return f"{self.path}:{name}/{file}"

    def _get_cluster(self, name: str) -> bytes:
        row = self._one("SELECT config_json FROM clusters WHERE name = ?", (name,))
        if row is None:
            raise ArchiveError(self._where(name), f"unknown cluster {name!r}: no cluster.json")
        return bytes(row[0])  # type: ignore[arg-type]

    def _put_cluster(self, name: str, raw: bytes) -> None:
        check_name(name)
        self._exec(
            "INSERT INTO clusters (name, config_json, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET config_json = excluded.config_json, updated_at = excluded.updated_at",
            (name, raw, int(time.time())),
        )

    # ------------------------------------------------------------------ jobs

    def _where_job(self, key: JobKey, file: str) -> str:
        return f"{self.path}:{key.rel_dir()}/{file}"

    def job_keys(self, cluster: str | None = None) -> list[JobKey]:
        with self._lock:
            if cluster is None:
                rows = self._exec("SELECT cluster, job_id, start_time FROM jobs ORDER BY 1, 2, 3").fetchall()
            else:
                check_name(cluster)
                rows = self._exec(
                    "SELECT cluster, job_id, start_time FROM jobs WHERE cluster = ? ORDER BY 1, 2, 3", (cluster,)
                ).fetchall()
        return [JobKey(c, j, s) for c, j, s in rows]

    def exists(self, cluster: str, job_id: int, start_time: int) -> bool:
        key = job_key(cluster, job_id, start_time)
        row = self._one(f"SELECT 1 FROM jobs WHERE {_WHERE_KEY}", (key.job_id, key.cluster, key.start_time))
        return row is not None

    def _get_meta(self, key: JobKey) -> bytes:
        row = self._one(f"SELECT meta_json FROM jobs WHERE {_WHERE_KEY}", (key.job_id, key.cluster, key.start_time))
        if row is None:
            raise JobNotFoundError(self._where_job(key, "meta.json"), "job not found")
        return bytes(row[0])  # type: ignore[arg-type]

    def _get_data(self, key: JobKey) -> tuple[bytes, bool]:
        row = self._one(
            f"SELECT data_json, data_compressed FROM jobs WHERE {_WHERE_KEY}",
            (key.job_id, key.cluster, key.start_time),
        )
        if row is None or row[0] is None:
            raise JobNotFoundError(self._where_job(key, "data.json"), "job data not found")
        return bytes(row[0]), bool(row[1])  # type: ignore[arg-type]

    def _put_job(self, key: JobKey, meta: bytes, data: bytes, gz: bool) -> None:
        now = int(time.time())
        self._exec(
            "INSERT INTO jobs (job_id, cluster, start_time, meta_json, data_json, data_compressed, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(job_id, cluster, start_time) DO UPDATE SET meta_json = excluded.meta_json, "
            "data_json = excluded.data_json, data_compressed = excluded.data_compressed, "
            "updated_at = excluded.updated_at",
            (key.job_id, key.cluster, key.start_time, meta, data, int(gz), now, now),
        )

    def _put_meta(self, key: JobKey, meta: bytes) -> None:
        cur = self._exec(
            f"UPDATE jobs SET meta_json = ?, updated_at = ? WHERE {_WHERE_KEY}",
            (meta, int(time.time()), key.job_id, key.cluster, key.start_time),
        )
        if cur.rowcount == 0:
            raise JobNotFoundError(self._where_job(key, "meta.json"), "job not found")

    def _remove(self, key: JobKey) -> None:
        cur = self._exec(f"DELETE FROM jobs WHERE {_WHERE_KEY}", (key.job_id, key.cluster, key.start_time))
        if cur.rowcount == 0:
            raise JobNotFoundError(self._where_job(key, "meta.json"), "job not found")

    def clean(self, before_ts: int, *, cluster: str | None = None, progress: Progress | None = None) -> int:
        """Delete every job that started before `before_ts` in one statement; returns the count."""
        if cluster is None:
            cur = self._exec("DELETE FROM jobs WHERE start_time < ?", (before_ts,))
        else:
            check_name(cluster)
            cur = self._exec("DELETE FROM jobs WHERE start_time < ? AND cluster = ?", (before_ts, cluster))
        if progress is not None:
            progress(cur.rowcount, cur.rowcount)
        if cur.rowcount:
            log.info("retention: removed %d jobs from %s", cur.rowcount, self.path)
        return cur.rowcount

    def iter_jobs(
        self,
        cluster: str | None = None,
        *,
        progress: Progress | None = None,
        on_error: Callable[[ArchiveError], None] | None = None,
    ) -> Iterator[JobMeta]:
        """Yield every job's meta, read in batches in (cluster, job id, start time) order."""
        if cluster is not None:
            check_name(cluster)
        cond, args = ("WHERE cluster = ?", (cluster,)) if cluster is not None else ("", ())
        total_row = self._one(f"SELECT COUNT(*) FROM jobs {cond}", args)
        total = int(total_row[0]) if total_row else 0  # type: ignore[call-overload]
        done = 0
        last: tuple[str, int, int] | None = None
        while True:
            where = cond
            params: tuple[object, ...] = args
            if last is not None:
                where = (cond + " AND " if cond else "WHERE ") + "(cluster, job_id, start_time) > (?, ?, ?)"
                params = (*args, *last)
            with self._lock:
                rows = self._exec(
                    f"SELECT cluster, job_id, start_time, meta_json FROM jobs {where} "
                    f"ORDER BY cluster, job_id, start_time LIMIT {_ITER_BATCH}",
                    params,
                ).fetchall()
            if not rows:
                return
            for c, j, s, raw in rows:
                done += 1
                key = JobKey(c, j, s)
                try:
                    meta: JobMeta | None = decode_meta(bytes(raw), self._where_job(key, "meta.json"))
                except ArchiveError as e:
                    report_skipped(e, on_error)
                    meta = None
                if progress is not None:
                    progress(done, total)
                if meta is not None:
                    yield meta
            last = (rows[-1][0], rows[-1][1], rows[-1][2])

    # ------------------------------------------------------------------ compression marker

    def _get_marker(self) -> int | None:
        row = self._one("SELECT value FROM metadata WHERE key = 'compress_last'")
        if row is None:
            return None
        try:
            return int(str(row[0]))
        except ValueError:
            log.warning("%s: ignoring invalid compress_last %r", self.path, row[0])
            return None

    def _put_marker(self, ts: int) -> None:
        self._exec(
            "INSERT INTO metadata (key, value) VALUES ('compress_last', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(ts),),
        )
