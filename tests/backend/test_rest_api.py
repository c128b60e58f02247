"""The REST API through the real application: SQLite, file archive, our metric store daemon, JWT auth.

Covers the upstream start/stop payloads, the hands-on demo's requests, every endpoint's statuses, the
role matrix, hostile input, and the full lifecycle start → live data → stop → archive → same data.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ccbackend.config import parse_backend_config
from ccbackend.env import Env
from ccbackend.repository import migrate_db
from ccbackend.server import ROUTES_KEY, build_app, build_context
from cccommon import jwt as ccjwt
from tests.conftest import DATA, UPSTREAM

EMMY = DATA / "backend" / "api" / "emmy" / "cluster.json"
TESTCL = DATA / "backend" / "archive"
STORE_METRICS = {m: {"frequency": 60, "aggregation": None} for m in ("cpu_load", "mem_used", "flops_any", "cpu_power")}


class Backend:
    def __init__(self, client: TestClient, ctx: Any, root: Path) -> None:
        self.client = client
        self.ctx = ctx
        self.root = root
        self.tokens: dict[str, str] = {}

    def token(self, *roles: str, user: str = "apiuser") -> str:
        key = f"{user}:{','.join(roles)}"
        if key not in self.tokens:
            self.tokens[key] = self.ctx.auth.tokens.issue(user, list(roles))
        return self.tokens[key]

    def hdr(self, *roles: str, user: str = "apiuser") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*roles, user=user)}"}

    async def call(self, method: str, path: str, body: Any = None, *, roles: tuple[str, ...] = ("api",),
                   user: str = "apiuser", raw: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        h = self.hdr(*roles, user=user) if roles else {}
        h.update(headers or {})
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        return await self.client.request(method, path, data=data, headers=h)


def _build_config(root: Path, store_url: str | None, jwts: dict | None = None, **main: Any) -> Any:
    cfg = {
        "main": {"addr": "127.0.0.1:0", "db": str(root / "job.db"), "api-allowed-ips": ["*"], **main},
        "archive": {"kind": "file", "path": str(root / "archive")},
        "auth": {"jwts": {"max-age": "1h", **(jwts or {})}},
        "metric-store-external": [{"scope": "*", "url": store_url or "http://127.0.0.1:9", "token": "t"}],
    }
    return parse_backend_config(cfg, str(root / "config.json"))


def _env() -> Env:
    pub, priv = ccjwt.generate_keypair()
    return Env.from_mapping({
        "JWT_PUBLIC_KEY": pub, "JWT_PRIVATE_KEY": priv,
        "SESSION_KEY": base64.b64encode(b"k" * 32).decode(),
    })


def _archive(root: Path) -> None:
    shutil.copytree(TESTCL, root / "archive")
    (root / "archive" / "emmy").mkdir()
    shutil.copy(EMMY, root / "archive" / "emmy" / "cluster.json")
    fritz = UPSTREAM / "cc-backend/pkg/archive/testdata/archive/fritz/cluster.json"
    if fritz.exists():
        (root / "archive" / "fritz").mkdir()
        shutil.copy(fritz, root / "archive" / "fritz" / "cluster.json")


async def _start(root: Path, store_url: str | None, dev: bool = False, jwts: dict | None = None,
                 **main: Any) -> tuple[Backend, Any]:
    cfg = _build_config(root, store_url, jwts, **main)
    await migrate_db("sqlite3", cfg.main.db)
    ctx = await build_context(cfg, _env())
    ctx.archiver.start()
    app = build_app(ctx, dev=dev)
    client = TestClient(TestServer(app))
    await client.start_server()
    return Backend(client, ctx, root), ctx


async def _stop(b: Backend) -> None:
    await b.client.close()
    await b.ctx.archiver.drain(30)
    await b.ctx.repo.close()


@pytest.fixture
async def backend(tmp_path: Path):
    _archive(tmp_path)
    b, _ = await _start(tmp_path, None)
    yield b
    await _stop(b)


@pytest.fixture
def store(daemon_factory):
    return daemon_factory(metrics=STORE_METRICS).start()


def demo_job(start: int, job_id: int = 100000, **over: Any) -> dict[str, Any]:
    """The hands-on demo's start_job body."""
    body = {
        "jobId": job_id, "arrayJobId": 0, "user": "ccdemouser", "subCluster": "main", "cluster": "emmy",
        "startTime": start, "project": "ccdemoproject",
        "resources": [{"hostname": "e0601"}, {"hostname": "e0823"}, {"hostname": "e0337"}, {"hostname": "e1111"}],
        "numNodes": 4, "numHwthreads": 80, "walltime": 86400,
    }
    body.update(over)
    return body


