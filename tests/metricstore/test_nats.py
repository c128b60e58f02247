"""NATS ingestion against a real nats-server (spec §10)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from tests.metricstore.test_api import T0, call

pytestmark = pytest.mark.nats


async def publish(url: str, subject: str, payloads: list[bytes]) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=5)
    for p in payloads:
        await nc.publish(subject, p)
    await nc.flush()
    await nc.close()


def wait_for(pred, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def node_data(url: str, cluster: str, host: str, n: int = 10) -> list:
    body = {
        "cluster": cluster,
        "from": T0,
        "to": T0 + 10 * n,
        "queries": [{"metric": "cpu_load", "host": host}],
    }
    st, _, data = call(url, "GET", "/api/query", orjson.dumps(body))
    row = orjson.loads(data)["results"][0]
    return row[0].get("data", []) if row else []


def lp(host: str, n: int = 10, start: int = 0, cluster: str = "") -> bytes:
    ctag = f",cluster={cluster}" if cluster else ""
    return "\n".join(
        f"cpu_load{ctag},hostname={host} value={k} {T0 + 10 * k}" for k in range(start, n)
    ).encode()


def test_subscriptions_use_their_own_cluster_tag(nats_server, daemon_factory, tmp_path):
    subj = f"ccms-test-{time.time_ns()}"
    d = daemon_factory(
        nats={"address": nats_server.url},
        **{
            "nats-subscriptions": [
                {"subscribe-to": f"{subj}.a", "cluster-tag": "alpha"},
                {"subscribe-to": f"{subj}.b", "cluster-tag": "beta"},
            ]
        },
    ).start()
    try:
        assert wait_for(lambda: "subscribed to" in d.log() and d.log().count("subscribed to") >= 2), d.log()
        asyncio.run(publish(nats_server.url, f"{subj}.a", [lp("na")]))
        asyncio.run(publish(nats_server.url, f"{subj}.b", [lp("nb"), lp("nx", cluster="explicit")]))
        assert wait_for(lambda: len(node_data(d.url, "alpha", "na")) == 10), d.log()
        assert wait_for(lambda: len(node_data(d.url, "beta", "nb")) == 10)
        assert node_data(d.url, "alpha", "nb") == []
        assert wait_for(lambda: len(node_data(d.url, "explicit", "nx")) == 10)
    finally:
        d.stop()


def test_guide_legacy_nats_object_config(nats_server, daemon_factory, tmp_path):
    from tests.conftest import free_port

    port = free_port()
    subj = f"metrics.store.{time.time_ns()}"
    cfg = {
        "metrics": {"cpu_load": {"frequency": 10, "aggregation": None}},
        "nats": {
            "address": nats_server.url,
            "subscriptions": [{"subscribe-to": subj, "cluster-tag": "mycluster"}],
        },
        "http-api": {"address": f"127.0.0.1:{port}"},
        "retention-in-memory": "48h",
        "checkpoints": {"interval": "12h", "directory": str(tmp_path / "ck"), "restore": "48h"},
        "archive": {"interval": "24h", "directory": str(tmp_path / "archive")},
    }
    d = daemon_factory(config=cfg, port=port).start()
    try:
        assert wait_for(lambda: "subscribed to" in d.log()), d.log()
        asyncio.run(publish(nats_server.url, subj, [lp("g1")]))
        assert wait_for(lambda: len(node_data(d.url, "mycluster", "g1")) == 10), d.log()
    finally:
        d.stop()


def test_reconnects_after_nats_restart(private_nats, daemon_factory):
    subj = "ccms-restart"
    d = daemon_factory(
        nats={"address": private_nats.url},
        **{"nats-subscriptions": [{"subscribe-to": subj, "cluster-tag": "r"}]},
    ).start()
    try:
        assert wait_for(lambda: "subscribed to" in d.log()), d.log()
        asyncio.run(publish(private_nats.url, subj, [lp("h", n=5)]))
        assert wait_for(lambda: len(node_data(d.url, "r", "h")) == 5)
        private_nats.restart()
        assert wait_for(lambda: "reconnected" in d.log(), 30), d.log()
        asyncio.run(publish(private_nats.url, subj, [lp("h", n=10, start=5)]))
        assert wait_for(lambda: len(node_data(d.url, "r", "h")) == 10), d.log()
    finally:
        d.stop()


def test_starts_without_nats_and_connects_later(daemon_factory):
    from tests.conftest import NatsServer, free_port

    port = free_port()
    import tempfile
    from pathlib import Path

    srv = NatsServer(f"nats://127.0.0.1:{port}", None, port, Path(tempfile.mkdtemp()))
    d = daemon_factory(
        nats={"address": srv.url}, **{"nats-subscriptions": [{"subscribe-to": "late", "cluster-tag": "l"}]}
    ).start()
    try:
        assert wait_for(lambda: "cannot connect" in d.log()), d.log()
        assert call(d.url, "GET", "/api/debug")[0] == 200  # HTTP works meanwhile
        try:
            srv.start()
        except (RuntimeError, FileNotFoundError):
            pytest.skip("nats-server not on PATH")
        assert wait_for(lambda: "subscribed to" in d.log(), 30), d.log()
        asyncio.run(publish(srv.url, "late", [lp("z", n=3)]))
        assert wait_for(lambda: len(node_data(d.url, "l", "z", 3)) == 3)
    finally:
        d.stop()
        srv.stop()
