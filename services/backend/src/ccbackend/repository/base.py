"""The repository interface: everything the backend stores in its database, engine-independent.

Two engines implement it: `SqliteRepository` (default, schema-compatible with upstream cc-backend
version 11, spec backend-data.md §3) and `PostgresRepository` (asyncpg, same logical schema).  Every
method is a coroutine and never blocks the event loop.  The same test suite runs against both.

Visibility (who may see which jobs, spec §4.2) is expressed in `JobFilter.visible_users` /
`visible_projects` which the auth layer fills in; the repository only applies them.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..model import Job, JobTag, User

__all__ = [
    "SCHEMA_VERSION",
    "DuplicateJobError",
    "JobFilter",
    "NodeStateRow",
    "Order",
    "Repository",
    "RepositoryError",
    "SchemaVersionError",
]

SCHEMA_VERSION = 11


class RepositoryError(Exception):
    """A database operation failed; the message is safe to show to API clients."""


class SchemaVersionError(RepositoryError):
    """The database has another schema version (or the dirty flag); the message says what to run."""


class DuplicateJobError(RepositoryError):
    """An insert collided with the UNIQUE(job_id, cluster, start_time) key."""


@dataclass
class JobFilter:
    """Conditions for job queries; all given conditions must hold (lists are OR inside one condition).

    Ranges are inclusive `(lo, hi)` pairs where either side may be None.  `footprint` maps a footprint
    key such as `flops_any_avg` to a range on `json_extract(footprint, '$.<key>')`.
    """

    ids: list[int] | None = None
    job_id: list[int] | None = None
    array_job_id: int | None = None
    cluster: list[str] | None = None
    partition: list[str] | None = None
    sub_cluster: list[str] | None = None
    user: list[str] | None = None
    user_contains: str | None = None
    project: list[str] | None = None
    project_contains: str | None = None
    job_name_contains: str | None = None
    state: list[str] | None = None
    shared: str | None = None
    start_time: tuple[int | None, int | None] | None = None
    duration: tuple[int | None, int | None] | None = None
    num_nodes: tuple[int | None, int | None] | None = None
    num_hwthreads: tuple[int | None, int | None] | None = None
    num_acc: tuple[int | None, int | None] | None = None
    energy: tuple[float | None, float | None] | None = None
    footprint: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    tags: list[int] | None = None
    node: str | None = None
    """Jobs that ran on a host whose name contains this text (json_each over resources)."""
    min_running_for: int | None = None
    # Row-level visibility set by the auth layer: None = no restriction.  A job is visible when its
    # user is in visible_users OR its project is in visible_projects.
    visible_users: list[str] | None = None
    visible_projects: list[str] | None = None


@dataclass
class Order:
    """Sort order: a job column (`start_time`, `duration`, `num_nodes`, ...) or `footprint:<key>`."""

    field: str = "start_time"
    descending: bool = True


@dataclass
class NodeStateRow:
    """One scheduler/health report of a node (table node_state, spec §3.3)."""

    hostname: str
    cluster: str
    sub_cluster: str
    time_stamp: int
    node_state: str
    health_state: str
    health_metrics: str = ""
    jobs_running: int = 0
    cpus_allocated: int = 0
    memory_allocated: int = 0
    gpus_allocated: int = 0
    meta_data: dict[str, str] | None = None


class Repository(abc.ABC):
    """The backend database.  Implementations: sqlite.SqliteRepository, postgres.PostgresRepository."""

    engine: str = ""

    # ---- lifecycle / schema -------------------------------------------------------------------------
    @abc.abstractmethod
    async def close(self) -> None:
        """Close all connections (SQLite: checkpoint the WAL with TRUNCATE first)."""

    @abc.abstractmethod
    async def optimize(self) -> None:
        """VACUUM and ANALYZE (`-optimize-db`)."""

    @contextlib.asynccontextmanager
    async def bulk_import(self) -> AsyncIterator[None]:
        """Context for mass inserts (`-init-db`): engines may drop and rebuild job indexes around it."""
        yield

    # ---- jobs --------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def insert_job(self, job: Job) -> int:
        """Insert a job row (running or finished) and return its new DB id; tags are NOT handled here.

        Raises DuplicateJobError on the unique (job_id, cluster, start_time) key.
        """

    @abc.abstractmethod
    async def insert_jobs(self, jobs: list[Job]) -> list[int | None]:
        """Bulk insert in one transaction (`-init-db`): ids in order, None where the unique key collided.

        Tags in `job.tags` are created (by type+name, scope `global`) and linked.
        """

    @abc.abstractmethod
    async def start_times(self, job_id: int, cluster: str) -> list[tuple[int, int]]:
        """(db id, start_time) of every job with this batch id on this cluster (duplicate rule)."""

    @abc.abstractmethod
    async def get_job(self, id: int) -> Job | None:
        """Job by DB id with meta_data, or None.  `tags` is not filled (use job_tags)."""

    @abc.abstractmethod
    async def find_job(self, job_id: int, cluster: str | None = None, start_time: int | None = None) -> Job | None:
        """Newest job (highest start_time) with this batch id, optionally on a cluster / at a start time."""

    @abc.abstractmethod
    async def list_jobs(
        self,
        flt: JobFilter,
        order: Order | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_meta_data: bool = False,
    ) -> list[Job]:
        """Jobs matching `flt`, sorted, one page.  Without with_meta_data `meta_data` is None."""

    @abc.abstractmethod
    async def count_jobs(self, flt: JobFilter) -> int:
        """Number of jobs matching `flt`."""

    @abc.abstractmethod
    async def stop_job(self, id: int, job_state: str, duration: int, monitoring_status: int) -> None:
        """Write the final state, duration and monitoring status of a job."""

    @abc.abstractmethod
    async def set_monitoring_status(self, id: int, status: int) -> None: ...

    @abc.abstractmethod
    async def update_archived(
        self,
        id: int,
        footprint: dict[str, float],
        energy_footprint: dict[str, float],
        energy: float,
        monitoring_status: int,
    ) -> None:
        """One UPDATE after archiving: footprint, energy footprint, energy, status (spec §3.7 step 6)."""

    @abc.abstractmethod
    async def update_footprint(self, id: int, footprint: dict[str, float]) -> None: ...

    @abc.abstractmethod
    async def update_running_durations(self, now: int) -> int:
        """duration = now - start_time for all running jobs; returns the number of rows."""

    @abc.abstractmethod
    async def set_meta_data(self, id: int, key: str, value: str) -> dict[str, str]:
        """Set one metaData key and return the merged map."""

    @abc.abstractmethod
    async def delete_job(self, id: int) -> int:
        """Delete one job row (cascades to jobtag); returns rows deleted (0 or 1)."""

    @abc.abstractmethod
    async def delete_jobs_before(self, ts: int, omit_tagged: str = "none") -> int:
        """Delete jobs with start_time < ts.  omit_tagged: none | all | user (tags other than app/jobClass)."""

    @abc.abstractmethod
    async def delete_all_jobs(self) -> None:
        """Delete all rows of jobtag, tag and job (`-init-db`)."""

    @abc.abstractmethod
    async def running_jobs(self, cluster: str | None = None) -> list[Job]:
        """All jobs in state running."""

    @abc.abstractmethod
    async def used_nodes(self, before_ts: int) -> dict[str, list[str]]:
        """Hostnames of running jobs started before `before_ts`, grouped by cluster (sorted, unique)."""

    @abc.abstractmethod
    async def stop_jobs_exceeding_walltime(self, now: int, grace: int) -> int:
        """Walltime watchdog (spec §3.7 step 7); returns the number of jobs marked failed."""

    # ---- tags --------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def job_tags(self, job_ids: list[int]) -> dict[int, list[JobTag]]:
        """Tags of each job (all scopes; the caller filters by visibility)."""

    @abc.abstractmethod
    async def find_tag(self, tag_type: str, name: str, scope: str) -> JobTag | None: ...

    @abc.abstractmethod
    async def create_tag(self, tag_type: str, name: str, scope: str) -> JobTag:
        """Create a tag; RepositoryError when type+name already exist (any scope)."""

    @abc.abstractmethod
    async def list_tags(self) -> list[JobTag]: ...

    @abc.abstractmethod
    async def attach_tag(self, job_id: int, tag_id: int) -> None:
        """Link a tag to a job; RepositoryError if already linked."""

    @abc.abstractmethod
    async def detach_tag(self, job_id: int, tag_id: int) -> None: ...

    @abc.abstractmethod
    async def delete_tag(self, tag_id: int) -> None:
        """Delete a tag and all its links."""

    # ---- users -------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_user(self, username: str) -> User | None: ...

    @abc.abstractmethod
    async def add_user(self, user: User) -> None:
        """Insert a user (password already hashed); RepositoryError if it exists."""

    @abc.abstractmethod
    async def update_user(self, user: User) -> None:
        """Rewrite name, email, roles, projects, auth source and password of an existing user."""

    @abc.abstractmethod
    async def delete_user(self, username: str) -> int: ...

    @abc.abstractmethod
    async def list_users(self) -> list[User]: ...

    # ---- per-user UI configuration ------------------------------------------------------------------
    @abc.abstractmethod
    async def user_config(self, username: str) -> dict[str, Any]:
        """All `configuration` rows of a user, values JSON-decoded."""

    @abc.abstractmethod
    async def set_user_config(self, username: str, key: str, value: Any) -> None:
        """Upsert one configuration row (value stored JSON-encoded)."""

    # ---- nodes -------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_node_states(self, rows: list[NodeStateRow]) -> None:
        """Create missing `node` rows and append one `node_state` row per entry."""

    @abc.abstractmethod
    async def latest_node_states(self, cluster: str | None = None) -> list[NodeStateRow]:
        """The newest state row of every node."""