# ---- start / stop ----------------------------------------------------------------------------------
async def test_hands_on_demo_start_and_stop_by_id(backend: Backend):
    now = int(time.time()) - 600
    r = await backend.call("POST", "/api/jobs/start_job/", demo_job(now))
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["msg"] == "success" and isinstance(body["id"], int)
    jid = body["id"]
    # visible at once (no staging delay)
    r = await backend.call("GET", f"/api/jobs/{jid}")
    assert r.status == 200
    meta = (await r.json())["Meta"]
    assert meta["jobState"] == "running" and meta["user"] == "ccdemouser" and meta["subCluster"] == "main"
    r = await backend.call("POST", f"/api/jobs/stop_job/{jid}",
                           {"cluster": "emmy", "jobState": "completed", "stopTime": now + 300})
    assert r.status == 200, await r.text()
    job = await r.json()
    assert job["jobState"] == "completed" and job["duration"] == 300 and job["id"] == jid
    # stopping again: 422
    r = await backend.call("POST", f"/api/jobs/stop_job/{jid}", {"jobState": "completed", "stopTime": now + 400})
    assert r.status == 422
    assert "already been stopped" in (await r.json())["error"]


async def test_upstream_start_and_stop_payloads(backend: Backend):
    start = json.loads((UPSTREAM / "cc-backend/configs/startJobPayload.json").read_text()) \
        if (UPSTREAM / "cc-backend/configs/startJobPayload.json").exists() else pytest.skip("no upstream fixtures")
    stop = json.loads((UPSTREAM / "cc-backend/configs/stopJobPayload.json").read_text())
    r = await backend.call("PUT", "/api/jobs/start_job/", start)
    assert r.status == 201, await r.text()
    r = await backend.call("POST", "/api/jobs/start_job/", start)
    assert r.status == 422
    assert (await r.json())["error"].startswith("a job with that jobId, cluster and startTime already exists")
    r = await backend.call("PUT", "/api/jobs/stop_job/", stop)
    assert r.status == 200, await r.text()
    job = await r.json()
    assert job["jobState"] == "completed" and job["duration"] == stop["stopTime"] - stop["startTime"]
    assert job["partition"] == "main" and job["walltime"] == 86400


async def test_duplicate_rule_24h(backend: Backend):
    t = 1_700_000_000
    assert (await backend.call("POST", "/api/jobs/start_job/", demo_job(t, 7))).status == 201
    # same id within 24 h after, and any time before: 422
    assert (await backend.call("POST", "/api/jobs/start_job/", demo_job(t + 3600, 7))).status == 422
    assert (await backend.call("POST", "/api/jobs/start_job/", demo_job(t - 5 * 86400, 7))).status == 422
    # a day later the scheduler may recycle the id
    assert (await backend.call("POST", "/api/jobs/start_job/", demo_job(t + 86400, 7))).status == 201


@pytest.mark.parametrize(
    "change,status,needle",
    [
        ({"exclusive": 1}, 400, 'unknown field "exclusive"'),
        ({"stopTime": 5}, 400, 'unknown field "stopTime"'),
        ({"cluster": "nosuch"}, 400, "no such cluster"),
        ({"subCluster": "nosuch"}, 400, "nosuch"),
        ({"numNodes": 3}, 400, "numNodes"),
        ({"resources": []}, 400, "resources"),
        ({"user": ""}, 400, "user"),
        ({"numNodes": "four"}, 400, "numNodes"),
        ({"jobId": None}, 400, "jobId"),
        ({"shared": "sometimes"}, 400, "shared"),
        ({"metaData": {"a": 1}}, 400, "metaData"),
    ],
)
async def test_start_job_rejects_bad_bodies(backend: Backend, change, status, needle):
    r = await backend.call("POST", "/api/jobs/start_job/", demo_job(1_700_000_000, **change))
    assert r.status == status
    body = await r.json()
    assert needle in body["error"] and body["status"] == "Bad Request"


async def test_start_job_assigns_subcluster_from_node_list(backend: Backend):
    body = demo_job(1_700_000_000)
    del body["subCluster"]
    r = await backend.call("POST", "/api/jobs/start_job/", body)
    assert r.status == 201
    job = await backend.ctx.repo.get_job((await r.json())["id"])
    assert job.sub_cluster == "main"
    body = demo_job(1_700_100_000, resources=[{"hostname": f"x{i}"} for i in range(4)])
    del body["subCluster"]
    assert (await backend.call("POST", "/api/jobs/start_job/", body)).status == 400


@pytest.mark.parametrize(
    "raw,start_status,stop_status",
    [(b"{", 400, 400), (b"", 400, 400), (b"[]", 400, 400), (b"null", 400, 400), (b'{"jobId": 1}', 400, 404),
     (b"\xff\xfe", 400, 400), (b'{"jobId": "1", "stopTime": 5}', 400, 400)],
)
async def test_malformed_bodies(backend: Backend, raw, start_status, stop_status):
    for path, status in (("/api/jobs/start_job/", start_status), ("/api/jobs/stop_job/", stop_status)):
        r = await backend.call("POST", path, raw=raw)
        assert r.status == status, (path, raw, await r.text())
        assert "error" in await r.json()


