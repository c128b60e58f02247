"""Auth through a real aiohttp server: tokens, sessions, the route-group matrix, login flow, rate limit,
user administration routes, security headers, CORS and the cross-site block."""

from __future__ import annotations

import base64
import re
import shutil
import time
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from ccbackend.auth import AuthService, AuthSettings, RouteGroup, auth_group, route_group
from ccbackend.auth.sessions import SessionCodec, SessionData
from ccbackend.model import AuthSource, User
from ccbackend.repository.sqlite import SqliteRepository, sqlite_migrate
from cccommon import jwt as ccjwt
from tests.conftest import upstream_fixture

from .test_auth_support import (
    DATA,
    PASSWORD,
    PRIVATE_B64,
    SESSION_KEY,
    client,
    login,
    make_app,
    repo,  # noqa: F401  (fixture)
    service,
    token,
)

# ---- tokens ----------------------------------------------------------------------------------------


async def test_token_from_both_headers(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo))) as c:
        t = token("apiuser", ["api"])
        for headers in ({"X-Auth-Token": t}, {"Authorization": f"Bearer {t}"}, {"Authorization": t}):
            r = await c.get("/api/jobs/", headers=headers)
            assert r.status == 200, headers
            assert (await r.json())["username"] == "apiuser"
        r = await c.get("/api/jobs/", headers={"X-Auth-Token": t, "Authorization": "Bearer garbage"})
        assert r.status == 200  # X-Auth-Token is checked first


def _b64url(obj: dict) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()


def _hs256(claims: dict) -> str:
    import hashlib
    import hmac

    head = _b64url({"alg": "HS256", "typ": "JWT"})
    body = _b64url(claims)
    sig = hmac.new(b"secret", f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


async def test_bad_tokens_are_401(repo) -> None:  # noqa: F811
    now = int(time.time())
    other_pub, other_priv = ccjwt.generate_keypair()
    claims = {"sub": "apiuser", "roles": ["api"]}
    cases = {
        "expired": (token("apiuser", ["api"], exp=now - 10), "token has invalid claims: token is expired"),
        "nbf": (token("apiuser", ["api"], nbf=now + 600), "token has invalid claims: token is not valid yet"),
        "forged": (ccjwt.sign(claims, other_priv), "verification error"),
        "none": (f"{_b64url({'alg': 'none', 'typ': 'JWT'})}.{_b64url(claims)}.", "not accepted"),
        "hs256": (_hs256(claims), "not accepted"),
        "tampered": (
            re.sub(
                r"\.[^.]+\.",
                "." + _b64url({"sub": "root", "roles": ["api"]}) + ".",
                token("apiuser", ["api"]),
            ),
            "verification error",
        ),
        "no sub": (ccjwt.sign({"roles": ["api"]}, PRIVATE_B64), "missing 'sub'"),
        "garbage": ("abc", "malformed"),
    }
    async with client(make_app(service(repo))) as c:
        for name, (tok, reason) in cases.items():
            for path in ("/api/jobs/", "/userapi/jobs/", "/api/write"):
                r = (
                    await c.get(path, headers={"X-Auth-Token": tok})
                    if path != "/api/write"
                    else await c.post(path, headers={"X-Auth-Token": tok})
                )
                assert r.status == 401, (name, path)
                body = await r.json()
                assert body["status"] == "Unauthorized", name
                assert reason in body["error"], (name, body)
        # an invalid token on a page is a plain-text 401 (not the login page)
        r = await c.get("/monitoring/jobs/", headers={"X-Auth-Token": cases["expired"][0]})
        assert r.status == 401 and "token is expired" in await r.text() and "<form" not in await r.text()


async def test_missing_token_messages(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo))) as c:
        r = await c.get("/api/jobs/")
        assert r.status == 401
        assert await r.json() == {"status": "Unauthorized", "error": "no user for secured check"}
        r = await c.get("/userapi/jobs/")
        assert r.status == 401 and (await r.json())["error"] == "unauthorized"


