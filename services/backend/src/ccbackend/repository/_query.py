"""SQL shared by both engines: the job column list, WHERE/ORDER BY building from JobFilter/Order, row mapping.

Nothing a caller supplies is ever interpolated into SQL: values are bound parameters and sort columns
come from a fixed whitelist.  The two dialects differ only in placeholders, list membership, JSON access
and case-insensitive LIKE.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..model import JOB_STATES, BadRequest, Job, JobTag, User
from .base import SCHEMA_VERSION, JobFilter, NodeStateRow, Order, SchemaVersionError

JOB_COLUMNS = (
    "id",
    "job_id",
    "cluster",
    "subcluster",
    "submit_time",
    "start_time",
    "hpc_user",
    "project",
    "cluster_partition",
    "array_job_id",
    "duration",
    "walltime",
    "job_state",
    "meta_data",
    "resources",
    "num_nodes",
    "num_hwthreads",
    "num_acc",
    "smt",
    "shared",
    "monitoring_status",
    "energy",
    "energy_footprint",
    "footprint",
)
"""Columns of `job` in table order; SELECTs and INSERTs use exactly this order."""

INSERT_COLUMNS = JOB_COLUMNS[1:]
SELECT_JOB = ", ".join(f"job.{c}" for c in JOB_COLUMNS)
_JSON_COLUMNS = {"meta_data", "resources", "energy_footprint", "footprint"}

# Sort keys a client may name (DB column, Python field or JSON name) -> DB column.
_ORDER_COLUMNS: dict[str, str] = {}
for _col in JOB_COLUMNS:
    if _col not in _JSON_COLUMNS:
        _ORDER_COLUMNS[_col] = _col
_ORDER_COLUMNS.update(
    {
        "user": "hpc_user",
        "partition": "cluster_partition",
        "sub_cluster": "subcluster",
        "subCluster": "subcluster",
        "jobId": "job_id",
        "submitTime": "submit_time",
        "startTime": "start_time",
        "arrayJobId": "array_job_id",
        "jobState": "job_state",
        "numNodes": "num_nodes",
        "numHwthreads": "num_hwthreads",
        "numHWThreads": "num_hwthreads",
        "numAcc": "num_acc",
        "monitoringStatus": "monitoring_status",
    }
)

_FOOTPRINT_KEY = re.compile(r"^[A-Za-z0-9_]{1,128}$")


def footprint_key(key: str) -> str:
    """Validate a footprint key such as `flops_any_avg` (letters, digits, underscores)."""
    if not _FOOTPRINT_KEY.match(key):
        raise BadRequest(f"invalid footprint key {key!r}: only letters, digits and '_' are allowed")
    return key


def order_column(field: str) -> str:
    """DB column for a sort field; BadRequest names the field when it is not a sortable job column."""
    col = _ORDER_COLUMNS.get(field)
    if col is None:
        raise BadRequest(f"invalid sorting field: {field!r}")
    return col


def like_pattern(text: str) -> str:
    """`%text%` with LIKE metacharacters escaped by backslash (use with ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Dialect:
    """The few SQL spellings that differ between SQLite and PostgreSQL."""

    name: str

    @property
    def postgres(self) -> bool:
        return self.name == "postgres"


SQLITE = Dialect("sqlite")
POSTGRES = Dialect("postgres")


class Sql:
    """Collects bound parameters while SQL text is assembled."""

    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        self.params: list[Any] = []

    def p(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}" if self.d.postgres else "?"

    def in_list(self, expr: str, values: Sequence[Any]) -> str:
        if not values:
            return "0 = 1"
        if self.d.postgres:
            return f"{expr} = ANY({self.p(list(values))})"
        return f"{expr} IN ({', '.join(self.p(v) for v in values)})"

    def ilike(self, expr: str, text: str) -> str:
        op = "ILIKE" if self.d.postgres else "LIKE"
        return f"{expr} {op} {self.p(like_pattern(text))} ESCAPE '\\'"

    def footprint_value(self, key: str) -> str:
        key = footprint_key(key)
        if self.d.postgres:
            return f"(job.footprint ->> {self.p(key)}::text)::double precision"
        return f"json_extract(CAST(job.footprint AS TEXT), {self.p('$.' + key)})"

    def range(self, expr: str, rng: tuple[Any, Any] | None) -> list[str]:
        """Inclusive range condition; `expr` appears once (it may carry its own bound parameter)."""
        if rng is None:
            return []
        lo, hi = rng
        if lo is not None and hi is not None:
            return [f"{expr} BETWEEN {self.p(lo)} AND {self.p(hi)}"]
        if lo is not None:
            return [f"{expr} >= {self.p(lo)}"]
        if hi is not None:
            return [f"{expr} <= {self.p(hi)}"]
        return []


def where_clause(sql: Sql, flt: JobFilter, now: int | None = None) -> str:
    """The WHERE text (with leading ' WHERE ') for a JobFilter, or '' when it has no conditions."""
    c: list[str] = []
    if flt.ids is not None:
        c.append(sql.in_list("job.id", flt.ids))
    if flt.job_id is not None:
        c.append(sql.in_list("job.job_id", flt.job_id))
    if flt.array_job_id is not None:
        c.append(f"job.array_job_id = {sql.p(flt.array_job_id)}")
    for col, values in (
        ("cluster", flt.cluster),
        ("cluster_partition", flt.partition),
        ("subcluster", flt.sub_cluster),
        ("hpc_user", flt.user),
        ("project", flt.project),
        ("job_state", flt.state),
    ):
        if values is not None:
            c.append(sql.in_list(f"job.{col}", values))
    if flt.user_contains:
        c.append(sql.ilike("job.hpc_user", flt.user_contains))
    if flt.project_contains:
        c.append(sql.ilike("job.project", flt.project_contains))
    if flt.job_name_contains:
        expr = (
            "(job.meta_data ->> 'jobName')"
            if sql.d.postgres
            else "json_extract(CAST(job.meta_data AS TEXT), '$.jobName')"
        )
        c.append(sql.ilike(expr, flt.job_name_contains))
    if flt.shared is not None:
        c.append(f"job.shared = {sql.p(flt.shared)}")
    c += sql.range("job.start_time", flt.start_time)
    c += sql.range("job.duration", flt.duration)
    c += sql.range("job.num_nodes", flt.num_nodes)
    c += sql.range("job.num_hwthreads", flt.num_hwthreads)
    c += sql.range("job.num_acc", flt.num_acc)
    c += sql.range("job.energy", flt.energy)
    for key, rng in (flt.footprint or {}).items():
        c += sql.range(sql.footprint_value(key), rng)
    if flt.tags is not None:
        c.append(f"job.id IN (SELECT jobtag.job_id FROM jobtag WHERE {sql.in_list('jobtag.tag_id', flt.tags)})")
    if flt.node:
        if sql.d.postgres:
            host = "(r ->> 'hostname')"
            c.append(f"EXISTS (SELECT 1 FROM jsonb_array_elements(job.resources) r WHERE {sql.ilike(host, flt.node)})")
        else:
            host = "json_extract(r.value, '$.hostname')"
            c.append(
                "EXISTS (SELECT 1 FROM json_each(CAST(job.resources AS TEXT)) r "
                f"WHERE {sql.ilike(host, flt.node)})"
            )
    if flt.min_running_for is not None:
        t = int(time.time()) if now is None else now
        c.append(f"(job.job_state <> 'running' OR ({sql.p(t)} - job.start_time) > {sql.p(flt.min_running_for)})")
    if flt.visible_users is not None or flt.visible_projects is not None:
        vis = []
        if flt.visible_users is not None:
            vis.append(sql.in_list("job.hpc_user", flt.visible_users))
        if flt.visible_projects is not None:
            vis.append(sql.in_list("job.project", flt.visible_projects))
        c.append("(" + " OR ".join(vis) + ")")
    return (" WHERE " + " AND ".join(c)) if c else ""


def order_clause(sql: Sql, order: Order | None) -> str:
    """ORDER BY text; ties are broken by the DB id so that pages are stable; jobs without the footprint key last."""
    order = order or Order()
    direction = "DESC" if order.descending else "ASC"
    if order.field.startswith("footprint:"):
        expr = sql.footprint_value(order.field.split(":", 1)[1])
        return f" ORDER BY {expr} {direction} NULLS LAST, job.id {direction}"
    return f" ORDER BY job.{order_column(order.field)} {direction}, job.id {direction}"


def find_job_sql(sql: Sql, job_id: int, cluster: str | None, start_time: int | None) -> str:
    """The newest job with a batch id, optionally on a cluster / at a start time (one row)."""
    text = f"SELECT {SELECT_JOB} FROM job WHERE job.job_id = {sql.p(job_id)}"
    if cluster is not None:
        text += f" AND job.cluster = {sql.p(cluster)}"
    if start_time is not None:
        text += f" AND job.start_time = {sql.p(start_time)}"
    return text + " ORDER BY job.start_time DESC, job.id DESC LIMIT 1"


def list_jobs_sql(sql: Sql, flt: JobFilter, order: Order | None, limit: int | None, offset: int) -> str:
    """One page of jobs matching `flt` in the requested order."""
    return f"SELECT {SELECT_JOB} FROM job" + where_clause(sql, flt) + order_clause(sql, order) + page_clause(
        sql, limit, offset
    )


def page_clause(sql: Sql, limit: int | None, offset: int) -> str:
    if limit is None and not offset:
        return ""
    if limit is not None and limit < 0 or offset < 0:
        raise BadRequest("limit and offset must not be negative")
    lim = -1 if limit is None and not sql.d.postgres else limit
    lim_sql = "ALL" if lim is None else sql.p(lim)
    return f" LIMIT {lim_sql} OFFSET {sql.p(offset)}"


# ---- values in and out --------------------------------------------------------------------------


def load_json(value: Any) -> Any:
    """Decode a JSON column that may be TEXT, BLOB (bytes) or already decoded (PostgreSQL jsonb codec)."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview | str):
        if not value:
            return None
        return orjson.loads(bytes(value) if isinstance(value, memoryview) else value)
    return value


def dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def job_row(job: Job) -> tuple[Any, ...]:
    """Values for INSERT_COLUMNS (JSON as text; footprint never SQL NULL, resources always an array)."""
    if job.job_state not in JOB_STATES:
        raise BadRequest(f"invalid job state {job.job_state!r}")
    resources = [r.model_dump(exclude_none=True) for r in job.resources]
    return (
        job.job_id,
        job.cluster,
        job.sub_cluster,
        job.submit_time,
        job.start_time,
        job.user,
        job.project,
        job.partition,
        job.array_job_id,
        job.duration,
        job.walltime,
        job.job_state,
        dump_json(job.meta_data),
        dump_json(resources),
        job.num_nodes,
        job.num_hwthreads,
        job.num_acc,
        job.smt,
        job.shared,
        job.monitoring_status,
        job.energy,
        None if job.energy_footprint is None else dump_json(job.energy_footprint),
        dump_json(job.footprint),
    )


def job_from_row(row: Sequence[Any], with_meta_data: bool = True, now: int | None = None) -> Job:
    """A `job` row (JOB_COLUMNS order) as model.Job; running jobs get their live duration."""
    (
        id_,
        job_id,
        cluster,
        subcluster,
        submit_time,
        start_time,
        user,
        project,
        partition,
        array_job_id,
        duration,
        walltime,
        state,
        meta_data,
        resources,
        num_nodes,
        num_hwthreads,
        num_acc,
        smt,
        shared,
        monitoring_status,
        energy,
        energy_footprint,
        footprint,
    ) = row
    if state == "running":
        duration = max(0, (int(time.time()) if now is None else now) - int(start_time))
    try:
        data = {
            "id": id_,
            "job_id": job_id,
            "cluster": cluster,
            "sub_cluster": subcluster or "",
            "submit_time": submit_time or 0,
            "start_time": start_time or 0,
            "user": user,
            "project": project,
            "partition": partition or "",
            "array_job_id": array_job_id or 0,
            "duration": duration or 0,
            "walltime": walltime or 0,
            "job_state": state,
            "meta_data": load_json(meta_data) if with_meta_data else None,
            "resources": load_json(resources) or [],
            "num_nodes": num_nodes or 0,
            "num_hwthreads": num_hwthreads or 0,
            "num_acc": num_acc or 0,
            "smt": smt or 0,
            "shared": shared,
            "monitoring_status": monitoring_status,
            "energy": energy or 0.0,
            "energy_footprint": load_json(energy_footprint),
            "footprint": load_json(footprint),
        }
        return Job.model_validate(data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"job row with db id {id_} is malformed: {e}") from None


def tag_from_row(row: Sequence[Any]) -> JobTag:
    """(id, tag_type, tag_name, tag_scope) -> JobTag."""
    return JobTag(id=row[0], type=row[1], name=row[2], scope=row[3] or "global")


USER_COLUMNS = "username, password, ldap, name, roles, email, projects"


def user_from_row(row: Sequence[Any]) -> User:
    username, password, ldap, name, roles, email, projects = row
    return User(
        username=username,
        password=password,
        auth_source=int(ldap or 0),
        name=name or "",
        roles=list(load_json(roles) or []),
        email=email or "",
        projects=list(load_json(projects) or []),
    )


def user_row(user: User) -> tuple[Any, ...]:
    """Values for (username, password, ldap, name, roles, email, projects)."""
    return (
        user.username,
        user.password,
        int(user.auth_source),
        user.name or None,
        dump_json(list(user.roles)),
        user.email or None,
        dump_json(list(user.projects)),
    )


NODE_STATE_SELECT = (
    "SELECT n.hostname, n.cluster, n.subcluster, n.meta_data, s.time_stamp, s.node_state, s.health_state, "
    "s.health_metrics, s.jobs_running, s.cpus_allocated, s.memory_allocated, s.gpus_allocated "
    "FROM node_state s JOIN node n ON n.id = s.node_id "
    "WHERE s.id = (SELECT s2.id FROM node_state s2 WHERE s2.node_id = n.id "
    "ORDER BY s2.time_stamp DESC, s2.id DESC LIMIT 1)"
)


def node_state_from_row(row: Sequence[Any]) -> NodeStateRow:
    meta = load_json(row[3])
    return NodeStateRow(
        hostname=row[0],
        cluster=row[1],
        sub_cluster=row[2],
        meta_data=meta if isinstance(meta, dict) else None,
        time_stamp=int(row[4]),
        node_state=row[5],
        health_state=row[6],
        health_metrics=(row[7].decode() if isinstance(row[7], bytes) else row[7]) or "",
        jobs_running=row[8],
        cpus_allocated=row[9],
        memory_allocated=row[10],
        gpus_allocated=row[11],
    )


def omit_tagged_clause(omit_tagged: str) -> str:
    """Extra condition of delete_jobs_before for omit-tagged none | all | user."""
    if omit_tagged in ("", "none"):
        return ""
    if omit_tagged == "all":
        return " AND job.id NOT IN (SELECT jobtag.job_id FROM jobtag)"
    if omit_tagged == "user":
        return (
            " AND job.id NOT IN (SELECT jobtag.job_id FROM jobtag JOIN tag ON tag.id = jobtag.tag_id"
            " WHERE tag.tag_type NOT IN ('app', 'jobClass'))"
        )
    raise BadRequest(f"invalid omit-tagged value {omit_tagged!r} (none, all or user)")


def hostnames(resources: Any) -> list[str]:
    """Hostnames of a decoded `resources` column."""
    res = load_json(resources) or []
    return [r["hostname"] for r in res if isinstance(r, dict) and r.get("hostname")]


def check_version(version: tuple[int, bool] | None, where: str) -> None:
    """Raise SchemaVersionError unless the database is at version 11 and clean (None: empty, allowed)."""
    if version is None:
        return
    v, dirty = version
    if dirty:
        raise SchemaVersionError(
            f"database {where}: schema version {v} is dirty (a migration failed half-way): "
            "fix the database manually, then run -force-db"
        )
    if v == 0:
        raise SchemaVersionError(
            f"database {where} is a legacy database without schema_migrations table (version 0): "
            "it cannot be used or migrated"
        )
    if v < SCHEMA_VERSION:
        raise SchemaVersionError(f"database {where}: schema version {v} is outdated, run -migrate-db")
    if v > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database {where}: schema version {v} is newer than the supported version {SCHEMA_VERSION}; "
            "use a newer cc-backend or run -revert-db with the version that created it"
        )


_INDEX_STMT = re.compile(
    r"^\s*(CREATE\s+INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?|DROP\s+INDEX\s+(?:IF\s+EXISTS\s+)?)(\w+)(.*)$",
    re.IGNORECASE | re.DOTALL,
)


def job_index_statements(scripts: list[str]) -> dict[str, str]:
    """Index name -> `CREATE INDEX IF NOT EXISTS` statement for the job indexes the scripts leave behind."""
    out: dict[str, str] = {}
    for script in scripts:
        text = "\n".join(ln for ln in script.splitlines() if not ln.lstrip().startswith("--"))
        for stmt in text.split(";"):
            m = _INDEX_STMT.match(stmt)
            if not m:
                continue
            head, name, rest = m.groups()
            if head.upper().startswith("DROP"):
                out.pop(name, None)
            elif re.match(r"\s+ON\s+job\s*\(", rest, re.IGNORECASE):
                out[name] = f"CREATE INDEX IF NOT EXISTS {name} {' '.join(rest.split())}"
    return out