async def test_stop_job_errors(backend: Backend):
    r = await backend.call("POST", "/api/jobs/stop_job/", {"cluster": "emmy", "stopTime": 5})
    assert r.status == 400 and "jobId" in (await r.json())["error"]
    r = await backend.call("POST", "/api/jobs/stop_job/", {"jobId": 424242, "stopTime": 5})
    assert r.status == 404
    t = 1_700_000_000
    await backend.call("POST", "/api/jobs/start_job/", demo_job(t, 11))
    r = await backend.call("POST", "/api/jobs/stop_job/", {"jobId": 11, "cluster": "emmy", "stopTime": t - 1})
    assert r.status == 400
    r = await backend.call("POST", "/api/jobs/stop_job/", {"jobId": 11, "stopTime": t + 5, "jobState": "weird"})
    assert r.status == 400
    r = await backend.call("POST", "/api/jobs/stop_job/abc", {"stopTime": t + 5})
    assert r.status == 400 and "integer expected" in (await r.json())["error"]
    r = await backend.call("POST", "/api/jobs/stop_job/", {"jobId": 11, "stopTime": t + 5, "jobState": "timeout"})
    assert r.status == 200 and (await r.json())["jobState"] == "timeout"


# ---- queries ---------------------------------------------------------------------------------------
async def _seed(backend: Backend) -> list[int]:
    ids = []
    for i, (user, project) in enumerate([("alice", "p1"), ("bob", "p1"), ("carol", "p2"), ("alice", "p2")]):
        r = await backend.call("POST", "/api/jobs/start_job/",
                               demo_job(1_700_000_000 + i * 1000, 500 + i, user=user, project=project))
        assert r.status == 201
        ids.append((await r.json())["id"])
    await backend.call("POST", "/api/jobs/stop_job/", {"jobId": 503, "stopTime": 1_700_003_500, "jobState": "failed"})
    return ids


async def test_job_list_filters_and_paging(backend: Backend):
    await _seed(backend)
    r = await backend.call("GET", "/api/jobs/")
    body = await r.json()
    assert r.status == 200 and body["items"] == 25 and body["page"] == 1
    starts = [j["startTime"] for j in body["jobs"]]
    assert starts == sorted(starts, reverse=True) and len(starts) == 4
    r = await backend.call("GET", "/api/jobs/?state=running&project=p1")
    assert {j["jobId"] for j in (await r.json())["jobs"]} == {500, 501}
    r = await backend.call("GET", "/api/jobs/?state=failed&state=running&cluster=emmy&items-per-page=2&page=2")
    body = await r.json()
    assert body["items"] == 2 and body["page"] == 2 and len(body["jobs"]) == 2
    r = await backend.call("GET", "/api/jobs/?start-time=1700000500-1700002000")
    assert {j["jobId"] for j in (await r.json())["jobs"]} == {501, 502}
    r = await backend.call("GET", "/api/jobs/?with-metadata")
    assert all("metaData" in j for j in (await r.json())["jobs"])
    for bad in ("state=stopped", "page=0", "items-per-page=x", "start-time=5", "user=alice", "cluster=emmy&foo=1"):
        r = await backend.call("GET", f"/api/jobs/?{bad}")
        assert r.status == 400, bad


@pytest.mark.parametrize("evil", ["x' OR 1=1 --", "%", "_", "emmy'; DROP TABLE job; --", "\\", '"'])
async def test_sql_metacharacters_in_filters_match_literally(backend: Backend, evil):
    await _seed(backend)
    from urllib.parse import quote

    for key in ("cluster", "project", "state"):
        r = await backend.call("GET", f"/api/jobs/?{key}={quote(evil)}")
        assert r.status in (200, 400)
        if r.status == 200:
            assert (await r.json())["jobs"] == []
    r = await backend.call("GET", "/api/jobs/")
    assert len((await r.json())["jobs"]) == 4


async def test_userapi_shows_only_own_jobs(backend: Backend):
    await _seed(backend)
    r = await backend.call("GET", "/userapi/jobs/", roles=("api", "user"), user="alice")
    assert r.status == 200
    assert {j["user"] for j in (await r.json())["jobs"]} == {"alice"}
    # another user's job by id is not visible
    bob = (await backend.ctx.repo.find_job(501)).id
    r = await backend.call("GET", f"/userapi/jobs/{bob}", roles=("api", "user"), user="alice")
    assert r.status == 422


async def test_userapi_manager_sees_project_jobs(tmp_path: Path):
    """With validate-user the roles and projects of the token's user come from the database."""
    from ccbackend.auth import create_user

    _archive(tmp_path)
    b, _ = await _start(tmp_path, None, jwts={"validate-user": True})
    try:
        await create_user(b.ctx.repo, "apiuser", "", ["api"], default_metrics=None)
        await _seed(b)
        await create_user(b.ctx.repo, "mgr", "pw", ["manager", "api"], projects=["p2"], default_metrics=None)
        r = await b.call("GET", "/userapi/jobs/", roles=("api",), user="mgr")
        assert {(j["user"], j["project"]) for j in (await r.json())["jobs"]} == {("carol", "p2"), ("alice", "p2")}
        r = await b.call("GET", "/userapi/jobs/", roles=("api",), user="ghost")
        assert r.status == 401
    finally:
        await _stop(b)


