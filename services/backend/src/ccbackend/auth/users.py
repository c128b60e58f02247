"""User management shared by the CLI, `/config/users/`, `/config/user/{name}` and `/api/user/{name}`.

Creating, deleting and modifying users (roles, managed projects) with upstream's rules and error
messages (spec backend-behaviour.md §1.12, backend-data.md §4.9/§4.11).  Errors are `UserError`
carrying the HTTP status the web layers answer with.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import orjson

from ..model import AuthSource, User
from ..repository.base import Repository, RepositoryError
from .passwords import hash_password
from .roles import InvalidRole, normalize_role

__all__ = [
    "DEFAULT_METRICS_FILE",
    "UserError",
    "create_user",
    "create_user_from_form",
    "delete_user",
    "list_users",
    "load_default_metrics",
    "modify_user",
    "sync_external_user",
    "validate_username",
]

log = logging.getLogger("ccbackend.auth")

DEFAULT_METRICS_FILE = Path("default_metrics.json")
MAX_USERNAME = 100


class UserError(Exception):
    """A refused user operation; `status` is 400 (bad form), 404 or 422 (rule violated)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def validate_username(username: str) -> str:
    """Usernames are 1-100 characters without control characters or surrounding blanks."""
    if not username:
        raise UserError(400, "username must not be empty")
    if len(username) > MAX_USERNAME:
        raise UserError(400, f"username must be at most {MAX_USERNAME} characters, got {len(username)}")
    if username != username.strip() or any(ord(c) < 32 or ord(c) == 127 for c in username):
        raise UserError(400, f"username {username!r} contains blanks at the ends or control characters")
    return username


