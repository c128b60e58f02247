"""Shared fixtures of the auth tests: a real SQLite user table, keys, and an app with every route group.

No tests here; test_auth_units.py and test_auth_http.py import from this module.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ccbackend.auth import PRINCIPAL_KEY, AuthService, AuthSettings, get_principal, setup_auth
from ccbackend.auth.passwords import hash_password_sync
from ccbackend.model import AuthSource, User
from ccbackend.repository.sqlite import SqliteRepository
from cccommon import jwt as ccjwt

DATA = Path(__file__).resolve().parent.parent / "data" / "backend" / "auth"
SESSION_KEY = b"0123456789abcdef0123456789abcdef"
PUBLIC_B64, PRIVATE_B64 = ccjwt.generate_keypair()
PASSWORD = "s3cret-pw"

USERS: dict[str, list[str]] = {
    "alice": ["user"],
    "mona": ["manager"],
    "sam": ["support"],
    "root": ["admin"],
    "adminapi": ["admin", "api"],
    "apiuser": ["api"],
    "userapi": ["user", "api"],
}


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[SqliteRepository]:
    r = await SqliteRepository.open(str(tmp_path / "job.db"))
    hashed = hash_password_sync(PASSWORD, cost=4)  # low cost keeps the tests fast; format is the same
    for name, roles in USERS.items():
        projects = ["proj-a"] if "manager" in roles else []
        await r.add_user(
            User(username=name, roles=roles, projects=projects, password=hashed, name=name.title())
        )
    try:
        yield r
    finally:
        await r.close()


def settings(**kw: Any) -> AuthSettings:
    raw = kw.pop("raw", {"auth": {"jwts": {"max-age": "1h"}}})
    s = AuthSettings.from_config(raw, file="test-config.json")
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def service(repo: SqliteRepository, tmp_path: Path | None = None, **kw: Any) -> AuthService:
    s = settings(**kw)
    return AuthService(
        s,
        repo,
        session_key=SESSION_KEY,
        jwt_public_key=ccjwt.load_public_key(PUBLIC_B64),
        jwt_private_key=ccjwt.load_private_key(PRIVATE_B64),
        default_metrics=(tmp_path / "default_metrics.json") if tmp_path else None,
    )


def token(sub: str, roles: list[str], **claims: Any) -> str:
    return ccjwt.sign({"sub": sub, "roles": roles, "iat": int(time.time()), **claims}, PRIVATE_B64)


async def whoami(request: web.Request) -> web.Response:
    if request.get(PRINCIPAL_KEY) is None:
        return web.json_response({"username": None})
    p = get_principal(request)
    return web.json_response({"username": p.username, "roles": list(p.roles), "projects": list(p.projects)})


def make_app(svc: AuthService) -> web.Application:
    """An application with one probe route per group, plus the auth routes."""
    app = web.Application()
    setup_auth(app, svc)
    for method, path in (
        ("GET", "/api/jobs/"),
        ("POST", "/api/jobs/start_job/"),
        ("POST", "/api/write"),
        ("GET", "/api/healthcheck/"),
        ("GET", "/userapi/jobs/"),
        ("GET", "/"),
        ("GET", "/monitoring/jobs/"),
        ("GET", "/config/probe/"),
        ("GET", "/frontend/probe/"),
        ("GET", "/build/app.js"),
    ):
        app.router.add_route(method, path, whoami)
    return app


def client(app: web.Application) -> TestClient:
    return TestClient(TestServer(app, host="127.0.0.1", port=0))


async def login(c: TestClient, username: str, password: str = PASSWORD, **form: str) -> Any:
    return await c.post(
        "/login", data={"username": username, "password": password, **form}, allow_redirects=False
    )


def go_user(username: str, go_hash: str, roles: list[str]) -> User:
    return User(username=username, roles=roles, password=go_hash, auth_source=AuthSource.local)