async def test_validate_user(repo) -> None:  # noqa: F811
    svc = service(repo, raw={"auth": {"jwts": {"max-age": "1h", "validate-user": True}}})
    async with client(make_app(svc)) as c:
        # claims say admin+api, the DB says user+api: the DB wins
        r = await c.get("/userapi/jobs/", headers={"X-Auth-Token": token("userapi", ["admin", "api"])})
        assert r.status == 200 and (await r.json())["roles"] == ["user", "api"]
        r = await c.get("/api/jobs/", headers={"X-Auth-Token": token("userapi", ["admin", "api"])})
        assert r.status == 401
        r = await c.get("/api/jobs/", headers={"X-Auth-Token": token("ghost", ["api"])})
        assert r.status == 401 and (await r.json())["error"] == "unknown user"
        r = await c.get("/monitoring/jobs/", headers={"X-Auth-Token": token("mona", [])})
        assert r.status == 200 and (await r.json())["projects"] == ["proj-a"]
    # without validate-user the token's claims are used and projects stay empty
    async with client(make_app(service(repo))) as c:
        r = await c.get("/monitoring/jobs/", headers={"X-Auth-Token": token("mona", ["manager"])})
        assert (await r.json()) == {"username": "mona", "roles": ["manager"], "projects": []}


@pytest.mark.parametrize(
    ("allowed", "headers", "ok", "seen"),
    [
        ([], {}, True, None),
        (["*"], {}, True, None),
        (["*", "10.1.1.1"], {}, True, None),
        (["127.0.0.1"], {}, True, None),
        (["10.1.1.1"], {}, False, "127.0.0.1"),
        (["10.1.1.1"], {"X-Real-Ip": "10.1.1.1"}, True, None),
        (["10.1.1.1"], {"X-Real-Ip": "10.1.1.2:5555", "X-Forwarded-For": "10.1.1.1"}, False, "10.1.1.2"),
        (["10.1.1.1"], {"X-Forwarded-For": "10.1.1.1, 172.16.0.1"}, True, None),
        (["10.1.1.1"], {"X-Forwarded-For": "172.16.0.1, 10.1.1.1"}, False, "172.16.0.1"),
        (["::1"], {"X-Real-Ip": "[0:0::1]:8080"}, True, None),
    ],
)
async def test_api_ip_allow_list(repo, allowed, headers, ok, seen) -> None:  # noqa: F811
    async with client(make_app(service(repo, api_allowed_ips=allowed))) as c:
        t = {"X-Auth-Token": token("apiuser", ["api"])}
        r = await c.get("/api/jobs/", headers={**headers, **t})
        if ok:
            assert r.status == 200
        else:
            assert r.status == 401 and (await r.json())["error"] == f"unknown ip: {seen}"
        # the allow-list applies to the main /api/ group only
        assert (await c.get("/userapi/jobs/", headers={**headers, **t})).status == 200
        assert (await c.post("/api/write", headers={**headers, **t})).status == 200


# ---- the role matrix -------------------------------------------------------------------------------

JWT_MATRIX = {
    # roles: (/api/jobs/, /api/write, /api/healthcheck/, /userapi/jobs/, page, /config/, /frontend/)
    ("api",): (200, 200, 200, 200, 200, 401, 401),
    ("admin", "api"): (200, 200, 200, 200, 200, 401, 401),
    ("user", "api"): (401, 200, 200, 200, 200, 401, 401),
    ("manager", "api"): (401, 200, 200, 200, 200, 401, 401),
    ("support", "api"): (401, 401, 401, 200, 200, 401, 401),
    ("admin",): (401, 401, 401, 401, 200, 401, 401),
    ("support",): (401, 401, 401, 401, 200, 401, 401),
    ("user",): (401, 401, 401, 401, 200, 401, 401),
    (): (401, 401, 401, 401, 200, 401, 401),
}
PROBES = (
    ("GET", "/api/jobs/"),
    ("POST", "/api/write"),
    ("GET", "/api/healthcheck/"),
    ("GET", "/userapi/jobs/"),
    ("GET", "/monitoring/jobs/"),
    ("GET", "/config/probe/"),
    ("GET", "/frontend/probe/"),
)