def _parse_metrics(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def load_default_metrics(path: str | os.PathLike[str] = DEFAULT_METRICS_FILE) -> dict[str, list[str]]:
    """`default_metrics.json` as {cluster: [metric, ...]}; {} when the file does not exist.

    Format: `{"clusters": [{"name": "fritz", "default-metrics": "cpu_load, flops_any"}]}`.
    A malformed file raises ValueError naming the file.
    """
    p = Path(path)
    try:
        data = orjson.loads(p.read_bytes())
    except FileNotFoundError:
        return {}
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{p}: invalid JSON: {e}") from None
    clusters = data.get("clusters") if isinstance(data, dict) else None
    if not isinstance(clusters, list):
        raise ValueError(f"{p}: expected an object with a 'clusters' list")
    out: dict[str, list[str]] = {}
    for i, c in enumerate(clusters):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise ValueError(f"{p}: clusters[{i}] needs a string 'name'")
        metrics = c.get("default-metrics", "")
        if not isinstance(metrics, str):
            raise ValueError(f"{p}: clusters[{i}].default-metrics must be a comma-separated string")
        out[c["name"]] = _parse_metrics(metrics)
    return out


async def _seed_default_metrics(repo: Repository, username: str, path: Path | None) -> None:
    if path is None:
        return
    try:
        defaults = await asyncio.to_thread(load_default_metrics, path)
    except (ValueError, OSError) as e:
        log.error("default metrics for new user %r not set: %s", username, e)
        return
    for cluster, metrics in defaults.items():
        await repo.set_user_config(username, f"metricConfig_jobViewPlotMetrics:{cluster}", metrics)
        log.info("default job view metrics for user %s and cluster %s set to %s", username, cluster, metrics)


async def create_user(
    repo: Repository,
    username: str,
    password: str,
    roles: Iterable[str],
    *,
    name: str = "",
    email: str = "",
    projects: Iterable[str] = (),
    auth_source: int = AuthSource.local,
    default_metrics: Path | None = DEFAULT_METRICS_FILE,
) -> User:
    """Insert a user with a bcrypt-hashed password (none when empty) and seed its default metrics.

    Roles are lower-cased and must be valid (422 otherwise); an existing username gives 422.
    """
    validate_username(username)
    try:
        role_list = [normalize_role(r) for r in roles]
    except InvalidRole as e:
        raise UserError(422, str(e)) from None
    try:
        hashed = await hash_password(password) if password else None
    except ValueError as e:
        raise UserError(400, str(e)) from None
    user = User(
        username=username,
        name=name,
        email=email,
        roles=list(dict.fromkeys(role_list)),
        projects=[p for p in projects if p],
        auth_source=auth_source,
        password=hashed,
    )
    if await repo.get_user(username) is not None:
        raise UserError(422, f"user {username!r} already exists")
    try:
        await repo.add_user(user)
    except RepositoryError as e:
        raise UserError(422, str(e)) from None
    log.info(
        'new user "%s" created (roles: %s, auth-source: %d, projects: %s)',
        username,
        orjson.dumps(user.roles).decode(),
        int(auth_source),
        orjson.dumps(user.projects).decode(),
    )
    await _seed_default_metrics(repo, username, default_metrics)
    return user


async def create_user_from_form(
    repo: Repository, form: Mapping[str, str], *, default_metrics: Path | None = DEFAULT_METRICS_FILE
) -> User:
    """`POST /config/users/`: fields username, password, role (one), name, email, project."""
    username = form.get("username", "")
    password = form.get("password", "")
    role = form.get("role", "").strip().lower()
    project = form.get("project", "")
    if not password and role != "api":
        raise UserError(400, "Only API users are allowed to have a blank password (login will be impossible)")
    if project and role != "manager":
        raise UserError(400, "only managers require a project (can be changed later)")
    if not project and role == "manager":
        raise UserError(400, "managers require a project to manage (can be changed later)")
    return await create_user(
        repo,
        username,
        password,
        [role] if role else [],
        name=form.get("name", ""),
        email=form.get("email", ""),
        projects=[project] if project else [],
        default_metrics=default_metrics,
    )


async def delete_user(repo: Repository, username: str) -> int:
    """Delete a user (its configuration rows go with it); 0 when there was none."""
    n = await repo.delete_user(username)
    log.info("deleted user %r from DB", username)
    return n


async def list_users(repo: Repository, not_just_user: bool = False) -> list[User]:
    """All users; with `not_just_user` only those whose roles are neither `["user"]` nor `[]`."""
    users = await repo.list_users()
    if not_just_user:
        users = [u for u in users if u.roles not in (["user"], [])]
    return users


async def _load(repo: Repository, username: str) -> User:
    user = await repo.get_user(username)
    if user is None:
        raise UserError(422, f"user {username!r} does not exist")
    return user


async def modify_user(
    repo: Repository,
    username: str,
    *,
    add_role: str = "",
    remove_role: str = "",
    add_project: str = "",
    remove_project: str = "",
) -> str:
    """Run the first non-empty operation in the order add-role, remove-role, add-project, remove-project.

    Returns the success phrase (`Add Role Success`, `Remove Role Success`, `Add Project Success`,
    `Remove Project Success`).  UserError 422 for rule violations, 400 when all four are empty.
    """
    if add_role:
        user = await _load(repo, username)
        try:
            role = normalize_role(add_role)
        except InvalidRole as e:
            raise UserError(422, str(e)) from None
        if role in user.roles:
            raise UserError(422, f"user {username} already has role {role}")
        user.roles = [*user.roles, role]
        phrase = "Add Role Success"
    elif remove_role:
        user = await _load(repo, username)
        try:
            role = normalize_role(remove_role)
        except InvalidRole as e:
            raise UserError(422, str(e)) from None
        if role not in user.roles:
            raise UserError(422, f"role already deleted for user '{username}': {role}")
        if role == "manager" and user.projects:
            raise UserError(
                422,
                f"cannot remove role 'manager' while user {username} still has assigned project(s) : "
                f"{user.projects}",
            )
        user.roles = [r for r in user.roles if r != role]
        phrase = "Remove Role Success"
    elif add_project:
        user = await _load(repo, username)
        if "manager" not in user.roles:
            raise UserError(422, f"user '{username}' is not a manager")
        if add_project in user.projects:
            raise UserError(422, f"user '{username}' already manages project '{add_project}'")
        user.projects = [*user.projects, add_project]
        phrase = "Add Project Success"
    elif remove_project:
        user = await _load(repo, username)
        if "manager" not in user.roles:
            raise UserError(422, f"user '{username}' is not a manager")
        if remove_project not in user.projects:
            raise UserError(
                422, f"user '{username}': cannot remove project '{remove_project}' - does not match"
            )
        user.projects = [p for p in user.projects if p != remove_project]
        phrase = "Remove Project Success"
    else:
        raise UserError(400, "Not Add or Del [role|project]?")
    try:
        await repo.update_user(user)
    except RepositoryError as e:
        raise UserError(422, str(e)) from None
    log.info("user %r modified: %s (roles: %s, projects: %s)", username, phrase, user.roles, user.projects)
    return phrase


async def sync_external_user(repo: Repository, user: User, *, sync: bool, update: bool) -> User | None:
    """After an LDAP/JWT/OIDC login: insert unknown users (`sync`) or refresh known ones (`update`).

    Returns the stored user (None when unknown and not synced).  On update the name is replaced and
    roles/projects are replaced when they differ; a user without `manager` loses its projects.
    """
    existing = await repo.get_user(user.username)
    if existing is None:
        if not sync:
            return None
        try:
            return await create_user(
                repo,
                user.username,
                "",
                user.roles,
                name=user.name,
                email=user.email,
                projects=user.projects,
                auth_source=user.auth_source,
            )
        except UserError as e:
            log.error(
                "cannot add user %r from %s login: %s", user.username, AuthSource(user.auth_source).name, e
            )
            return None
    if not update:
        return existing
    changed = existing.model_copy()
    if user.name and user.name != existing.name:
        changed.name = user.name
    if user.roles and user.roles != existing.roles:
        changed.roles = list(user.roles)
    projects = list(user.projects) if "manager" in changed.roles else []
    if projects != existing.projects:
        changed.projects = projects
    if changed != existing:
        await repo.update_user(changed)
        log.info("user %r updated at login (roles: %s, projects: %s)", user.username, changed.roles, projects)
    return changed
