"""The backend database: open a repository by driver name, and the schema commands.

`open_repository` is what the server calls at start; `migrate_db`, `revert_db` and `force_db` implement
`-migrate-db`, `-revert-db` and `-force-db` (spec backend-data.md §3.8) for both engines.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

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

__all__ = [
    "SCHEMA_VERSION",
    "DuplicateJobError",
    "JobFilter",
    "NodeStateRow",
    "Order",
    "Repository",
    "RepositoryError",
    "SchemaVersionError",
    "engine_of",
    "force_db",
    "migrate_db",
    "open_repository",
    "revert_db",
]

log = logging.getLogger("ccbackend.repository")

_SQLITE = ("", "sqlite", "sqlite3")
_POSTGRES = ("postgres", "postgresql", "pgx")


def engine_of(driver: str) -> str:
    """'sqlite' or 'postgres' for a `db-driver` value; RepositoryError names unknown drivers."""
    d = (driver or "").strip().lower()
    if d in _SQLITE:
        return "sqlite"
    if d in _POSTGRES:
        return "postgres"
    raise RepositoryError(f"unsupported db-driver {driver!r} (use sqlite3 or postgres)")


async def open_repository(driver: str, db: str, *, options: dict[str, Any] | None = None) -> Repository:
    """Open the database, check its schema version (SchemaVersionError says what to run) and return it.

    A new or empty database is created at schema version 11.
    """
    if not db:
        raise RepositoryError("no database given (main.db is empty)")
    if engine_of(driver) == "sqlite":
        from .sqlite import SqliteRepository

        return await SqliteRepository.open(db, options)
    from .postgres import PostgresRepository

    return await PostgresRepository.open(db, options)


async def migrate_db(driver: str, db: str) -> tuple[int, int]:
    """Apply all pending up-migrations (`-migrate-db`); returns (version before, version after)."""
    if engine_of(driver) == "sqlite":
        from .sqlite import sqlite_migrate

        result = await asyncio.to_thread(sqlite_migrate, db)
    else:
        from .postgres import postgres_migrate

        result = await postgres_migrate(db)
    if result[0] == result[1]:
        log.info("database schema version %d is already up to date", result[1])
    else:
        log.info("database migrated from schema version %d to %d", *result)
    return result


async def revert_db(driver: str, db: str) -> tuple[int, int]:
    """Migrate down from version 11 to 10 (`-revert-db`); returns (from, to)."""
    if engine_of(driver) == "sqlite":
        from .sqlite import sqlite_revert

        result = await asyncio.to_thread(sqlite_revert, db)
    else:
        from .postgres import postgres_revert

        result = await postgres_revert(db)
    log.info("database reverted from schema version %d to %d", *result)
    return result


async def force_db(driver: str, db: str) -> None:
    """Set the schema version to 11 and clear the dirty flag without running any SQL (`-force-db`)."""
    if engine_of(driver) == "sqlite":
        from .sqlite import sqlite_force

        await asyncio.to_thread(sqlite_force, db)
    else:
        from .postgres import postgres_force

        await postgres_force(db)
    log.info("database schema version forced to %d", SCHEMA_VERSION)