async def test_jwt_role_matrix(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo))) as c:
        for roles, expected in JWT_MATRIX.items():
            t = token("someone", list(roles))
            got = tuple([(await c.request(m, p, headers={"X-Auth-Token": t})).status for m, p in PROBES])
            assert got == expected, roles


SESSION_MATRIX = {
    # user: (/api/jobs/, /api/write, /api/healthcheck/, /userapi/jobs/, page, /config/, /frontend/)
    "alice": (401, 401, 401, 401, 200, 401, 200),
    "mona": (401, 401, 401, 401, 200, 401, 200),
    "sam": (401, 401, 401, 401, 200, 401, 200),
    "root": (401, 401, 401, 401, 200, 200, 200),
    "adminapi": (401, 401, 401, 401, 200, 200, 200),
}


async def test_session_role_matrix(repo) -> None:  # noqa: F811
    for username, expected in SESSION_MATRIX.items():
        async with client(make_app(service(repo))) as c:
            r = await login(c, username)
            assert r.status == 302, username
            got = tuple([(await c.request(m, p)).status for m, p in PROBES])
            assert got == expected, username
            me = await (await c.get("/frontend/probe/")).json()
            assert me["username"] == username


async def test_public_and_unmatched_routes(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo))) as c:
        assert (await c.get("/build/app.js")).status == 200
        assert (await c.get("/login")).status == 200
        assert (await c.get("/api/does-not-exist/")).status == 404  # router answers, not the auth gate
        assert (await c.delete("/api/jobs/")).status == 405


async def test_pinned_group_and_route_group_rules(repo) -> None:  # noqa: F811
    @auth_group(RouteGroup.PUBLIC)
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = make_app(service(repo))
    app.router.add_get("/api/open-probe/", health)
    async with client(app) as c:
        assert (await c.get("/api/open-probe/")).status == 200
    assert route_group("/api/write/") is RouteGroup.METRICSTORE
    assert route_group("/api/writer") is RouteGroup.API
    assert route_group("/monitoring/systems/fritz") is RouteGroup.PAGE
    assert route_group("/img/logo.png") is RouteGroup.PUBLIC


async def test_disable_authentication(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo, disable_authentication=True))) as c:
        for m, p in PROBES:
            assert (await c.request(m, p)).status == 200, p
        assert (await c.get("/login")).status == 404  # no login routes exist
        assert (await c.get("/config/roles/")).status == 200


def test_session_key_required(repo) -> None:  # noqa: F811
    from cccommon.config import ConfigError

    with pytest.raises(ConfigError, match="SESSION_KEY"):
        AuthService(AuthSettings(), repo, session_key=None)
    AuthService(AuthSettings(disable_authentication=True), repo, session_key=None)

    class Env:
        session_key = "not base64 !"
        jwt_public_key = ""
        jwt_private_key = ""

    with pytest.raises(ConfigError, match="SESSION_KEY"):
        AuthService.from_env(AuthSettings(), Env(), repo)
    Env.session_key = "67d829bf61dc5f87a73fd814e2c9f629"
    Env.jwt_public_key = "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0="
    Env.jwt_private_key = "AAAA"
    with pytest.raises(ConfigError, match="JWT_PRIVATE_KEY"):
        AuthService.from_env(AuthSettings(), Env(), repo)


# ---- login, logout, cookies ------------------------------------------------------------------------


def _cookie_header(r) -> str:
    return r.headers.get("Set-Cookie", "")


async def test_login_sets_cookie_and_redirects(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo, session_max_age=3600))) as c:
        r = await c.get("/monitoring/jobs/?cluster=fritz")
        assert r.status == 401
        page = await r.text()
        assert "unauthorized (please login first)" in page
        assert 'name="redirect" value="/monitoring/jobs/?cluster=fritz"' in page

        r = await login(c, "alice", redirect="/monitoring/jobs/?cluster=fritz")
        assert r.status == 302 and r.headers["Location"] == "/monitoring/jobs/?cluster=fritz"
        cookie = _cookie_header(r)
        assert cookie.startswith("session=")
        for attr in ("HttpOnly", "Path=/", "SameSite=Lax", "Max-Age=3600"):
            assert attr in cookie, attr
        assert "Secure" not in cookie
        r = await c.get("/monitoring/jobs/")
        assert r.status == 200 and (await r.json())["username"] == "alice"

        for target in ("https://evil.example/", "//evil.example/x", "/\\evil", "javascript:alert(1)"):
            r = await login(c, "alice", redirect=target)
            assert r.status == 302 and r.headers["Location"] == "/", target

        r = await c.post("/logout")
        assert r.status == 200 and "Logout successful" in await r.text()
        assert "Max-Age=0" in _cookie_header(r)
        assert (await c.get("/monitoring/jobs/")).status == 401


