"""The backend's own data types: the Job object of the REST API / database / meta.json, tags, users.

`Job` is the object upstream calls `schema.Job`: the body of `start_job`, each element of the job list,
the `Meta` of `GET /api/jobs/{id}` and (with `statistics`) the content of meta.json.  Field order is
the Go-JSON output order of spec backend-data.md §1.2, so `job_json()` reproduces upstream's key order.

Decoding for the REST API is strict (`Job.parse_api`): unknown keys such as the legacy `exclusive` or
`stopTime` are refused with an error naming the key, as upstream's `DisallowUnknownFields` does.
Reading meta.json from an archive is lenient (`Job.from_meta`): legacy keys are ignored.
"""

from __future__ import annotations

import enum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

__all__ = [
    "JOB_STATES",
    "ROLES",
    "SHARED_VALUES",
    "AuthSource",
    "BadRequest",
    "Job",
    "JobTag",
    "MonitoringStatus",
    "Role",
    "User",
    "job_json",
]

JOB_STATES = (
    "boot_fail",
    "cancelled",
    "completed",
    "deadline",
    "failed",
    "node_fail",
    "out_of_memory",
    "pending",
    "preempted",
    "running",
    "suspended",
    "timeout",
)
"""The 12 job states the v11 database accepts (spec §3.6)."""

SHARED_VALUES = ("none", "single_user", "multi_user")


class MonitoringStatus(enum.IntEnum):
    DISABLED = 0
    RUNNING_OR_ARCHIVING = 1
    ARCHIVING_FAILED = 2
    ARCHIVING_SUCCESSFUL = 3


class Role(enum.IntEnum):
    """Roles in upstream's order; a higher value is a more privileged role."""

    anonymous = 0
    api = 1
    user = 2
    manager = 3
    support = 4
    admin = 5


ROLES = ("api", "user", "manager", "support", "admin")
"""Role names that can be given to a user (`/config/roles/` lists exactly these)."""


class AuthSource(enum.IntEnum):
    """Value of the `hpc_user.ldap` column."""

    local = 0
    ldap = 1
    token = 2
    oidc = 3


class BadRequest(ValueError):
    """Input that the API answers with 400; the message is shown to the client."""


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel, extra="forbid")


class JobTag(_Model):
    """A tag as the API shows it: `{"id", "type", "name", "scope"}`; empty scope means `global`."""

    id: int = 0
    type: str
    name: str
    scope: str = "global"


class Resource(_Model):
    hostname: str
    hwthreads: list[int] | None = None
    accelerators: list[str] | None = None
    configuration: str | None = None


class Job(_Model):
    """One job (spec §1.2).  Python names are snake_case; JSON names camelCase (`jobId`, `subCluster`)."""

    cluster: str
    sub_cluster: str = ""
    partition: str = ""
    project: str = ""
    user: str = ""
    shared: str = "none"
    job_state: str = "running"
    tags: list[JobTag] | None = None
    resources: list[Resource] = Field(default_factory=list)
    energy_footprint: dict[str, float] | None = None
    footprint: dict[str, float] | None = None
    meta_data: dict[str, str] | None = None
    concurrent_jobs: dict[str, Any] | None = None
    energy: float = 0.0
    array_job_id: int = 0
    walltime: int = 0
    requested_memory: int = 0
    job_id: int
    duration: int = 0
    smt: int = 0
    monitoring_status: int = 1
    num_acc: int = 0
    num_hwthreads: int = 0
    num_nodes: int = 0
    statistics: dict[str, Any] | None = None
    id: int | None = None
    submit_time: int = 0
    start_time: int = 0

    @classmethod
    def parse_api(cls, body: bytes | str | dict[str, Any]) -> Job:
        """Strictly decode a request body; BadRequest names the first offending key."""
        try:
            data = orjson.loads(body) if isinstance(body, bytes | str) else body
        except orjson.JSONDecodeError as e:
            raise BadRequest(f"parsing request body failed: {e}") from None
        if not isinstance(data, dict):
            raise BadRequest("parsing request body failed: expected a JSON object")
        try:
            return cls.model_validate(data, strict=True)
        except ValidationError as e:
            raise BadRequest(f"parsing request body failed: {describe_validation_error(e)}") from None

    @classmethod
    def from_meta(cls, data: dict[str, Any]) -> Job:
        """Build a Job from a meta.json object, ignoring keys this model does not know (legacy fields)."""
        known = {f.alias or n for n, f in cls.model_fields.items()} | set(cls.model_fields)
        clean = {k: v for k, v in data.items() if k in known and v is not None}
        if "exclusive" in data and "shared" not in data:
            clean["shared"] = {0: "multi_user", 1: "none", 2: "single_user"}.get(data["exclusive"], "none")
        if isinstance(clean.get("tags"), list):
            clean["tags"] = [
                {k: v for k, v in t.items() if k in ("id", "type", "name", "scope")} | {"id": 0}
                for t in clean["tags"]
                if isinstance(t, dict)
            ]
        if isinstance(clean.get("resources"), list):
            clean["resources"] = [
                {k: v for k, v in r.items() if k in ("hostname", "hwthreads", "accelerators", "configuration")}
                for r in clean["resources"]
                if isinstance(r, dict)
            ]
        return cls.model_validate(clean)

    def to_json_dict(self) -> dict[str, Any]:
        """The Go-JSON object: field order of §1.2, `omitempty` fields dropped when zero."""
        return job_json(self)


_OMIT_EMPTY = {
    "partition",
    "tags",
    "arrayJobId",
    "walltime",
    "requestedMemory",
    "smt",
    "monitoringStatus",
    "numAcc",
    "numHwthreads",
    "id",
    "submitTime",
}


def job_json(job: Job) -> dict[str, Any]:
    """Serialise like upstream's encoding/json: zero-valued `omitempty` keys left out, nil as null."""
    out = job.model_dump(mode="json", by_alias=True)
    for key in _OMIT_EMPTY:
        if not out.get(key):
            out.pop(key, None)
    for r in out.get("resources") or ():
        for k in ("hwthreads", "accelerators", "configuration"):
            if not r.get(k):
                r.pop(k, None)
    return out


class User(BaseModel):
    """A row of `hpc_user` (`password` is the bcrypt hash or None)."""

    username: str
    name: str = ""
    email: str = ""
    roles: list[str] = Field(default_factory=list)
    projects: list[str] = Field(default_factory=list)
    auth_source: int = AuthSource.local
    password: str | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def api_json(self) -> dict[str, Any]:
        """The user object of `GET /api/users/`."""
        return {
            "username": self.username,
            "name": self.name,
            "email": self.email,
            "roles": list(self.roles),
            "projects": list(self.projects),
            "authType": 0 if self.auth_source != AuthSource.token else 1,
            "authSource": int(self.auth_source),
        }


def describe_validation_error(e: ValidationError) -> str:
    """One line naming the first offending key the way Go's decoder does."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f'json: unknown field "{err["loc"][-1]}"'
    if err["type"] == "missing":
        return f"the field '{loc}' is required"
    return f"json: cannot decode field {loc!r}: {err['msg']}"