async def test_get_and_post_job_by_id(backend: Backend):
    ids = await _seed(backend)
    r = await backend.call("GET", f"/api/jobs/{ids[0]}")
    body = await r.json()
    assert body["Data"] is None and body["Meta"]["metaData"] is not None or body["Meta"]["metaData"] is None
    assert (await backend.call("GET", "/api/jobs/999999")).status == 422
    assert (await backend.call("GET", "/api/jobs/notanumber")).status == 400
    r = await backend.call("POST", f"/api/jobs/{ids[0]}", [])
    assert r.status == 200 and (await r.json())["Data"] == []
    assert (await backend.call("POST", f"/api/jobs/{ids[0]}", raw=b"")).status == 400
    assert (await backend.call("POST", f"/api/jobs/{ids[0]}", {"a": 1})).status == 400


async def test_archived_job_from_init_db_is_served_with_data(backend: Backend):
    """The own test archive's finished job: statistics from meta.json, data from data.json."""
    from ccbackend.importer import init_db

    await init_db(backend.ctx.repo, backend.ctx.archive, backend.ctx.registry, progress=False)
    job = await backend.ctx.repo.find_job(4711, "testcl")
    assert job is not None and job.monitoring_status == 3
    r = await backend.call("GET", "/api/jobs/?cluster=testcl")
    jobs = {j["jobId"]: j for j in (await r.json())["jobs"]}
    assert jobs[4711]["statistics"]["cpu_load"]["avg"] == 7.5
    r = await backend.call("GET", f"/api/jobs/metrics/{job.id}?metric=cpu_load&scope=node")
    body = await r.json()
    assert body["error"] is None
    (m,) = body["data"]["jobMetrics"]
    assert m["name"] == "cpu_load" and m["scope"] == "node" and len(m["metric"]["series"]) == 2
    r = await backend.call("GET", f"/api/jobs/{job.id}?all-metrics=true")
    assert "cpu_load" in (await r.json())["Data"]
    assert (await backend.call("GET", f"/api/jobs/metrics/{job.id}?scope=galaxy")).status == 400


async def test_used_nodes(backend: Backend):
    await _seed(backend)
    r = await backend.call("GET", "/api/jobs/used_nodes?ts=1700002500")
    nodes = (await r.json())["usedNodes"]
    assert set(nodes) == {"emmy"} and "e0601" in nodes["emmy"]
    assert (await backend.call("GET", "/api/jobs/used_nodes")).status == 400


# ---- tags, meta, delete ----------------------------------------------------------------------------
async def test_tags(backend: Backend):
    ids = await _seed(backend)
    tags = [{"type": "project", "name": "special", "scope": "global"}, {"type": "note", "name": "x", "scope": "admin"}]
    r = await backend.call("POST", f"/api/jobs/tag_job/{ids[0]}", tags)
    assert r.status == 200
    got = {(t["type"], t["name"], t["scope"]) for t in (await r.json())["tags"]}
    assert got == {("project", "special", "global"), ("note", "x", "admin")}
    # attaching again is a PK violation → 500
    assert (await backend.call("PATCH", f"/api/jobs/tag_job/{ids[0]}", tags[:1])).status == 500
    # admin-scope tags are invisible to a user
    r = await backend.call("GET", "/userapi/jobs/", roles=("api", "user"), user="alice")
    first = next(j for j in (await r.json())["jobs"] if j["id"] == ids[0])
    assert [t["name"] for t in first["tags"]] == ["special"]
    r = await backend.call("DELETE", f"/api/jobs/tag_job/{ids[0]}", tags[:1] + [{"type": "p", "name": "q", "scope": "bob"}])
    # the admin-scope tag stays; an api-only token cannot read admin tags, so none are shown
    assert r.status == 200 and "tags" not in await r.json()
    assert [t.name for t in (await backend.ctx.repo.job_tags([ids[0]]))[ids[0]]] == ["x"]
    r = await backend.call("DELETE", f"/api/jobs/tag_job/{ids[0]}", [{"type": "nope", "name": "nope"}])
    assert r.status == 500
    assert (await backend.call("POST", "/api/jobs/tag_job/99999", tags)).status == 404
    r = await backend.call("DELETE", "/api/tags/", [{"type": "note", "name": "x", "scope": "admin"}])
    assert r.status == 200 and (await r.text()) == "Deleted Tags from DB: 1 successfull of 1 requested\n"
    assert (await backend.ctx.repo.job_tags([ids[0]])).get(ids[0], []) == []


async def test_edit_meta_and_delete(backend: Backend):
    ids = await _seed(backend)
    r = await backend.call("PATCH", f"/api/jobs/edit_meta/{ids[0]}", {"key": "jobName", "value": "renamed"})
    assert r.status == 200 and (await r.json())["metaData"]["jobName"] == "renamed"
    r = await backend.call("PATCH", "/api/jobs/edit_meta/",
                           {"jobId": 501, "cluster": "emmy", "payload": {"key": "k", "value": "v"}})
    assert r.status == 200 and (await r.json())["metaData"]["k"] == "v"
    assert (await backend.call("PATCH", "/api/jobs/edit_meta/", {"payload": {"key": "k", "value": "v"}})).status == 400
    assert (await backend.call("PATCH", "/api/jobs/edit_meta/", {"jobId": 9, "payload": {"key": "k", "value": "v"}})).status == 422
    r = await backend.call("DELETE", f"/api/jobs/delete_job/{ids[0]}")
    assert (await r.json()) == {"msg": f"Successfully deleted job {ids[0]}"}
    r = await backend.call("DELETE", "/api/jobs/delete_job/", {"jobId": 501, "cluster": "emmy"})
    assert r.status == 200
    assert (await backend.call("DELETE", "/api/jobs/delete_job/", {"jobId": 501})).status == 422
    assert (await backend.call("DELETE", "/api/jobs/delete_job_before/1700002500?omit-tagged=bad")).status == 400
    r = await backend.call("DELETE", "/api/jobs/delete_job_before/1700002500?omit-tagged=all")
    assert (await r.json()) == {"msg": "Successfully deleted 1 jobs"}
    assert await backend.ctx.repo.count_jobs(__import__("ccbackend.repository", fromlist=["JobFilter"]).JobFilter()) == 1