async def test_secure_cookie_behind_https_proxy(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo))) as c:
        r = await c.post(
            "/login",
            data={"username": "alice", "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
            allow_redirects=False,
        )
        assert r.status == 302 and "Secure" in _cookie_header(r)
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


async def test_login_failures(repo) -> None:  # noqa: F811
    await repo.add_user(User(username="ldapuser", roles=["user"], auth_source=AuthSource.ldap))
    async with client(make_app(service(repo))) as c:
        r = await login(c, "alice", "wrong")
        assert r.status == 401 and "Authentication failed" in await r.text() and "Set-Cookie" not in r.headers
        r = await login(c, "nobody")
        assert r.status == 401 and "no authenticator applied" in await r.text()
        r = await login(c, "ldapuser")  # LDAP users are not handled by the local authenticator
        assert r.status == 401 and "no authenticator applied" in await r.text()


async def test_login_rate_limit(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo))) as c:
        statuses = [(await login(c, "alice", "wrong")).status for _ in range(5)]
        assert statuses == [401] * 5
        r = await login(c, "alice")  # the right password does not help now
        assert r.status == 429 and "too many login attempts" in await r.text()
        assert (await login(c, "mona")).status == 302  # another username has its own bucket


async def test_session_cookie_tamper_and_expiry(repo) -> None:  # noqa: F811
    svc = service(repo, session_max_age=60)
    async with client(make_app(svc)) as c:
        codec = SessionCodec(SESSION_KEY, 60)
        good = codec.encode(SessionData(username="alice", roles=("user",)))
        assert (await c.get("/frontend/probe/", cookies={"session": good})).status == 200
        payload, mac = good.split(".")
        forged_payload = codec.encode(SessionData(username="root", roles=("admin",))).split(".")[0]
        old = codec.encode(SessionData(username="alice", roles=("user",), issued_at=int(time.time()) - 61))
        other_key = SessionCodec(b"x" * 32, 60).encode(SessionData(username="root", roles=("admin",)))
        for bad in (f"{forged_payload}.{mac}", good[:-3] + "abc", old, other_key, "garbage"):
            c.session.cookie_jar.clear()
            assert (await c.get("/frontend/probe/", cookies={"session": bad})).status == 401
            assert (await c.get("/config/probe/", cookies={"session": bad})).status == 401
            r = await c.get("/monitoring/jobs/", cookies={"session": bad})
            assert r.status == 401 and "please login first" in await r.text()
            assert "Max-Age=0" in _cookie_header(r)  # the browser is told to drop the bad cookie


async def test_session_follows_user_table(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo))) as c:
        assert (await login(c, "alice")).status == 302
        assert (await c.get("/config/probe/")).status == 401
        u = await repo.get_user("alice")
        u.roles = ["user", "admin"]
        await repo.update_user(u)
        assert (await c.get("/config/probe/")).status == 200  # role change applies at once
        await repo.delete_user("alice")
        assert (await c.get("/frontend/probe/")).status == 401  # deleted local user: session invalid


async def test_go_hash_login_on_upstream_database(tmp_path: Path) -> None:
    db = tmp_path / "job.db"
    shutil.copy(upstream_fixture("cc-backend/internal/repository/testdata/job.db"), db)
    import asyncio

    await asyncio.to_thread(sqlite_migrate, str(db))
    r = await SqliteRepository.open(str(db))
    try:
        async with client(make_app(service(r))) as c:
            resp = await c.post(
                "/login", data={"username": "demo", "password": "demo"}, allow_redirects=False
            )
            assert resp.status == 302
            me = await (await c.get("/config/probe/")).json()
            assert me["roles"] == ["admin", "api"]
    finally:
        await r.close()


