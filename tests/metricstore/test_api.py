"""The HTTP API against the real daemon on an ephemeral port (spec §3.6, §4–§9)."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import orjson
import pytest

from cccommon import jwt as ccjwt
from tests.metricstore.conftest import README_PUBLIC_KEY, README_TOKEN

NOW = int(time.time()) // 10 * 10
T0 = NOW - 600


def call(
    url: str, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    if isinstance(body, str):
        body = body.encode()
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def lines(host: str = "n1", n: int = 10, metric: str = "cpu_load", extra: str = "", step: int = 10) -> str:
    return "\n".join(f"{metric},hostname={host}{extra} value={k}.5 {T0 + step * k}" for k in range(n))


def query(url: str, body: dict[str, Any], method: str = "GET", headers: dict[str, str] | None = None) -> Any:
    st, _, data = call(url, method, "/api/query", orjson.dumps(body), headers)
    assert st == 200, data
    return orjson.loads(data)


@pytest.fixture
def store(daemon_factory):
    d = daemon_factory().start()
    yield d
    d.stop()


def node_query(url: str, host: str = "n1", metric: str = "cpu_load", cluster: str = "c1", **kw: Any) -> dict:
    body = {
        "cluster": cluster,
        "from": T0,
        "to": T0 + 100,
        "queries": [{"metric": metric, "host": host, **kw}],
    }
    return query(url, body)["results"][0]


def test_write_then_query_get_post_and_trailing_slash(store):
    st, hdr, body = call(store.url, "POST", "/api/write?cluster=c1", lines())
    assert st == 200 and body == b"" and hdr["content-type"].startswith("application/json")
    row = node_query(store.url)
    assert row[0]["data"] == [k + 0.5 for k in range(10)]
    assert row[0]["from"] == T0 and row[0]["resolution"] == 10
    for method, path in (("POST", "/api/query"), ("GET", "/api/query/"), ("POST", "/api/query/x")):
        st, _, data = call(
            store.url,
            method,
            path,
            orjson.dumps(
                {
                    "cluster": "c1",
                    "from": T0,
                    "to": T0 + 30,
                    "queries": [{"metric": "cpu_load", "host": "n1"}],
                }
            ),
        )
        assert st == 200 and orjson.loads(data)["results"][0][0]["data"] == [0.5, 1.5, 2.5]
    st, _, _ = call(store.url, "POST", "/api/write/", lines("n2"), None)
    assert st == 200


def test_cluster_tag_overrides_default_and_hwthreads_aggregate(store):
    body = "\n".join(
        f"flops_any,cluster=c2,hostname=n9,type=hwthread,type-id={t} value={t} {T0 + 10 * k}"
        for k in range(5)
        for t in range(4)
    )
    assert call(store.url, "POST", "/api/write?cluster=ignored", body)[0] == 200
    row = node_query(
        store.url,
        host="n9",
        metric="flops_any",
        cluster="c2",
        type="hwthread",
        **{"type-ids": ["0", "1", "2", "3"], "aggreg": True},
    )
    assert row[0]["data"] == [6.0] * 5


def test_timestamp_precisions(store):
    body = "\n".join(
        [
            f"cpu_load,hostname=p value=1 {T0}",
            f"cpu_load,hostname=p value=2 {(T0 + 10) * 1000}",
            f"cpu_load,hostname=p value=3 {(T0 + 20) * 1000_000}",
            f"cpu_load,hostname=p value=4 {(T0 + 30) * 1000_000_000}",
        ]
    )
    assert call(store.url, "POST", "/api/write?cluster=c1", body)[0] == 200
    assert node_query(store.url, host="p")[0]["data"] == [1.0, 2.0, 3.0, 4.0]


def test_bad_lines_are_named_and_good_lines_kept(store):
    body = "\n".join(
        [
            f"cpu_load,hostname=b value=1 {T0}",
            "cpu_load,hostname=b,type value=2",
            f"cpu_load,hostname=b value=3 {T0 + 20}",
            f"cpu_load,hostname=b other=4 {T0 + 30}",
            f'cpu_load,hostname=b value="str" {T0 + 30}',
            f"cpu_load,hostname=b value=5 {T0 + 40}",
        ]
    )
    st, hdr, data = call(store.url, "POST", "/api/write?cluster=c1", body)
    assert st == 400 and hdr["content-type"].startswith("application/json")
    err = orjson.loads(data)
    assert err["status"] == "Bad Request"
    assert "3 line(s) rejected" in err["error"]
    for n in ("line 2", "line 4", "line 5"):
        assert n in err["error"]
    assert node_query(store.url, host="b")[0]["data"] == [1.0, None, 3.0, None, 5.0]


def test_skipped_lines_are_counted_not_errors(store):
    body = "\n".join(
        [
            f"unknown_metric,hostname=s value=1 {T0}",
            f"cpu_load value=1 {T0}",  # no host
            f"cpu_load,hostname=../etc value=1 {T0}",
            f"cpu_load,hostname=a/b value=1 {T0}",
            f"cpu_load,hostname=s value=7 {T0}",
        ]
    )
    st, _, _ = call(store.url, "POST", "/api/write", body)  # no default cluster: every line lacks one
    assert st == 200
    st, _, _ = call(store.url, "POST", "/api/write?cluster=c1", body)
    assert st == 200
    assert node_query(store.url, host="s")[0]["data"] == [7.0]
    _, _, metrics = call(store.url, "GET", "/metrics")
    text = metrics.decode()
    assert 'ccms_lines_skipped_total{reason="unknown_metric"} 2.0' in text
    assert 'ccms_lines_skipped_total{reason="no_cluster_or_host"}' in text
    assert 'ccms_lines_skipped_total{reason="unsafe_name"} 2.0' in text
    st, _, dbg = call(store.url, "GET", "/api/debug")
    tree = orjson.loads(dbg)["data"]
    assert set(tree) == {"c1"} and ".." not in json.dumps(tree)


def test_body_limit_413(daemon_factory):
    d = daemon_factory(main={"max-body-size": 1000}).start()
    try:
        st, _, data = call(d.url, "POST", "/api/write?cluster=c1", lines(n=200))
        assert st == 413 and "limit of 1000 bytes" in orjson.loads(data)["error"]
        assert call(d.url, "POST", "/api/write?cluster=c1", lines(n=2))[0] == 200
    finally:
        d.stop()


@pytest.mark.parametrize("body", [b"", b"{not json", b'{"from": "x"}', b'{"queries": 7}'])
def test_query_bad_bodies_400_json(store, body):
    st, hdr, data = call(store.url, "GET", "/api/query", body)
    assert st == 400 and hdr["content-type"].startswith("application/json")
    assert orjson.loads(data)["error"]


def test_query_by_url_as_in_the_guide(store):
    call(
        store.url, "POST", "/api/write?cluster=mycluster", lines("g1") + "\n" + lines("g2", metric="mem_used")
    )
    st, _, data = call(store.url, "GET", f"/api/query?cluster=mycluster&from={T0}&to={T0 + 100}")
    assert st == 200
    out = orjson.loads(data)
    hosts = {q["host"] for q in out["queries"]}
    assert hosts == {"g1", "g2"}
    assert len(out["results"]) == len(out["queries"]) == 2 * 4
    st, _, data = call(
        store.url, "GET", f"/api/query?cluster=mycluster&from={T0}&to={T0 + 30}&host=g1&metric=cpu_load"
    )
    assert orjson.loads(data)["results"] == [
        [
            {
                "data": [0.5, 1.5, 2.5],
                "from": T0,
                "to": T0 + 30,
                "resolution": 10,
                "avg": 1.5,
                "min": 0.5,
                "max": 2.5,
            }
        ]
    ]
    st, _, data = call(store.url, "GET", "/api/query?cluster=mycluster&to=5")
    assert st == 400 and "'from'" in orjson.loads(data)["error"]


def test_free(store):
    call(store.url, "POST", "/api/write?cluster=c1", lines("f1"))
    st, _, data = call(store.url, "POST", "/api/free", b"[]")
    assert st == 400 and "'to' is a required" in orjson.loads(data)["error"]
    st, _, data = call(store.url, "POST", "/api/free?to=abc", b"[]")
    assert st == 400 and "invalid syntax" in orjson.loads(data)["error"]
    st, _, data = call(store.url, "POST", f"/api/free?to={NOW}", b'{"a": 1}')
    assert st == 400
    st, _, data = call(store.url, "POST", f"/api/free?to={NOW}", b'[["c1", "../x"]]')
    assert st == 400
    st, _, data = call(store.url, "POST", f"/api/free/?to={T0 + 10**6}", b'[["c1", "f1"]]')
    assert st == 200 and data == b"buffers freed: 1\n"
    assert node_query(store.url, host="f1") == []


def test_debug_is_valid_json(store):
    call(store.url, "POST", "/api/write?cluster=c1", lines("d1", n=3))
    st, _, data = call(store.url, "GET", "/api/debug")
    tree = orjson.loads(data)["data"]
    (chunk,) = tree["c1"]["d1"]["cpu_load"]
    assert chunk["len"] == 3 and chunk["start"] == T0 - 5
    st, _, data = call(store.url, "GET", "/api/debug?selector=c1:d1")
    assert st == 200 and "cpu_load" in orjson.loads(data)["data"]
    st, _, data = call(store.url, "GET", "/api/debug/?selector=c1:nope")
    assert st == 400 and orjson.loads(data)["error"] == '[METRICSTORE]> not found: []string{"c1", "nope"}'


def test_healthcheck(store):
    now = int(time.time())  # health is judged against the wall clock, not the module's NOW
    fresh = "\n".join(f"cpu_load,hostname=h1 value=1 {now - 10 * k}" for k in range(3))
    stale = f"mem_used,hostname=h1 value=1 {now - 3600}"
    call(store.url, "POST", "/api/write?cluster=c1", fresh + "\n" + stale)
    body = {"cluster": "c1", "nodes": ["h1", "h9"], "metric-names": ["cpu_load", "mem_used", "flops_any"]}
    st, _, data = call(store.url, "GET", "/api/healthcheck", orjson.dumps(body))
    out = orjson.loads(data)
    assert out["h1"]["State"] == "partial"
    assert json.loads(out["h1"]["HealthMetrics"]) == {"degraded": ["mem_used"], "missing": ["flops_any"]}
    assert out["h9"] == {"State": "failed", "HealthMetrics": ""}
    st, _, data = call(store.url, "GET", "/api/healthcheck/", b'{"cluster": "c1", "node": "h1"}')
    assert (
        st == 400 and orjson.loads(data)["error"] == 'parsing request body failed: json: unknown field "node"'
    )
    st, _, data = call(store.url, "GET", "/api/healthcheck", b"")
    assert st == 400 and "EOF" in orjson.loads(data)["error"]


def test_unknown_path_and_method(store):
    st, _, data = call(store.url, "GET", "/nope")
    assert st == 404 and orjson.loads(data)["error"] == "404 page not found"
    st, hdr, data = call(store.url, "GET", "/api/write")
    assert st == 405 and "POST" in hdr.get("allow", "")


def test_metrics_endpoint(store):
    call(store.url, "POST", "/api/write?cluster=c1", lines("m1"))
    st, hdr, data = call(store.url, "GET", "/metrics")
    assert st == 200 and b'ccms_lines_written_total{source="http"} 10.0' in data


# ----------------------------------------------------------------------------- auth


@pytest.fixture
def secured(daemon_factory):
    d = daemon_factory(main={"jwt-public-key": README_PUBLIC_KEY}).start()
    yield d
    d.stop()


def test_auth_required_on_every_endpoint(secured):
    for method, path in (
        ("POST", "/api/write?cluster=c1"),
        ("GET", "/api/query"),
        ("POST", "/api/free?to=1"),
        ("GET", "/api/debug"),
        ("GET", "/api/healthcheck"),
    ):
        st, hdr, data = call(secured.url, method, path, b"{}")
        assert st == 401 and orjson.loads(data)["error"] == "Use JWT Authentication", path


def test_readme_token_accepted_guide_token_rejected(secured):
    ok = {"Authorization": f"Bearer {README_TOKEN}"}
    assert call(secured.url, "POST", "/api/write?cluster=c1", lines("a1"), ok)[0] == 200
    assert query(
        secured.url,
        {"cluster": "c1", "from": T0, "to": T0 + 20, "queries": [{"metric": "cpu_load", "host": "a1"}]},
        headers=ok,
    )["results"][0][0]["data"] == [0.5, 1.5]
    truncated = README_TOKEN[: README_TOKEN.rindex(".") + 1 + 54]  # a 40-byte signature as in the guide
    st, _, data = call(secured.url, "GET", "/api/debug", None, {"Authorization": f"Bearer {truncated}"})
    assert st == 401


def test_forged_expired_and_none_tokens(secured):
    pub, priv = ccjwt.generate_keypair()
    other = ccjwt.sign({"user": "x"}, priv)
    st, _, _ = call(secured.url, "GET", "/api/debug", None, {"Authorization": f"Bearer {other}"})
    assert st == 401
    import base64

    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    none_token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'user': 'admin'})}."
    st, _, data = call(secured.url, "GET", "/api/debug", None, {"Authorization": f"Bearer {none_token}"})
    assert st == 401 and "only Ed25519/EdDSA supported" in orjson.loads(data)["error"]
    st, _, _ = call(secured.url, "GET", "/api/debug", None, {"Authorization": "Basic abc"})
    assert st == 401


def test_expired_token_with_own_key(daemon_factory):
    pub, priv = ccjwt.generate_keypair()
    d = daemon_factory(main={"jwt-public-key": pub}).start()
    try:
        good = ccjwt.sign({"user": "api", "exp": int(time.time()) + 600}, priv)
        expired = ccjwt.sign({"user": "api", "exp": int(time.time()) - 10}, priv)
        assert call(d.url, "GET", "/api/debug", None, {"Authorization": f"Bearer {good}"})[0] == 200
        st, _, data = call(d.url, "GET", "/api/debug", None, {"Authorization": f"Bearer {expired}"})
        assert st == 401 and "expired" in orjson.loads(data)["error"]
    finally:
        d.stop()


def test_swagger_with_dev(daemon_factory):
    d = daemon_factory().start("-dev")
    try:
        st, _, data = call(d.url, "GET", "/swagger/")
        assert st == 200 and b"swagger-ui-bundle.js" in data
        st, _, data = call(d.url, "GET", "/swagger/openapi.json")
        spec = orjson.loads(data)
        assert {"/api/write", "/api/query", "/api/free", "/api/debug", "/api/healthcheck"} <= set(
            spec["paths"]
        )
        st, _, data = call(d.url, "GET", "/swagger/swagger-ui-bundle.js")
        assert st == 200 and len(data) > 100_000
    finally:
        d.stop()
    d2 = daemon_factory().start()
    try:
        assert call(d2.url, "GET", "/swagger/")[0] == 404
    finally:
        d2.stop()


def _adapt(cfg: dict, port: int, tmp) -> dict:
    """The example configs with a free port and directories below tmp."""
    if "main" in cfg:
        cfg["main"]["addr"] = f"127.0.0.1:{port}"
        ms = cfg["metric-store"]
        ms["checkpoints"]["directory"] = str(tmp / "checkpoints")
        if "cleanup" in ms and ms["cleanup"].get("directory"):
            ms["cleanup"]["directory"] = str(tmp / "archive")
    else:
        cfg["http-api"]["address"] = f"127.0.0.1:{port}"
        cfg["checkpoints"]["directory"] = str(tmp / "checkpoints")
        if "archive" in cfg:
            cfg["archive"]["directory"] = str(tmp / "archive")
    return cfg


@pytest.mark.parametrize(
    "source",
    [
        "guide-legacy.json",
        "guide-nats.json",
        "current.json",
        "upstream:cc-metric-store/configs/config.json",
        "upstream:cc-metric-store/configs/config-nats.json",
    ],
)
def test_example_configs_start_the_daemon(daemon_factory, tmp_path, source):
    from tests.conftest import DATA, free_port, upstream_fixture

    if source.startswith("upstream:"):
        path = upstream_fixture(source.removeprefix("upstream:"))
    else:
        path = DATA / "metricstore" / "configs" / source
    port = free_port()
    cfg = _adapt(json.loads(path.read_text()), port, tmp_path)
    d = daemon_factory(config=cfg, port=port).start()
    try:
        hdr = {"Authorization": f"Bearer {README_TOKEN}"}
        metric = next(iter(cfg["metrics"]))
        body = f"{metric},hostname=x1 value=1 {int(time.time())}"
        assert call(d.url, "POST", "/api/write?cluster=cx", body, hdr)[0] == 200
        st, _, data = call(
            d.url,
            "GET",
            "/api/healthcheck",
            orjson.dumps({"cluster": "cx", "nodes": ["x1"], "metric-names": [metric]}),
            hdr,
        )
        assert st == 200 and orjson.loads(data)["x1"]["State"] == "full"
    finally:
        assert d.stop() == 0
