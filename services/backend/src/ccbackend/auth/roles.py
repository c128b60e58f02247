"""Authorisation rules: role names, the route-group gates, job visibility and tag scope permissions.

Everything here is a pure function of a Principal (spec backend-behaviour.md §1.1-1.4, backend-data.md
§4.2 and §4.7); the REST layer, the web pages and the middleware all call these, so the rules live once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TypeVar

from ..model import ROLES, Job
from ..repository.base import JobFilter
from .principal import Principal

__all__ = [
    "InvalidRole",
    "apply_visibility",
    "can_delete_tag",
    "can_read_node_data",
    "can_read_tag_scope",
    "can_see_job",
    "can_view_user",
    "can_write_tag_scope",
    "hides_restricted_metrics",
    "normalize_role",
    "passes_api_gate",
    "passes_metricstore_gate",
    "passes_userapi_gate",
    "tag_scope",
    "visible_tags",
]

T = TypeVar("T")

NO_ROLE_ERROR = "user has no or unknown roles"


class InvalidRole(ValueError):
    """A role name that is not one of api, user, manager, support, admin."""


def normalize_role(name: str) -> str:
    """Lower-case a role name and check it is assignable; InvalidRole names the bad value."""
    role = name.strip().lower()
    if role not in ROLES:
        raise InvalidRole(f"supplied role is no valid option : {role}")
    return role


# ---- route-group gates (backend-data.md §4.2) -----------------------------------------------------


def passes_api_gate(p: Principal) -> bool:
    """`/api/` job, tag, cluster, user and node endpoints: exactly `api`, or both `admin` and `api`."""
    return p.is_api_only or (len(p.roles) >= 2 and p.has_all_roles(("admin", "api")))


def passes_metricstore_gate(p: Principal) -> bool:
    """`/api/write|free|debug|healthcheck`: `api` alone or with `user`, `manager` or `admin`."""
    return p.is_api_only or (p.has_role("api") and p.has_any_role(("user", "manager", "admin")))


def passes_userapi_gate(p: Principal) -> bool:
    """`/userapi/`: `api` alone or with any of `user`, `manager`, `support`, `admin`."""
    return p.is_api_only or (p.has_role("api") and p.has_any_role(("user", "manager", "support", "admin")))


# ---- job visibility (backend-behaviour.md §1.3) ---------------------------------------------------


def apply_visibility(p: Principal, flt: JobFilter | None = None) -> JobFilter:
    """A copy of `flt` restricted to the jobs `p` may see; PermissionError when `p` has no known role.

    api-only, admin and support: unrestricted.  manager: own jobs plus jobs of the managed projects.
    user: own jobs.  Unrestricted principals get `visible_users = visible_projects = None`.
    """
    out = dataclasses.replace(flt) if flt is not None else JobFilter()
    if p.is_api_only or p.has_any_role(("admin", "support")):
        return out
    if p.has_role("manager"):
        out.visible_users = [p.username]
        out.visible_projects = list(p.projects)
        return out
    if p.has_role("user"):
        out.visible_users = [p.username]
        out.visible_projects = []
        return out
    raise PermissionError(NO_ROLE_ERROR)


def can_see_job(p: Principal, job: Job) -> bool:
    """Single-job lookup: the row filter, and other users' jobs only for admin, support or manager."""
    if p.is_api_only or p.has_any_role(("admin", "support")):
        return True
    if job.user == p.username:
        return p.has_any_role(("manager", "user"))
    if p.has_role("manager"):
        return job.project in p.projects
    return False


def can_view_user(p: Principal, username: str) -> bool:
    """Name and e-mail of a user: the user itself, admin, support or manager."""
    return p.username == username or p.has_any_role(("admin", "support", "manager"))


def can_read_node_data(p: Principal) -> bool:
    """Node metrics, node lists and node states: admin and support only."""
    return p.has_any_role(("admin", "support"))


def hides_restricted_metrics(p: Principal) -> bool:
    """Metrics with `restrict: true` are hidden from principals holding `user` or `manager`."""
    return p.has_any_role(("user", "manager"))


# ---- tag scopes (backend-data.md §4.7) ------------------------------------------------------------


def tag_scope(scope: str | None) -> str:
    """The stored scope: empty means `global`."""
    return scope or "global"


def can_write_tag_scope(p: Principal, scope: str | None) -> bool:
    """Create/attach/detach a tag of `scope`: admin (admin+api-only), global (admin, support, api-only)."""
    s = tag_scope(scope)
    if s == "admin":
        return p.has_role("admin") or p.is_api_only
    if s == "global":
        return p.has_any_role(("admin", "support")) or p.is_api_only
    return s == p.username


def can_read_tag_scope(p: Principal, scope: str | None) -> bool:
    """Global tags: everyone; admin tags: admin and support; private tags: only their owner."""
    s = tag_scope(scope)
    if s == "global":
        return True
    if s == "admin":
        return p.has_any_role(("admin", "support"))
    return s == p.username


def can_delete_tag(p: Principal, scope: str | None) -> bool:
    """Delete a tag entirely (tags page): admins for global and admin tags, owners for private ones."""
    s = tag_scope(scope)
    if s in ("global", "admin"):
        return p.has_role("admin")
    return s == p.username


def visible_tags(p: Principal, tags: Iterable[T]) -> list[T]:
    """The tags (objects with a `scope` attribute) that `p` may read."""
    return [t for t in tags if can_read_tag_scope(p, getattr(t, "scope", None))]