# ---- clusters, users, node state -------------------------------------------------------------------
async def test_clusters_and_users(backend: Backend):
    r = await backend.call("GET", "/api/clusters/")
    names = {c["name"] for c in (await r.json())["clusters"]}
    assert {"emmy", "testcl"} <= names
    assert (await backend.call("GET", "/api/clusters/?cluster=nosuch")).status == 400
    r = await backend.call("GET", "/api/clusters/?cluster=emmy")
    assert [c["name"] for c in (await r.json())["clusters"]] == ["emmy"]
    # users: admin+api only
    assert (await backend.call("GET", "/api/users/")).status == 403
    from ccbackend.auth import create_user

    await create_user(backend.ctx.repo, "u1", "pw", ["user"], default_metrics=None)
    r = await backend.call("GET", "/api/users/", roles=("admin", "api"), user="root")
    assert r.status == 200 and [u["username"] for u in await r.json()] == ["u1"]
    r = await backend.call("POST", "/api/user/u1", {"add-role": "Manager"}, roles=("admin", "api"), user="root")
    assert r.status == 200 and (await r.json())["msg"] == "Add Role Success for user u1"
    r = await backend.call("POST", "/api/user/u1", {"add-project": "p1", "remove-role": "x"}, roles=("admin", "api"))
    assert r.status == 422  # remove-role comes first and u1 lacks role x
    r = await backend.call("POST", "/api/user/u1", {}, roles=("admin", "api"))
    assert r.status == 400
    r = await backend.call("POST", "/api/user/u1", {"bogus": 1}, roles=("admin", "api"))
    assert r.status == 400


async def test_node_state(backend: Backend):
    body = {"cluster": "emmy", "nodes": [
        {"hostname": "e0101", "states": ["ALLOCATED", "mixed"], "cpusAllocated": 40, "jobsRunning": 1},
        {"hostname": "e0102", "states": ["idle", "down"]},
    ]}
    r = await backend.call("POST", "/api/nodestate/", body)
    assert r.status == 200 and await r.read() == b""
    states = {s.hostname: s for s in await backend.ctx.repo.latest_node_states("emmy")}
    assert states["e0101"].node_state == "allocated" and states["e0101"].cpus_allocated == 40
    assert states["e0102"].node_state == "down" and states["e0102"].health_state == "full"
    # metric store unreachable: health unknown → failed
    assert states["e0101"].health_state == "failed"
    assert (await backend.call("PUT", "/api/nodestate/", {"cluster": "nosuch", "nodes": []})).status == 400
    assert (await backend.call("PUT", "/api/nodestate/", {"cluster": "emmy", "nodes": [{"host": "x"}]})).status == 400


# ---- auth, hostile input, protocol details ---------------------------------------------------------
ENDPOINTS = [
    ("GET", "/api/jobs/"),
    ("POST", "/api/jobs/start_job/"),
    ("POST", "/api/jobs/stop_job/"),
    ("GET", "/api/jobs/1"),
    ("GET", "/api/jobs/metrics/1"),
    ("POST", "/api/jobs/tag_job/1"),
    ("PATCH", "/api/jobs/edit_meta/1"),
    ("DELETE", "/api/jobs/delete_job/1"),
    ("DELETE", "/api/jobs/delete_job_before/1"),
    ("DELETE", "/api/tags/"),
    ("GET", "/api/clusters/"),
    ("GET", "/api/users/"),
    ("POST", "/api/user/x"),
    ("POST", "/api/nodestate/"),
    ("GET", "/api/jobs/used_nodes?ts=1"),
    ("GET", "/userapi/jobs/"),
    ("GET", "/userapi/jobs/1"),
    ("GET", "/userapi/jobs/metrics/1"),
]
ROLESETS = {
    "none": None,
    "api": ("api",),
    "admin+api": ("admin", "api"),
    "user+api": ("user", "api"),
    "support+api": ("support", "api"),
    "manager+api": ("manager", "api"),
    "admin": ("admin",),
    "user": ("user",),
}


def _expected_gate(path: str, roles: tuple[str, ...] | None) -> bool:
    """True when the auth layer lets the request through to the handler (spec §4.2 table)."""
    if roles is None:
        return False
    r = set(roles)
    if path.startswith("/userapi/"):
        return r == {"api"} or ("api" in r and bool(r & {"user", "manager", "support", "admin"}))
    return r == {"api"} or r == {"admin", "api"}


