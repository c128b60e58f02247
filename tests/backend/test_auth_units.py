"""Auth building blocks without HTTP: config spellings, role rules, visibility on a real database,
bcrypt hashes (upstream's Go hash included), session cookies, the login rate limiter, user management."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from ccbackend.auth import (
    AuthSettings,
    Principal,
    UserError,
    apply_visibility,
    can_delete_tag,
    can_read_tag_scope,
    can_see_job,
    can_write_tag_scope,
    create_user,
    create_user_from_form,
    extract_token,
    modify_user,
    resolve_jwt_max_age,
    session_max_age_seconds,
)
from ccbackend.auth.config import AuthConfig
from ccbackend.auth.passwords import check_password, check_password_sync, hash_password
from ccbackend.auth.ratelimit import LoginRateLimiter
from ccbackend.auth.roles import (
    passes_api_gate,
    passes_metricstore_gate,
    passes_userapi_gate,
    visible_tags,
)
from ccbackend.auth.sessions import SessionCodec, SessionData, SessionError, decode_session_key
from ccbackend.auth.users import list_users, load_default_metrics, sync_external_user
from ccbackend.model import AuthSource, Job, JobTag, User
from ccbackend.repository.base import JobFilter
from cccommon.config import ConfigError
from tests.conftest import upstream_fixture

from .test_auth_support import DATA, SESSION_KEY, repo  # noqa: F401  (fixture)

# ---- config ----------------------------------------------------------------------------------------


def test_legacy_flat_config_spellings() -> None:
    raw = json.loads((DATA / "config-legacy.json").read_text())
    s = AuthSettings.from_config(raw, file="config-legacy.json")
    j = s.jwts
    assert (j.cookie_name, j.validate_user, j.trusted_issuer) == ("cc-jwt", True, "portal")
    assert j.sync_user_on_login and j.update_user_on_login
    assert s.jwt_max_age == 2000 * 3600
    assert s.api_allowed_ips == ["10.0.0.1", "192.168.1.7"]
    assert s.session_max_age == 24 * 3600
    ldap = s.auth.ldap
    assert ldap is not None
    assert ldap.user_base == "ou=people,dc=example" and ldap.search_dn == "cn=admin,dc=example"
    assert ldap.sync_del_old_users and ldap.sync_user_on_login and ldap.sync_interval == "24h"
    assert ldap.username_attr == "gecos" and ldap.uid_attr == "uid"
    assert s.auth.oidc is not None and s.auth.oidc.sync_user_on_login


def test_guide_config_jwt_singular_and_session_zero() -> None:
    raw = json.loads((DATA / "config-guide.json").read_text())
    s = AuthSettings.from_config(raw, file="config-guide.json")
    assert s.jwt_max_age == 168 * 3600
    assert s.session_max_age == 30 * 24 * 3600  # "0" falls back to 30 days, never "no expiry"
    assert s.api_allowed_ips == ["*"]
    assert s.auth.ldap is not None and s.auth.ldap.user_base == "ou=people,dc=example,dc=org"


def test_upstream_config_max_age() -> None:
    raw = json.loads(upstream_fixture("cc-backend/configs/config.json").read_text())
    s = AuthSettings.from_config(raw, file="config.json")
    assert s.jwt_max_age == 2000 * 3600
    assert s.api_allowed_ips == ["*"]
    assert s.session_max_age == 168 * 3600  # default


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"jwts": {"max-age": "1h"}}, "1h"),
        ({"auth": {"jwts": {"max-age": "2h"}}}, "2h"),
        ({"auth": {"jwt": {"max-age": "3h"}}}, "3h"),
        ({"jwt": {"max-age": "4h"}}, "4h"),
        ({"auth": {"jwts": {"max-age": "5h"}}, "jwt": {"max-age": "9h"}}, "5h"),
        ({"auth": {"jwts": {"max-age": ""}}}, None),
        ({"auth": {"jwts": {}}}, None),
        ({}, None),
    ],
)
def test_resolve_jwt_max_age(raw: dict, expected: str | None) -> None:
    assert resolve_jwt_max_age(raw) == expected


def test_max_age_errors() -> None:
    with pytest.raises(ConfigError, match=r"auth\.jwts\.max-age"):
        resolve_jwt_max_age({"auth": {"jwts": {"max-age": 3600}}})
    s = AuthSettings.from_config({"auth": {"jwts": {"max-age": "20 days"}}})
    assert s.jwt_max_age is None and "invalid jwts.max-age" in (s.jwt_max_age_error or "")
    with pytest.raises(ConfigError, match="api-allowed-ips"):
        AuthSettings.from_config({"main": {"api-allowed-ips": "10.0.0.1"}})
    with pytest.raises(ConfigError, match="validate-user"):
        AuthConfig.from_config({"auth": {"jwts": {"validate-user": "maybe"}}})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, 604800),
        ("168h", 604800),
        ("90m", 5400),
        ("0", 2592000),
        ("", 2592000),
        ("7d", 2592000),
        ("-1h", 2592000),
    ],
)
def test_session_max_age(value: str | None, seconds: int) -> None:
    assert session_max_age_seconds(value) == seconds


# ---- roles -----------------------------------------------------------------------------------------


def P(*roles: str, username: str = "u", projects: tuple[str, ...] = ()) -> Principal:
    return Principal(username=username, roles=roles, projects=projects)


@pytest.mark.parametrize(
    ("roles", "api", "metricstore", "userapi"),
    [
        (("api",), True, True, True),
        (("admin", "api"), True, True, True),
        (("api", "admin"), True, True, True),
        (("user", "api"), False, True, True),
        (("manager", "api"), False, True, True),
        (("support", "api"), False, False, True),
        (("admin",), False, False, False),
        (("user",), False, False, False),
        ((), False, False, False),
        (("api", "support", "admin"), True, True, True),
    ],
)
def test_route_group_gates(roles: tuple[str, ...], api: bool, metricstore: bool, userapi: bool) -> None:
    p = P(*roles)
    assert (passes_api_gate(p), passes_metricstore_gate(p), passes_userapi_gate(p)) == (
        api,
        metricstore,
        userapi,
    )


def test_principal_level_and_checks() -> None:
    p = P("user", "api", "manager")
    assert p.level.name == "manager"
    assert p.has_any_role(["admin", "manager"]) and not p.has_all_roles(["admin", "manager"])
    assert P().level.name == "anonymous" and P("api").is_api_only and not P("api", "user").is_api_only


def test_apply_visibility_rules() -> None:
    base = JobFilter(cluster=["fritz"])
    for p in (P("api"), P("admin"), P("support", "user")):
        f = apply_visibility(p, base)
        assert f.visible_users is None and f.visible_projects is None and f.cluster == ["fritz"]
    f = apply_visibility(P("manager", username="mona", projects=("p1", "p2")), base)
    assert (f.visible_users, f.visible_projects) == (["mona"], ["p1", "p2"])
    f = apply_visibility(P("manager", "user", username="mona"), base)
    assert (f.visible_users, f.visible_projects) == (["mona"], [])
    f = apply_visibility(P("user", username="alice"))
    assert (f.visible_users, f.visible_projects) == (["alice"], [])
    assert base.visible_users is None  # the input is not modified
    for p in (P(), P("api", "bogus"), P("anonymous")):
        with pytest.raises(PermissionError, match="no or unknown roles"):
            apply_visibility(p, base)


def _job(user: str, project: str, job_id: int) -> Job:
    return Job(
        cluster="fritz",
        sub_cluster="main",
        user=user,
        project=project,
        job_id=job_id,
        start_time=1700000000 + job_id,
        resources=[{"hostname": "f0101"}],
        num_nodes=1,
    )


async def test_visibility_on_real_database(repo) -> None:  # noqa: F811
    for i, (user, project) in enumerate([("alice", "p1"), ("bob", "p1"), ("bob", "p2"), ("mona", "p9")]):
        await repo.insert_job(_job(user, project, i + 1))

    async def users_seen(p: Principal) -> list[tuple[str, str]]:
        jobs = await repo.list_jobs(apply_visibility(p, JobFilter()))
        return sorted((j.user, j.project) for j in jobs)

    assert len(await users_seen(P("api"))) == 4
    assert len(await users_seen(P("support"))) == 4
    assert await users_seen(P("user", username="alice")) == [("alice", "p1")]
    assert await users_seen(P("manager", username="mona", projects=("p1",))) == [
        ("alice", "p1"),
        ("bob", "p1"),
        ("mona", "p9"),
    ]
    assert await users_seen(P("manager", username="mona")) == [("mona", "p9")]
    assert await users_seen(P("user", username="nobody")) == []


def test_single_job_lookup() -> None:
    job = _job("bob", "p1", 1)
    assert can_see_job(P("user", username="bob"), job)
    assert not can_see_job(P("user", username="alice"), job)
    assert can_see_job(P("manager", username="mona", projects=("p1",)), job)
    assert not can_see_job(P("manager", username="mona", projects=("p2",)), job)
    assert can_see_job(P("support"), job) and can_see_job(P("api"), job)
    assert not can_see_job(P("api", "user", username="alice"), job)


def test_tag_scopes() -> None:
    admin, support, api, user = P("admin"), P("support"), P("api"), P("user", username="alice")
    assert can_write_tag_scope(admin, "admin") and can_write_tag_scope(api, "admin")
    assert not can_write_tag_scope(support, "admin") and not can_write_tag_scope(user, "admin")
    assert can_write_tag_scope(P("admin", "api"), "admin") and not can_write_tag_scope(
        P("api", "user"), "admin"
    )
    for p in (admin, support, api):
        assert can_write_tag_scope(p, "global") and can_write_tag_scope(p, "")
    assert not can_write_tag_scope(user, "global") and not can_write_tag_scope(P("api", "user"), "global")
    assert can_write_tag_scope(user, "alice") and not can_write_tag_scope(admin, "alice")
    assert can_read_tag_scope(user, "global") and not can_read_tag_scope(user, "admin")
    assert can_read_tag_scope(support, "admin") and not can_read_tag_scope(admin, "alice")
    assert can_delete_tag(admin, "global") and not can_delete_tag(support, "global")
    assert can_delete_tag(user, "alice") and not can_delete_tag(admin, "alice")
    tags = [
        JobTag(type="app", name="vasp"),
        JobTag(type="x", name="y", scope="admin"),
        JobTag(type="p", name="q", scope="alice"),
        JobTag(type="p", name="r", scope="bob"),
    ]
    assert [t.name for t in visible_tags(user, tags)] == ["vasp", "q"]
    assert [t.name for t in visible_tags(support, tags)] == ["vasp", "y"]


# ---- tokens, passwords, sessions, rate limit -------------------------------------------------------


def test_extract_token() -> None:
    assert extract_token({"X-Auth-Token": "aaa", "Authorization": "Bearer bbb"}) == "aaa"
    assert extract_token({"Authorization": "Bearer bbb"}) == "bbb"
    assert extract_token({"Authorization": "bearer  ccc"}) == "ccc"
    assert extract_token({"Authorization": "ddd"}) == "ddd"
    assert extract_token({"Authorization": "Bearer "}) is None
    assert extract_token({}) is None


def test_go_bcrypt_hash_from_upstream_database(tmp_path: Path) -> None:
    db = tmp_path / "job.db"
    shutil.copy(upstream_fixture("cc-backend/internal/repository/testdata/job.db"), db)
    with sqlite3.connect(db) as conn:
        (hashed,) = conn.execute("SELECT password FROM hpc_user WHERE username = 'demo'").fetchone()
    assert hashed.startswith("$2a$10$")
    assert check_password_sync("demo", hashed)
    assert not check_password_sync("Demo", hashed)


async def test_hash_format_and_roundtrip() -> None:
    h = await hash_password("pässwörd")
    assert h.startswith("$2a$10$") and len(h) == 60
    assert await check_password("pässwörd", h)
    assert not await check_password("passwort", h)
    assert not await check_password("x", None) and not await check_password("x", "not-a-hash")
    with pytest.raises(ValueError, match="72 bytes"):
        await hash_password("x" * 73)


def test_session_key_decoding() -> None:
    assert decode_session_key("67d829bf61dc5f87a73fd814e2c9f629") == base64.b64decode(
        "67d829bf61dc5f87a73fd814e2c9f629"
    )
    assert len(decode_session_key(base64.b64encode(bytes(32)).decode().rstrip("="))) == 32
    with pytest.raises(ValueError, match="base64"):
        decode_session_key("not base64!")
    with pytest.raises(ValueError, match="at least 16"):
        decode_session_key("c2hvcnQ=")


def test_session_codec() -> None:
    codec = SessionCodec(SESSION_KEY, max_age=3600)
    now = time.time()
    data = SessionData(username="alice", roles=("user",), projects=(), auth_source=0, issued_at=int(now))
    value = codec.encode(data)
    assert codec.decode(value, now=now) == data
    assert codec.decode(value, now=now + 3599).username == "alice"
    with pytest.raises(SessionError, match="expired"):
        codec.decode(value, now=now + 3601)
    with pytest.raises(SessionError, match="future"):
        codec.decode(codec.encode(SessionData(username="a", issued_at=int(now) + 3600)), now=now)
    payload, mac = value.split(".")
    forged = (
        base64.urlsafe_b64encode(
            json.dumps({"u": "root", "r": ["admin"], "p": [], "s": 0, "t": int(now)}).encode()
        )
        .decode()
        .rstrip("=")
    )
    for bad in (f"{forged}.{mac}", f"{payload}.{mac[:-2]}AA", payload, "", "a.b.c", "é.é"):
        with pytest.raises(SessionError):
            codec.decode(bad, now=now)
    with pytest.raises(SessionError, match="signature"):
        SessionCodec(b"another-key-of-32-bytes-length!!").decode(value, now=now)


def test_rate_limiter_burst_and_refill() -> None:
    t = [1000.0]
    lim = LoginRateLimiter(clock=lambda: t[0])
    assert [lim.allow("10.0.0.1", "alice") for _ in range(6)] == [True] * 5 + [False]
    assert lim.allow("10.0.0.1", "bob") and lim.allow("10.0.0.2", "alice")  # other keys unaffected
    t[0] += 179
    assert not lim.allow("10.0.0.1", "alice")
    t[0] += 2
    assert lim.allow("10.0.0.1", "alice") and not lim.allow("10.0.0.1", "alice")
    t[0] += 15 * 60
    assert [lim.allow("10.0.0.1", "alice") for _ in range(6)] == [True] * 5 + [False]
    t[0] += 25 * 3600
    lim.allow("10.9.9.9", "x")  # triggers the sweep of idle entries
    assert len(lim) == 1


# ---- user management -------------------------------------------------------------------------------


async def test_create_user_seeds_default_metrics(repo, tmp_path: Path, caplog) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, "ccbackend.auth")
    user = await create_user(
        repo, "newbie", "pw", ["User", "API"], name="New", default_metrics=DATA / "default_metrics.json"
    )
    assert user.roles == ["user", "api"]
    stored = await repo.get_user("newbie")
    assert stored is not None and stored.password and stored.password.startswith("$2a$10$")
    assert check_password_sync("pw", stored.password)
    cfg = await repo.user_config("newbie")
    assert cfg["metricConfig_jobViewPlotMetrics:fritz"] == ["cpu_load", "flops_any", "mem_bw"]
    assert cfg["metricConfig_jobViewPlotMetrics:alex"] == ["acc_utilization"]
    assert 'new user "newbie" created (roles: ["user","api"]' in caplog.text
    nopw = await create_user(repo, "machine", "", ["api"], default_metrics=tmp_path / "absent.json")
    assert nopw.password is None and await repo.user_config("machine") == {}
    with pytest.raises(UserError, match="already exists") as e:
        await create_user(repo, "newbie", "x", ["user"], default_metrics=None)
    assert e.value.status == 422
    with pytest.raises(UserError, match="no valid option"):
        await create_user(repo, "x", "x", ["superuser"], default_metrics=None)
    with pytest.raises(UserError, match="at most 100"):
        await create_user(repo, "x" * 101, "x", ["user"], default_metrics=None)
    assert (await create_user(repo, "y" * 100, "x", ["user"], default_metrics=None)).username == "y" * 100
    with pytest.raises(UserError, match="empty"):
        await create_user(repo, "", "x", ["user"], default_metrics=None)


def test_default_metrics_file_errors(tmp_path: Path) -> None:
    assert load_default_metrics(tmp_path / "missing.json") == {}
    bad = tmp_path / "bad.json"
    bad.write_text('{"clusters": [{"name": 1}]}')
    with pytest.raises(ValueError, match=r"bad\.json: clusters\[0\]"):
        load_default_metrics(bad)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"username": "u1", "role": "user"}, "Only API users are allowed to have a blank password"),
        (
            {"username": "u1", "password": "p", "role": "user", "project": "p1"},
            "only managers require a project",
        ),
        ({"username": "u1", "password": "p", "role": "manager"}, "managers require a project to manage"),
    ],
)
async def test_create_user_form_rules(repo, form: dict, message: str) -> None:  # noqa: F811
    with pytest.raises(UserError, match=message) as e:
        await create_user_from_form(repo, form, default_metrics=None)
    assert e.value.status == 400


async def test_create_user_form_manager(repo) -> None:  # noqa: F811
    u = await create_user_from_form(
        repo,
        {"username": "boss", "password": "p", "role": "Manager", "project": "p7", "email": "b@x"},
        default_metrics=None,
    )
    assert (u.roles, u.projects, u.email) == (["manager"], ["p7"], "b@x")
    api = await create_user_from_form(repo, {"username": "bot", "role": "api"}, default_metrics=None)
    assert api.password is None


async def test_modify_user_semantics(repo) -> None:  # noqa: F811
    assert await modify_user(repo, "alice", add_role="MANAGER", remove_role="user") == "Add Role Success"
    assert (await repo.get_user("alice")).roles == ["user", "manager"]
    with pytest.raises(UserError, match="already has role manager"):
        await modify_user(repo, "alice", add_role="manager")
    assert await modify_user(repo, "alice", add_project="p1") == "Add Project Success"
    with pytest.raises(UserError, match="already manages project"):
        await modify_user(repo, "alice", add_project="p1")
    with pytest.raises(UserError, match="still has assigned project"):
        await modify_user(repo, "alice", remove_role="manager")
    assert await modify_user(repo, "alice", remove_project="p1") == "Remove Project Success"
    with pytest.raises(UserError, match="does not match"):
        await modify_user(repo, "alice", remove_project="p1")
    assert await modify_user(repo, "alice", remove_role="Manager") == "Remove Role Success"
    with pytest.raises(UserError, match="role already deleted"):
        await modify_user(repo, "alice", remove_role="manager")
    with pytest.raises(UserError, match="is not a manager"):
        await modify_user(repo, "alice", add_project="p2")
    with pytest.raises(UserError, match="no valid option"):
        await modify_user(repo, "alice", add_role="wizard")
    with pytest.raises(UserError, match="does not exist") as e:
        await modify_user(repo, "ghost", add_role="user")
    assert e.value.status == 422
    with pytest.raises(UserError, match="Not Add or Del") as e:
        await modify_user(repo, "alice")
    assert e.value.status == 400
    assert (await repo.get_user("alice")).roles == ["user"]


async def test_list_users_not_just_user(repo) -> None:  # noqa: F811
    await repo.add_user(User(username="plain-empty", roles=[]))
    names = {u.username for u in await list_users(repo, not_just_user=True)}
    assert "alice" not in names and "plain-empty" not in names and {"mona", "root", "apiuser"} <= names
    assert len(await list_users(repo)) == len(names) + 2


async def test_sync_external_user(repo) -> None:  # noqa: F811
    ext = User(
        username="extern", name="Ex Tern", roles=["manager"], projects=["p5"], auth_source=AuthSource.oidc
    )
    assert await sync_external_user(repo, ext, sync=False, update=False) is None
    assert await repo.get_user("extern") is None
    await sync_external_user(repo, ext, sync=True, update=False)
    stored = await repo.get_user("extern")
    assert stored is not None and stored.auth_source == AuthSource.oidc and stored.projects == ["p5"]
    demoted = User(
        username="extern", name="New Name", roles=["user"], projects=["p5"], auth_source=AuthSource.oidc
    )
    await sync_external_user(repo, demoted, sync=True, update=True)
    stored = await repo.get_user("extern")
    assert (stored.name, stored.roles, stored.projects) == ("New Name", ["user"], [])


async def test_bcrypt_runs_off_the_event_loop() -> None:
    """Four concurrent hashes must not serialise on the loop: a ticker keeps running meanwhile."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    t = asyncio.create_task(ticker())
    await asyncio.gather(*(hash_password("pw") for _ in range(4)))
    t.cancel()
    assert ticks >= 3