# ---- /config/ and /frontend/ routes ----------------------------------------------------------------


async def test_config_routes(repo, tmp_path: Path) -> None:  # noqa: F811
    shutil.copy(DATA / "default_metrics.json", tmp_path / "default_metrics.json")
    async with client(make_app(service(repo, tmp_path))) as c:
        await login(c, "root")
        assert await (await c.get("/config/roles/")).json() == ["api", "user", "manager", "support", "admin"]
        r = await c.post(
            "/config/users/", data={"username": "carl", "password": "pw", "role": "user", "name": "Carl"}
        )
        assert r.status == 200 and await r.text() == "User carl successfully created!\n"
        assert (await repo.user_config("carl"))["metricConfig_jobViewPlotMetrics:fritz"] == [
            "cpu_load",
            "flops_any",
            "mem_bw",
        ]
        r = await c.put("/config/users/", data={"username": "carl", "password": "pw", "role": "user"})
        assert r.status == 422 and "already exists" in (await r.json())["error"]
        r = await c.post("/config/users/", data={"username": "dora", "role": "manager", "password": "x"})
        assert r.status == 400 and (await r.json())["status"] == "Bad Request"
        users = await (await c.get("/config/users/")).json()
        carl = next(u for u in users if u["username"] == "carl")
        assert carl == {
            "username": "carl",
            "name": "Carl",
            "email": "",
            "roles": ["user"],
            "projects": [],
            "authType": 0,
            "authSource": 0,
        }
        special = {u["username"] for u in await (await c.get("/config/users/?not-just-user=true")).json()}
        assert "carl" not in special and "root" in special

        r = await c.post("/config/user/carl", data={"add-role": "Manager", "add-project": "ignored"})
        assert r.status == 200 and await r.json() == {"msg": "Add Role Success"}
        r = await c.post("/config/user/carl", data={"add-project": "p1"})
        assert await r.json() == {"msg": "Add Project Success"}
        r = await c.post("/config/user/carl", data={"remove-role": "manager"})
        assert r.status == 422 and "still has assigned project" in (await r.json())["error"]
        r = await c.post("/config/user/carl", data={})
        assert r.status == 400

        r = await c.delete("/config/users/", data={"username": "carl"})
        assert r.status == 200 and await repo.get_user("carl") is None

    async with client(make_app(service(repo))) as c:
        await login(c, "sam")  # support is not admin
        for m, p in (("GET", "/config/roles/"), ("GET", "/config/users/"), ("POST", "/config/user/alice")):
            r = await c.request(m, p)
            assert r.status == 401 and (await r.json())["error"] == "unauthorized", p


async def test_frontend_jwt(repo) -> None:  # noqa: F811
    svc = service(repo)
    async with client(make_app(svc)) as c:
        await login(c, "userapi")
        r = await c.get("/frontend/jwt/")
        assert r.status == 200 and r.content_type == "text/plain"
        t = await r.text()
        claims = ccjwt.verify(t, svc.tokens.public_key)
        assert claims["sub"] == "userapi" and claims["roles"] == ["user", "api"]
        assert claims["exp"] - claims["iat"] == 3600
        # the token works on the API groups it qualifies for
        assert (await c.get("/userapi/jobs/", headers={"X-Auth-Token": t})).status == 200
        r = await c.get("/frontend/jwt/?username=apiuser")
        assert r.status == 403
    async with client(make_app(svc)) as c:
        await login(c, "root")
        r = await c.get("/frontend/jwt/?username=apiuser")
        assert r.status == 200 and ccjwt.verify(await r.text(), svc.tokens.public_key)["roles"] == ["api"]
        assert (await c.get("/frontend/jwt/?username=ghost")).status == 404