@pytest.mark.parametrize("who", list(ROLESETS))
async def test_role_matrix(backend: Backend, who):
    roles = ROLESETS[who]
    for method, path in ENDPOINTS:
        r = await backend.call(method, path, raw=b"{}", roles=roles or ())
        passes = _expected_gate(path, roles)
        if not passes:
            assert r.status == 401, (who, method, path, r.status)
            continue
        assert r.status != 401, (who, method, path, await r.text())
        if path in ("/api/users/", "/api/user/x") and "admin" not in (roles or ()):
            assert r.status == 403, (who, method, path)
        if path.startswith(("/api/clusters/", "/api/jobs/used_nodes")):
            assert r.status != 403


@pytest.mark.parametrize("kind", ["expired", "forged", "none", "hs256", "garbage", "x-auth"])
async def test_bad_tokens(backend: Backend, kind):
    if kind == "x-auth":  # the other header works too
        r = await backend.client.get("/api/jobs/", headers={"X-Auth-Token": backend.token("api")})
        assert r.status == 200
        return
    if kind == "expired":
        tok = backend.ctx.auth.tokens.issue("x", ["api"], now=time.time() - 7200)
    elif kind == "forged":
        _, other = ccjwt.generate_keypair()
        tok = ccjwt.sign({"sub": "x", "roles": ["api"]}, other)
    elif kind == "none":
        def b64(d: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
        tok = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': 'x', 'roles': ['api']})}."
    elif kind == "hs256":
        import jwt as pyjwt

        tok = pyjwt.encode({"sub": "x", "roles": ["api"]}, "secret-secret-secret-secret-secret", algorithm="HS256")
    else:
        tok = "not.a.token"
    r = await backend.client.get("/api/jobs/", headers={"Authorization": f"Bearer {tok}"})
    assert r.status == 401
    assert (await r.json())["status"] == "Unauthorized"


async def test_api_allowed_ips(tmp_path: Path):
    _archive(tmp_path)
    b, _ = await _start(tmp_path, None, **{"api-allowed-ips": ["10.0.0.1"]})
    try:
        r = await b.call("GET", "/api/jobs/")
        assert r.status == 401 and "unknown ip" in (await r.json())["error"]
        r = await b.call("GET", "/api/jobs/", headers={"X-Real-Ip": "10.0.0.1"})
        assert r.status == 200
    finally:
        await _stop(b)


async def test_protocol_details(backend: Backend):
    # unknown API paths: JSON 404; no trailing-slash redirect
    r = await backend.call("GET", "/api/nosuch/")
    assert r.status == 404 and (await r.json()) == {
        "status": "Resource not found", "error": "the requested endpoint does not exist"}
    assert (await backend.call("GET", "/api/jobs")).status == 404
    # start_job without the slash hits /api/jobs/{id}: 400 integer expected (upstream routing)
    r = await backend.call("POST", "/api/jobs/start_job", demo_job(1))
    assert r.status == 400 and "integer expected" in (await r.json())["error"]
    # wrong method on a known path: 405 with empty body
    r = await backend.call("PUT", "/api/jobs/")
    assert r.status == 405 and await r.read() == b""
    # security headers
    r = await backend.call("GET", "/api/jobs/")
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
    # cross-site writes are refused
    r = await backend.call("POST", "/api/jobs/start_job/", demo_job(1), headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status == 403


async def test_oversized_body_is_refused(backend: Backend, monkeypatch):
    big = b'{"jobId": 1, "x": "' + b"a" * (65 * 1024 * 1024) + b'"}'
    r = await backend.call("POST", "/api/jobs/start_job/", raw=big)
    assert r.status == 413
    assert await backend.ctx.repo.count_jobs(__import__("ccbackend.repository", fromlist=["JobFilter"]).JobFilter()) == 0


async def test_machine_state_and_path_traversal(tmp_path: Path):
    _archive(tmp_path)
    b, _ = await _start(tmp_path, None, **{"machine-state-dir": str(tmp_path / "ms")})
    try:
        r = await b.call("PUT", "/api/machine_state/emmy/e0101", raw=b'{"cpus": 40}')
        assert r.status == 201
        r = await b.call("GET", "/api/machine_state/emmy/e0101")
        assert r.status == 200 and await r.json() == {"cpus": 40}
        assert (await b.call("GET", "/api/machine_state/emmy/e0999")).status == 404
        for bad in ("..", "..%2F..%2Fetc", "a%5Cb"):
            r = await b.call("PUT", f"/api/machine_state/{bad}/host", raw=b"{}")
            assert r.status in (400, 404), bad
        assert not (tmp_path / "etc").exists()
    finally:
        await _stop(b)


async def test_job_api_routes_disabled_with_nats_subjects(tmp_path: Path):
    _archive(tmp_path)
    cfg_main = {"api-subjects": {"subject-job-event": "cc.job.event", "subject-node-state": "cc.node.state"}}
    b, _ = await _start(tmp_path, None, **cfg_main)
    try:
        assert (await b.call("POST", "/api/jobs/start_job/", demo_job(1))).status == 404
        assert (await b.call("GET", "/api/jobs/")).status == 200
    finally:
        await _stop(b)


async def test_openapi_document_lists_every_route(tmp_path: Path):
    _archive(tmp_path)
    b, _ = await _start(tmp_path, None, dev=True)
    try:
        r = await b.client.get("/swagger/openapi.json")
        spec = await r.json()
        assert spec["openapi"].startswith("3.")
        for route in b.client.app[ROUTES_KEY]:
            assert route.method.lower() in spec["paths"][route.path], route.path
        assert (await b.client.get("/swagger/")).status == 200
        assert "requestBody" in spec["paths"]["/api/jobs/start_job/"]["post"]
    finally:
        await _stop(b)


# ---- full lifecycle against the real metric store --------------------------------------------------
def _write(url: str, lines: list[str]) -> None:
    req = urllib.request.Request(f"{url}/api/write", data="\n".join(lines).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 204)


async def test_lifecycle_live_then_archived(tmp_path: Path, store):
    _archive(tmp_path)
    b, ctx = await _start(tmp_path, store.url)
    try:
        now = int(time.time())
        start = now - 600
        hosts = ["e0101", "e0102"]
        body = demo_job(start, 777, resources=[{"hostname": h} for h in hosts], numNodes=2)
        r = await b.call("POST", "/api/jobs/start_job/", body)
        assert r.status == 201
        jid = (await r.json())["id"]
        lines = []
        for t in range(start, now, 60):
            for i, h in enumerate(hosts):
                lines.append(f"cpu_load,cluster=emmy,hostname={h},type=node value={10 + i + (t - start) / 600} {t}")
                lines.append(f"mem_used,cluster=emmy,hostname={h},type=node value={4 + i} {t}")
                lines.append(f"cpu_power,cluster=emmy,hostname={h},type=node value=200 {t}")
        await asyncio.to_thread(_write, store.url, lines)
        r = await b.call("GET", f"/api/jobs/metrics/{jid}?metric=cpu_load&metric=mem_used&scope=node")
        live = await r.json()
        assert live["error"] is None, live
        live_metrics = {(m["name"], m["scope"]): m["metric"] for m in live["data"]["jobMetrics"]}
        series = {s["hostname"]: s for s in live_metrics[("cpu_load", "node")]["series"]}
        assert set(series) == set(hosts)
        assert any(v is not None for v in series["e0101"]["data"])
        r = await b.call("POST", "/api/jobs/stop_job/", {"jobId": 777, "cluster": "emmy", "startTime": start,
                                                         "stopTime": now, "jobState": "completed"})
        assert r.status == 200
        for _ in range(100):
            job = await ctx.repo.get_job(jid)
            if job.monitoring_status != 1:
                break
            await asyncio.sleep(0.1)
        assert job.monitoring_status == 3
        d = tmp_path / "archive" / "emmy" / "0" / "777" / str(start)
        assert (d / "meta.json").exists()
        assert (d / "data.json").exists() or (d / "data.json.gz").exists()
        meta = json.loads((d / "meta.json").read_text())
        assert meta["statistics"]["mem_used"]["avg"] == 4.5
        assert job.footprint and job.footprint.get("mem_used_max") == 5.0
        assert job.energy > 0 and "cpu_power" in (job.energy_footprint or {})
        r = await b.call("GET", f"/api/jobs/metrics/{jid}?metric=cpu_load&metric=mem_used&scope=node")
        archived = await r.json()
        assert archived["error"] is None
        arch = {(m["name"], m["scope"]): m["metric"] for m in archived["data"]["jobMetrics"]}
        for key in live_metrics:
            a = {s["hostname"]: s["data"] for s in arch[key]["series"]}
            lv = {s["hostname"]: s["data"] for s in live_metrics[key]["series"]}
            for h in hosts:
                n = min(len(a[h]), len(lv[h]))
                assert n > 0
                assert [round(x, 2) if x is not None else None for x in lv[h][:n]] == a[h][:n]
        r = await b.call("GET", "/api/jobs/?state=completed&cluster=emmy")
        listed = (await r.json())["jobs"][0]
        assert listed["statistics"]["mem_used"]["avg"] == 4.5
    finally:
        await _stop(b)


async def test_archiving_with_metric_store_down_keeps_the_job(backend: Backend):
    now = int(time.time())
    r = await backend.call("POST", "/api/jobs/start_job/", demo_job(now - 300, 888))
    jid = (await r.json())["id"]
    r = await backend.call("POST", f"/api/jobs/stop_job/{jid}", {"stopTime": now})
    assert r.status == 200
    await backend.ctx.archiver.drain(30)
    job = await backend.ctx.repo.get_job(jid)
    assert job is not None and job.job_state == "completed" and job.monitoring_status == 2
    d = backend.root / "archive" / "emmy" / "0" / "888" / str(now - 300)
    assert (d / "meta.json").exists()


async def test_prometheus_metrics_endpoint(backend: Backend):
    r = await backend.client.get("/metrics")
    assert r.status == 200
    assert "ccbackend_archiver_queue_length" in await r.text()


async def test_upstream_archive_after_init_db_is_listed_and_served(tmp_path: Path):
    """-init-db on upstream's test archive: both emmy jobs listed and served with their data."""
    src = UPSTREAM / "cc-backend/pkg/archive/testdata/archive"
    if not src.exists():
        pytest.skip("upstream fixtures not available")
    from ccbackend.importer import init_db

    shutil.copytree(src, tmp_path / "archive")
    b, ctx = await _start(tmp_path, None)
    try:
        imported, skipped, _ = await init_db(ctx.repo, ctx.archive, ctx.registry, progress=False)
        assert (imported, skipped) == (2, 0)
        r = await b.call("GET", "/api/jobs/?cluster=emmy")
        jobs = {j["jobId"]: j for j in (await r.json())["jobs"]}
        assert set(jobs) == {1403244, 1404397}
        for j in jobs.values():
            assert j["monitoringStatus"] == 3 and j["statistics"] and isinstance(j["footprint"], dict)
            r = await b.call("GET", f"/api/jobs/metrics/{j['id']}?metric=cpu_load&metric=flops_any")
            body = await r.json()
            assert body["error"] is None
            names = {m["name"] for m in body["data"]["jobMetrics"]}
            assert names == {"cpu_load", "flops_any"}
            series = body["data"]["jobMetrics"][0]["metric"]["series"]
            assert len(series) == j["numNodes"] and any(v is not None for v in series[0]["data"])
    finally:
        await _stop(b)


@pytest.mark.parametrize("cluster", ["../../etc", "emmy/../testcl", "..", "emmy\\x", "em%00my"])
async def test_path_traversal_in_cluster_names_is_refused(backend: Backend, cluster):
    r = await backend.call("POST", "/api/jobs/start_job/", demo_job(1_700_000_000, cluster=cluster))
    assert r.status == 400 and "no such cluster" in (await r.json())["error"]
    r = await backend.call("GET", f"/api/clusters/?cluster={cluster}")
    assert r.status == 400


async def test_gzip_on_request(backend: Backend):
    await _seed(backend)
    r = await backend.client.get("/api/jobs/", headers={**backend.hdr("api"), "Accept-Encoding": "gzip"})
    assert r.status == 200 and r.headers.get("Content-Encoding") == "gzip"
    assert len((await r.json())["jobs"]) == 4
    r = await backend.client.get("/api/jobs/", headers={**backend.hdr("api"), "Accept-Encoding": "identity"})
    assert "Content-Encoding" not in r.headers


async def test_nats_job_api(tmp_path: Path, nats_server):
    """start_job/stop_job and node states as line protocol on the api-subjects (spec §4.12)."""
    import uuid

    import nats

    from ccbackend.natsapi import NatsJobApi
    from ccbackend.server import HANDLERS_KEY

    _archive(tmp_path)
    subj = f"cc.test.{uuid.uuid4().hex[:8]}"
    main = {"api-subjects": {"subject-job-event": f"{subj}.job", "subject-node-state": f"{subj}.node"}}
    b, ctx = await _start(tmp_path, None, **main)
    api = NatsJobApi(b.client.app[HANDLERS_KEY], type("N", (), {"address": nats_server.url, "username": "",
                     "password": "", "creds_file_path": ""})(), ctx.config.main.api_subjects)
    await api.start()
    nc = await nats.connect(nats_server.url)
    try:
        def lp(measurement: str, payload: dict, function: str | None = None) -> bytes:
            ev = json.dumps(payload).replace("\\", "\\\\").replace('"', '\\"')
            tags = f",function={function}" if function else ""
            return f'{measurement}{tags} event="{ev}" {time.time_ns()}'.encode()

        start = 1_700_000_000
        await nc.publish(f"{subj}.job", lp("job", demo_job(start, 4242), "start_job"))
        await nc.publish(f"{subj}.job", lp("job", demo_job(start, 4243, cluster="nosuch"), "start_job"))
        await nc.publish(f"{subj}.job", b"job,function=start_job event=notquoted")
        await nc.flush()
        for _ in range(50):
            job = await ctx.repo.find_job(4242, "emmy")
            if job is not None:
                break
            await asyncio.sleep(0.1)
        assert job is not None and job.job_state == "running"
        await nc.publish(f"{subj}.job", lp("job", {"jobId": 4242, "cluster": "emmy", "startTime": start,
                                                   "stopTime": start + 100, "jobState": "completed"}, "stop_job"))
        await nc.publish(f"{subj}.node", lp("nodestate", {"cluster": "emmy", "nodes": [
            {"hostname": "e0101", "states": ["idle"]}]}))
        await nc.flush()
        for _ in range(50):
            job = await ctx.repo.find_job(4242, "emmy")
            states = await ctx.repo.latest_node_states("emmy")
            if job.job_state == "completed" and states:
                break
            await asyncio.sleep(0.1)
        assert job.job_state == "completed" and job.duration == 100
        assert [s.hostname for s in states] == ["e0101"] and states[0].node_state == "idle"
        assert await ctx.repo.find_job(4243) is None  # rejected (unknown cluster), only logged
        # REST start/stop are not offered while NATS delivers job events
        assert (await b.call("POST", "/api/jobs/start_job/", demo_job(start + 999))).status == 404
    finally:
        await nc.close()
        await api.stop()
        await _stop(b)