async def test_frontend_jwt_without_max_age(repo) -> None:  # noqa: F811
    svc = service(repo, raw={"main": {}, "auth": {"jwts": {}}})
    claims = ccjwt.verify(svc.tokens.issue("apiuser", ["api"]), svc.tokens.public_key)
    assert "exp" not in claims and set(claims) == {"sub", "roles", "iat"}
    bad = service(repo, raw={"auth": {"jwts": {"max-age": "forever"}}})
    async with client(make_app(bad)) as c:
        await login(c, "root")
        r = await c.get("/frontend/jwt/")
        assert r.status == 500 and "invalid jwts.max-age" in (await r.json())["error"]


async def test_frontend_configuration(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo))) as c:
        await login(c, "alice")
        r = await c.post(
            "/frontend/configuration/", data={"key": "plotConfiguration_plotsPerRow", "value": "2"}
        )
        assert r.status == 200 and await r.text() == "success"
        r = await c.post(
            "/frontend/configuration/",
            data={"key": "metricConfig_jobListMetrics:fritz", "value": '["flops_any","mem_bw"]'},
        )
        assert r.status == 200
        cfg = await repo.user_config("alice")
        assert cfg == {
            "plotConfiguration_plotsPerRow": 2,
            "metricConfig_jobListMetrics:fritz": ["flops_any", "mem_bw"],
        }
        r = await c.post("/frontend/configuration/", data={"key": "x", "value": "{broken"})
        assert r.status == 400 and "not valid JSON" in (await r.json())["error"]
    async with client(make_app(service(repo, disable_authentication=True))) as c:
        # the synthetic admin of disable-authentication has no user row: a clear 422, not a crash
        r = await c.post("/frontend/configuration/", data={"key": "k", "value": "1"})
        assert r.status == 422 and "does not exist" in (await r.json())["error"]


# ---- hardening -------------------------------------------------------------------------------------


async def test_security_headers_everywhere(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo))) as c:
        for r in (
            await c.get("/login"),
            await c.get("/api/jobs/"),  # 401
            await c.get("/nope"),  # 404 from the router
            await c.get("/build/app.js"),
        ):
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["X-Frame-Options"] == "DENY"
            assert r.headers["Referrer-Policy"] == "same-origin"
            assert (
                r.headers["Content-Security-Policy"]
                == "frame-ancestors 'none'; object-src 'none'; base-uri 'self'"
            )
            assert "Strict-Transport-Security" not in r.headers
        r = await c.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


async def test_cors(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo))) as c:
        r = await c.options(
            "/api/jobs/",
            headers={
                "Origin": "https://portal.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Content-Type, Authorization",
            },
        )
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert set(r.headers["Access-Control-Allow-Methods"].split(", ")) == {
            "GET",
            "POST",
            "HEAD",
            "OPTIONS",
        }
        assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
        assert "Access-Control-Allow-Credentials" not in r.headers
        r = await c.options(
            "/api/jobs/", headers={"Origin": "https://x", "Access-Control-Request-Method": "DELETE"}
        )
        assert r.status == 405
        r = await c.options(
            "/api/jobs/",
            headers={
                "Origin": "https://x",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "X-Custom",
            },
        )
        assert r.status == 403
        r = await c.get(
            "/api/jobs/", headers={"Origin": "https://x", "X-Auth-Token": token("apiuser", ["api"])}
        )
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        r = await c.get("/api/jobs/", headers={"Origin": "https://x"})
        assert r.status == 401 and r.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Origin" not in (await c.get("/login")).headers


async def test_cross_site_block(repo) -> None:  # noqa: F811
    async with client(make_app(service(repo))) as c:
        t = {"X-Auth-Token": token("apiuser", ["api"])}
        r = await c.post("/api/jobs/start_job/", headers={**t, "Sec-Fetch-Site": "cross-site"})
        assert r.status == 403 and await r.text() == "cross-site request blocked"
        r = await c.post(
            "/login",
            data={"username": "alice", "password": PASSWORD},
            headers={"Sec-Fetch-Site": "cross-site"},
            allow_redirects=False,
        )
        assert r.status == 403
        for site in ("same-origin", "same-site", "none"):
            r = await c.post("/api/jobs/start_job/", headers={**t, "Sec-Fetch-Site": site})
            assert r.status == 200, site
        r = await c.get("/api/jobs/", headers={**t, "Sec-Fetch-Site": "cross-site"})
        assert r.status == 200  # safe methods pass
