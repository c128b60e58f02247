"""Receivers against real peers on loopback: aiohttp clients and servers, nats-server, fake FreeIPMI."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from aiohttp import web

from cccollector.processor import MessageProcessor
from cccollector.receivers import load_all
from cccollector.receivers.base import (
    ReceiveManager,
    Receiver,
    ReceiverError,
    create_receiver,
    decode_lines,
    to_ns,
)
from cccollector.receivers.eecpt import EECPTReceiver, chi_square_limit, job_statistic
from cccollector.receivers.http import HttpReceiver
from cccollector.receivers.ipmi import IPMIReceiver, parse_sensor_line
from cccollector.receivers.nats import NatsReceiver
from cccollector.receivers.prometheus import PrometheusReceiver, parse_exposition, parse_sample
from cccollector.receivers.redfish import RedfishReceiver
from cccommon.message import CCMessage
from tests.conftest import DATA, NatsServer, free_port, missing_service, wait_port

load_all()

FIXTURES = DATA / "collector" / "receivers"
T_S = 1_719_840_000
T_NS = T_S * 1_000_000_000


def factory(config: Any) -> MessageProcessor:
    return MessageProcessor.from_config(config, "receiver")


class Collected:
    """The sink of a receiver under test."""

    def __init__(self) -> None:
        self.msgs: list[CCMessage] = []

    def __call__(self, msg: CCMessage) -> None:
        self.msgs.append(msg)

    async def wait(self, n: int, limit: float = 5.0) -> list[CCMessage]:
        deadline = time.monotonic() + limit
        while len(self.msgs) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {len(self.msgs)} of {n} messages: {self.msgs}")
            await asyncio.sleep(0.01)
        return self.msgs

    def names(self) -> list[str]:
        return [m.name for m in self.msgs]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def until(cond: Callable[[], bool], limit: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# ============================================================================ base


def test_to_ns_precisions_and_auto() -> None:
    assert to_ns(T_S, 1_000_000_000) == T_NS
    assert to_ns(T_S * 1000, 1_000_000) == T_NS
    assert to_ns(T_S * 1_000_000, 1000) == T_NS
    assert to_ns(T_NS, 1) == T_NS
    for t in (T_S, T_S * 1000, T_S * 1_000_000, T_NS):
        assert to_ns(t, None) == T_NS
    # thresholds of spec §4.6: < 1e11 s, < 1e14 ms, < 1e17 us, else ns
    assert to_ns(99_999_999_999, None) == 99_999_999_999 * 10**9
    assert to_ns(100_000_000_000, None) == 100_000_000_000 * 10**6
    assert to_ns(10**14, None) == 10**17
    assert to_ns(10**17, None) == 10**17


def test_decode_lines_stops_at_first_error() -> None:
    lines = [b"a,hostname=n1 value=1 1719840000", b"", b"# comment", b"b value=x 1", b"c value=3 1"]
    msgs, err = decode_lines(lines, 1, None, 123, {"source": "S"})
    assert [m.name for m in msgs] == ["a"]
    assert msgs[0].time == T_NS and msgs[0].meta == {"source": "S"} and msgs[0].tags == {"hostname": "n1"}
    assert err is not None and err.line == 4
    # a zero timestamp is an error (upstream: "timestamp cannot be zero"); no timestamp = now
    msgs, err = decode_lines([b"a value=1i", b"b value=2 0"], 10, None, 123, {})
    assert msgs[0].time == 123 and msgs[0].fields == {"value": 1}
    assert err is not None and err.line == 11 and "zero" in str(err)


def test_eecpt_statistic() -> None:
    from collections import deque

    assert job_statistic([deque([1.0, 2.0, 3.0, 10.0]), deque([5.0, 6.0])]) == 36.0
    assert job_statistic([deque([1.0, 1.0, 1.0])]) == 0.0  # prev == 0 is left out
    assert (
        chi_square_limit(2) == 3.8145 and chi_square_limit(72) == 91.670 and chi_square_limit(600) == 1098.5
    )


def test_options_lenient_strict_and_case() -> None:
    sink = Collected()
    r = create_receiver("h", {"Type": "http", "Port": 18080, "database": "x"}, sink)
    assert isinstance(r, HttpReceiver) and r.port == 18080 and r.path == "/"
    with pytest.raises(ReceiverError, match="missing 'type'"):
        create_receiver("x", {"port": "1"}, sink)
    with pytest.raises(ReceiverError, match="unknown receiver type 'influx'"):
        create_receiver("x", {"type": "influx"}, sink)
    with pytest.raises(ReceiverError, match="precision"):
        create_receiver("x", {"type": "http", "precision": "minutes"}, sink)
    with pytest.raises(ReceiverError, match="port"):
        create_receiver("x", {"type": "http", "port": "http"}, sink)
    with pytest.raises(ReceiverError, match="needs the rules engine"):
        create_receiver("x", {"type": "http", "process_messages": {"drop_messages": ["a"]}}, sink)
    r = create_receiver("x", {"type": "http", "process_messages": {"drop_messages": ["a"]}}, sink, factory)
    assert r.processor is not None
    with pytest.raises(ReceiverError, match="both 'username' and 'password'"):
        create_receiver("x", {"type": "http", "username": "u"}, sink)
    with pytest.raises(ReceiverError, match="subject"):
        create_receiver("x", {"type": "nats"}, sink)
    with pytest.raises(ReceiverError, match="does not exist"):
        create_receiver("x", {"type": "nats", "subject": "s", "nkey_file": "/nonexistent.creds"}, sink)
    with pytest.raises(ReceiverError, match="address and port"):
        create_receiver("x", {"type": "prometheus", "port": "9100"}, sink)


async def test_receive_manager_skips_failures(caplog: pytest.LogCaptureFixture) -> None:
    sink = Collected()
    busy = free_port()
    blocker = web.ServerRunner(web.Server(lambda r: web.Response()))
    await blocker.setup()
    await web.TCPSite(blocker, "127.0.0.1", busy).start()
    port = free_port()
    cfg = {
        "bad_type": {"type": "nope"},
        "no_type": {"port": "1"},
        "port_in_use": {"type": "http", "address": "127.0.0.1", "port": str(busy)},
        "good": {"type": "http", "address": "127.0.0.1", "port": port},
    }
    mgr = ReceiveManager(cfg, sink, factory)
    try:
        with caplog.at_level(logging.ERROR):
            await mgr.start()
        assert list(mgr.receivers) == ["good"]
        errors = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
        assert "SKIP bad_type" in errors and "SKIP no_type" in errors and "SKIP port_in_use" in errors
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"http://127.0.0.1:{port}/", data=b"m value=1\n") as r,
        ):
            assert r.status == 200
        assert sink.names() == ["m"]
        mgr.report()
    finally:
        await mgr.close()
        await blocker.cleanup()


# ============================================================================ http


@pytest.fixture
async def http_receiver() -> AsyncIterator[Callable[..., Any]]:
    started: list[Receiver] = []

    async def make(sink: Collected, **cfg: Any) -> HttpReceiver:
        conf = {"type": "http", "address": "127.0.0.1", "port": free_port(), **cfg}
        r = create_receiver("web", conf, sink, factory)
        await r.start()
        started.append(r)
        assert isinstance(r, HttpReceiver)
        return r

    yield make
    for r in started:
        await r.close()


async def test_http_post_forwards_with_source(http_receiver: Callable[..., Any]) -> None:
    sink = Collected()
    r = await http_receiver(sink, path="/api/write")
    body = (
        "cpu_user,hostname=node01,type=hwthread,type-id=3 value=12.5 1719840000\n"
        'topproc1,hostname=node01,type=node value="slurmstepd" 1719840000\n'
        "num_cpus,hostname=node01,type=node value=64i 1719840000\r\n"
    )
    async with aiohttp.ClientSession() as s:
        async with s.post(r.url, data=body, headers={"Authorization": "Bearer ignored.jwt"}) as resp:
            assert resp.status == 200
            assert await resp.text() == ""
    m = (await sink.wait(3))[0]
    assert m.name == "cpu_user" and m.tags == {"hostname": "node01", "type": "hwthread", "type-id": "3"}
    assert m.fields == {"value": 12.5} and m.time == T_NS and m.meta == {"source": "HttpReceiver(web)"}
    assert sink.msgs[1].fields == {"value": "slurmstepd"}
    assert sink.msgs[2].fields == {"value": 64} and isinstance(sink.msgs[2].fields["value"], int)


@pytest.mark.parametrize(
    ("precision", "stamp"),
    [
        ("s", T_S),
        ("ms", T_S * 1000),
        ("us", T_S * 1_000_000),
        ("ns", T_NS),
        ("auto", T_S),
        ("auto", T_S * 1000),
        ("auto", T_S * 1_000_000),
        ("auto", T_NS),
    ],
)
async def test_http_precision(http_receiver: Callable[..., Any], precision: str, stamp: int) -> None:
    sink = Collected()
    r = await http_receiver(sink, precision=precision)
    async with aiohttp.ClientSession() as s, s.post(r.url, data=f"m,hostname=a value=1 {stamp}\n") as resp:
        assert resp.status == 200
    assert (await sink.wait(1))[0].time == T_NS


async def test_http_missing_timestamp_is_arrival_time(http_receiver: Callable[..., Any]) -> None:
    sink = Collected()
    r = await http_receiver(sink)
    before = time.time_ns()
    async with aiohttp.ClientSession() as s, s.post(r.url, data="m value=1") as resp:
        assert resp.status == 200
    assert before <= (await sink.wait(1))[0].time <= time.time_ns()


async def test_http_method_path_and_keepalive(http_receiver: Callable[..., Any]) -> None:
    sink = Collected()
    exact = await http_receiver(sink, path="api/write", keep_alives_enabled=False)
    anything = await http_receiver(sink)  # path "" = "/" accepts every path
    base = f"http://127.0.0.1:{exact.port}"
    async with aiohttp.ClientSession() as s:
        async with s.get(exact.url) as resp:
            assert resp.status == 405 and resp.headers["Allow"] == "POST"
        async with s.put(exact.url, data="m value=1 1") as resp:
            assert resp.status == 405
        for path in ("/api/write/x", "/api", "/other"):
            async with s.post(base + path, data="m value=1 1") as resp:
                assert resp.status == 404, path
        async with s.post(base + "/api/write", data="m value=1 1") as resp:
            assert resp.status == 200
            assert resp.headers.get("Connection", "").lower() == "close"
        async with s.post(f"http://127.0.0.1:{anything.port}/any/path?x=1", data="n value=1 1") as resp:
            assert resp.status == 200
    await sink.wait(2)
    assert sorted(sink.names()) == ["m", "n"]


async def test_http_basic_auth(http_receiver: Callable[..., Any]) -> None:
    sink = Collected()
    r = await http_receiver(sink, username="cc", password="s3cret:x")
    async with aiohttp.ClientSession() as s:
        async with s.post(r.url, data="m value=1 1") as resp:
            assert resp.status == 401 and "Basic" in resp.headers["WWW-Authenticate"]
        async with s.post(r.url, data="m value=1 1", headers={"Authorization": basic("cc", "wrong")}) as resp:
            assert resp.status == 401
        async with s.post(
            r.url, data="m value=2 1", headers={"Authorization": basic("cc", "s3cret:x")}
        ) as resp:
            assert resp.status == 200
    assert [m.fields["value"] for m in await sink.wait(1)] == [2.0]


async def test_http_bad_line_answers_400_after_forwarding_earlier_lines(
    http_receiver: Callable[..., Any],
) -> None:
    sink = Collected()
    r = await http_receiver(sink)
    body = "good1 value=1 1719840000\ngood2 value=2 1719840000\nbad value=notanumber 1719840000\nlater value=3 1\n"
    async with aiohttp.ClientSession() as s, s.post(r.url, data=body) as resp:
        assert resp.status == 400
        text = await resp.text()
    assert "line 3" in text and "notanumber" in text
    assert sink.names() == ["good1", "good2"] and r.errors == 1


async def test_http_large_body_and_rules(http_receiver: Callable[..., Any]) -> None:
    sink = Collected()
    r = await http_receiver(sink, process_messages={"drop_messages": ["dropme"]})
    n = 40_000
    body = "".join(f"load_{i % 50},hostname=node{i % 100:03d},type=node value={i} {T_S}\n" for i in range(n))
    body += f"dropme value=1 {T_S}\n"
    assert len(body) > 2 << 20  # beyond aiohttp's default client_max_size of 1 MiB
    async with aiohttp.ClientSession() as s, s.post(r.url, data=body.encode()) as resp:
        assert resp.status == 200
    await sink.wait(n)
    assert len(sink.msgs) == n and r.dropped == 1
    assert sink.msgs[-1].fields == {"value": float(n - 1)} and sink.msgs[-1].time == T_NS


async def test_eecpt_detects_a_region_change(http_receiver: Callable[..., Any]) -> None:
    sink = Collected()
    r = await http_receiver(sink, type="eecpt", analysis_interval="150ms", analysis_buffer_size=4)
    assert isinstance(r, EECPTReceiver) and r.source == "EECPTReceiver(web)"
    lines = []
    for step, (a, b) in enumerate([(1, 1), (2, 2), (3, 3), (10, 4)]):
        lines.append(f"region_metric,jobid=j1,rank=0 value={a} {T_S + step}")  # jumps at the end
        lines.append(f"region_metric,jobid=j1 value={a},pid=7i {T_S + step}")
        lines.append(f"region_metric,application=steady,rank=0 value={b} {T_S + step}")  # constant steps
    async with aiohttp.ClientSession() as s, s.post(r.url, data="\n".join(lines)) as resp:
        assert resp.status == 200
    await until(lambda: r.events >= 1, what="region event")
    await asyncio.sleep(0.2)
    events = [m for m in sink.msgs if m.name == "region"]
    assert len(events) == 1 and r.events == 1
    e = events[0]
    assert e.tags == {"type": "node", "stype": "application", "stype-id": "j1"}
    assert e.fields == {"event": "region changed"} and e.meta == {"source": "EECPTReceiver(web)"}
    assert set(r.tasks["j1"]) == {0, 7} and list(r.tasks["j1"][0]) == [10.0]  # reset to the last sample
    assert len(sink.msgs) == 13  # every received line is forwarded too


# ============================================================================ nats


async def _publish(url: str, subject: str, payloads: list[bytes]) -> None:
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        for p in payloads:
            await nc.publish(subject, p)
        await nc.flush()
    finally:
        await nc.close()


def _nats_cfg(srv: NatsServer, **cfg: Any) -> dict[str, Any]:
    return {"type": "nats", "address": "nats://127.0.0.1", "port": srv.port, **cfg}


async def test_nats_subject_wildcards_and_bad_line(nats_server: NatsServer) -> None:
    sink = Collected()
    base = f"cc.test.{uuid.uuid4().hex}"
    r = create_receiver("nats_rack1", _nats_cfg(nats_server, subject=f"{base}.>", database="ignored"), sink)
    assert isinstance(r, NatsReceiver)
    await r.start()
    try:
        async with asyncio.timeout(5):
            await r.wait_ready()
        await _publish(
            nats_server.url,
            f"{base}.rack1",
            [
                f"temp,hostname=n1,type=node value=40 {T_S}\ntemp,hostname=n2,type=node value=41 {T_S}".encode()
            ],
        )
        await _publish(
            nats_server.url,
            f"{base}.rack2.sub",
            [f"ok value=1 {T_S * 1000}\nbroken value= 1\nafter value=2 {T_S}\n".encode()],
        )
        await _publish(nats_server.url, "cc.test.other", [b"elsewhere value=1 1"])
        await sink.wait(3)
        await until(lambda: r.errors == 1, what="decode error")
        assert sink.names() == ["temp", "temp", "ok"]
        assert all(m.time == T_NS for m in sink.msgs)
        assert sink.msgs[0].meta == {"source": "NatsReceiver(nats_rack1)"}
    finally:
        await r.close()


async def test_nats_queue_group_delivers_once(nats_server: NatsServer) -> None:
    subject = f"cc.test.{uuid.uuid4().hex}.lb"
    sinks = [Collected(), Collected(), Collected()]
    rcvs = [
        create_receiver("agg1", _nats_cfg(nats_server, subject=subject, queue_group="aggregators"), sinks[0]),
        create_receiver("agg2", _nats_cfg(nats_server, subject=subject, queue_group="aggregators"), sinks[1]),
        create_receiver("plain", _nats_cfg(nats_server, subject=subject), sinks[2]),
    ]
    for r in rcvs:
        await r.start()
    try:
        async with asyncio.timeout(5):
            for r in rcvs:
                await r.wait_ready()  # type: ignore[attr-defined]
        n = 60
        await _publish(nats_server.url, subject, [f"m,seq={i} value={i} {T_S}".encode() for i in range(n)])
        await sinks[2].wait(n)
        await until(lambda: len(sinks[0].msgs) + len(sinks[1].msgs) >= n, what="queue group messages")
        await asyncio.sleep(0.1)  # a duplicate would show up now
        seqs = [m.tags["seq"] for m in sinks[0].msgs + sinks[1].msgs]
        assert sorted(seqs, key=int) == [str(i) for i in range(n)]  # each exactly once
        assert sinks[0].msgs and sinks[1].msgs  # and the load is shared
        assert len(sinks[2].msgs) == n  # a subscriber outside the group gets everything
    finally:
        for r in rcvs:
            await r.close()


async def test_nats_unreachable_server_does_not_fail_start(caplog: pytest.LogCaptureFixture) -> None:
    sink = Collected()
    r = create_receiver(
        "down", {"type": "nats", "address": "127.0.0.1", "port": free_port(), "subject": "x"}, sink
    )
    assert isinstance(r, NatsReceiver)
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO):
        await r.start()
        await asyncio.sleep(1.5)
        assert not r.connected
        await r.close()
    assert time.monotonic() - t0 < 4
    cannot = [rec for rec in caplog.records if "cannot connect" in rec.getMessage()]
    assert len(cannot) == 1  # one line per state change, not per attempt


async def test_nats_reconnects_after_server_restart(private_nats: NatsServer) -> None:
    sink = Collected()
    subject = "cc.test.reconnect"
    r = create_receiver("rc", _nats_cfg(private_nats, subject=subject, queue_group="g"), sink)
    assert isinstance(r, NatsReceiver)
    await r.start()
    try:
        async with asyncio.timeout(5):
            await r.wait_ready()
        await _publish(private_nats.url, subject, [f"before value=1 {T_S}".encode()])
        await sink.wait(1)
        await asyncio.to_thread(private_nats.restart)
        # publish until the re-subscribed receiver gets one (the SUB may reach the server late)
        deadline = time.monotonic() + 15
        while "after" not in sink.names():
            assert time.monotonic() < deadline, "no message after the restart"
            with_server = r.connected
            if with_server:
                try:
                    await _publish(private_nats.url, subject, [f"after value=2 {T_S}".encode()])
                except Exception:  # noqa: S110 - the server may still be starting
                    pass
            await asyncio.sleep(0.2)
        assert sink.names()[0] == "before"
    finally:
        await r.close()


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


async def test_nats_tls_with_username_password(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not shutil.which("openssl") or not await asyncio.to_thread(os.path.exists, exe):
        missing_service("nats-server and openssl are needed for the TLS test")
    ca, key, crt = tmp_path / "ca.crt", tmp_path / "srv.key", tmp_path / "srv.crt"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    await _run(
        "openssl",
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(tmp_path / "ca.key"),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=cc-test-ca",
    )
    await _run(
        "openssl",
        "req",
        *ec,
        "-keyout",
        str(key),
        "-out",
        str(tmp_path / "srv.csr"),
        "-subj",
        "/CN=127.0.0.1",
    )
    await asyncio.to_thread((tmp_path / "ext.cnf").write_text, "subjectAltName=IP:127.0.0.1\n")
    await _run(
        "openssl",
        "x509",
        "-req",
        "-in",
        str(tmp_path / "srv.csr"),
        "-CA",
        str(ca),
        "-CAkey",
        str(tmp_path / "ca.key"),
        "-CAcreateserial",
        "-out",
        str(crt),
        "-days",
        "2",
        "-extfile",
        str(tmp_path / "ext.cnf"),
    )
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        exe,
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "--tls",
        "--tlscert",
        str(crt),
        "--tlskey",
        str(key),
        "--user",
        "cc",
        "--pass",
        "secret",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    sinks = [Collected(), Collected()]
    cfg = {
        "type": "nats",
        "address": "127.0.0.1",
        "port": port,
        "subject": "secure",
        "ssl": True,
        "ssl_ca": str(ca),
    }
    good = create_receiver("good", {**cfg, "username": "cc", "password": "secret"}, sinks[0])
    bad = create_receiver("bad", {**cfg, "user": "cc", "password": "wrong"}, sinks[1])
    assert isinstance(good, NatsReceiver) and isinstance(bad, NatsReceiver)
    assert good.servers == [f"tls://127.0.0.1:{port}"]
    try:
        assert await asyncio.to_thread(wait_port, "127.0.0.1", port, 10)
        with caplog.at_level(logging.ERROR):
            await good.start()
            await bad.start()
            async with asyncio.timeout(5):
                await good.wait_ready()
            ctx = ssl.create_default_context(cafile=str(ca))
            nc = await nats.connect(f"tls://127.0.0.1:{port}", tls=ctx, user="cc", password="secret")
            await nc.publish("secure", f"m value=1 {T_S}".encode())
            await nc.flush()
            await nc.close()
            await sinks[0].wait(1)
            await asyncio.sleep(0.5)
        assert not bad.connected and sinks[1].msgs == []
        bad_errors = [
            r for r in caplog.records if r.name == "NatsReceiver(bad)" and r.levelno >= logging.ERROR
        ]
        assert len(bad_errors) == 1 and "cannot connect" in bad_errors[0].getMessage()
    finally:
        await good.close()
        await bad.close()
        server.terminate()
        await server.wait()


# ============================================================================ prometheus

EXPOSITION = """\
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.42

# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/nvme0n1p2",fstype="ext4",mountpoint="/"} 1.2345678e+10
node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run/user/1000"} 3.3e+09
weird_labels{a="x,y}z",b="say \\"hi\\"",c="back\\\\slash",d=""} 7 1719840000123
http_request_duration_seconds_bucket{le="+Inf"} 144
not_a_number{x="1"} NaN
broken{x="1" 5
node_cpu_seconds_total{cpu="0",mode="idle"} 1.0423e+06
{"dotted.name", job="x"} 3
"""


def test_parse_exposition() -> None:
    samples = {s.name + str(sorted(s.labels.items())): s for s in parse_exposition(EXPOSITION)}
    assert len(samples) == 8
    w = next(s for s in samples.values() if s.name == "weird_labels")
    assert w.labels == {"a": "x,y}z", "b": 'say "hi"', "c": "back\\slash", "d": ""}
    assert w.value == 7.0 and w.time == 1_719_840_000_123_000_000
    assert parse_sample("node_load1 0.42").value == 0.42  # type: ignore[union-attr]
    assert parse_sample("   ") is None and parse_sample("# EOF") is None and parse_sample('m{a="1" 2') is None
    d = parse_sample('{"dotted.name", job="x"} 3')
    assert d is not None and d.name == "dotted.name" and d.labels == {"job": "x"}
    om = parse_sample("m_total 1 1719840000.5", openmetrics=True)
    assert om is not None and om.time == 1_719_840_000_500_000_000


async def test_prometheus_scrapes_a_real_server(caplog: pytest.LogCaptureFixture) -> None:
    requests: list[str] = []
    fail = {"first": True}

    async def metrics(request: web.Request) -> web.Response:
        requests.append(request.path)
        if fail["first"]:
            fail["first"] = False
            return web.Response(status=503, text="starting")
        return web.Response(text=EXPOSITION, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    sink = Collected()
    cfg = {
        "type": "prometheus",
        "address": "127.0.0.1",
        "port": port,
        "path": "/metrics",
        "interval": "200ms",
        "process_messages": {"drop_messages": ["node_load1"]},
    }
    r = create_receiver("node", cfg, sink, factory)
    assert isinstance(r, PrometheusReceiver) and r.url == f"http://127.0.0.1:{port}/metrics"
    try:
        with caplog.at_level(logging.INFO):
            before = time.time_ns()
            await r.start()
            await until(lambda: r.scrapes >= 2, what="two scrapes")
        await r.close()
        assert requests and set(requests) == {"/metrics"}
        msgs = [m for m in sink.msgs if m.name == "node_filesystem_avail_bytes"]
        assert msgs[0].tags == {"device": "/dev/nvme0n1p2", "fstype": "ext4", "mountpoint": "/"}
        assert msgs[0].fields == {"value": 1.2345678e10} and msgs[0].meta == {
            "source": "PrometheusReceiver(node)"
        }
        assert before <= msgs[0].time <= time.time_ns()
        weird = next(m for m in sink.msgs if m.name == "weird_labels")
        assert weird.tags == {"a": "x,y}z", "b": 'say "hi"', "c": "back\\slash"}
        assert weird.time == 1_719_840_000_123_000_000
        names = set(sink.names())
        assert "node_load1" not in names and "not_a_number" not in names and "broken" not in names
        assert {"http_request_duration_seconds_bucket", "node_cpu_seconds_total", "dotted.name"} <= names
        logs = [rec.getMessage() for rec in caplog.records]
        assert any("failed" in x and "503" in x for x in logs) and any("works again" in x for x in logs)
    finally:
        await r.close()
        await runner.cleanup()


NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")
HAVE_NODE_EXPORTER = NODE_EXPORTER.exists()


@pytest.mark.skipif(not HAVE_NODE_EXPORTER, reason="prometheus-node-exporter not installed (optional)")
async def test_prometheus_scrapes_node_exporter() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(NODE_EXPORTER),
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert await asyncio.to_thread(wait_port, "127.0.0.1", port, 10)
        sink = Collected()
        cfg = {
            "type": "prometheus",
            "address": "127.0.0.1",
            "port": str(port),
            "path": "metrics",
            "interval": "5s",
        }
        r = create_receiver("ne", cfg, sink)
        await r.start()
        try:
            await sink.wait(50, limit=10)
        finally:
            await r.close()
        assert "node_load1" in sink.names()
        assert all(m.meta == {"source": "PrometheusReceiver(ne)"} for m in sink.msgs)
    finally:
        proc.terminate()
        await proc.wait()


# ============================================================================ ipmi


@pytest.fixture
def fake_ipmi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(FIXTURES / "fake-ipmi-sensors.sh", bindir / "ipmi-sensors")
    (bindir / "ipmi-sensors").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_IPMI_OUTPUT", str(FIXTURES / "ipmi-sensors.csv"))
    args = tmp_path / "args.txt"
    monkeypatch.setenv("FAKE_IPMI_ARGS", str(args))
    monkeypatch.delenv("FAKE_IPMI_FAIL", raising=False)
    return args


IPMI_EXPECTED = {
    ("temperature", "cpu1", 45.0, "degC"),
    ("temperature", "cpu2", 47.0, "degC"),
    ("temperature", "ambient", 22.0, "degC"),
    ("fan_speed", "fan_1a", 5880.0, "RPM"),
    ("fan_speed", "fan_1b", 5640.0, "RPM"),
    ("power", "ps1_input", 180.0, "Watts"),
    ("power", "consumption", 336.0, "Watts"),
    ("power", "cpu1_vcore", 72.0, "Watts"),
    ("current", "current_1", 0.8, "Ampere"),
    ("air_flow", "system", 45.0, "CubicFeetPerMinute"),
    ("utilization", "cpu", 23.0, "percent"),
    ("utilization", "sys", 31.0, "percent"),
    ("temperature", "inlet_ambient", 21.0, "degC"),
    ("fan_speed", "fan_sys0", 4200.0, "RPM"),
    ("temperature", "inlet_temp_f", 71.6, "degF"),
}


def test_parse_ipmi_sensor_lines() -> None:
    m = {"node01-bmc": "node01"}
    assert parse_sensor_line("node01-bmc: 4,CPU1 Temp,Temperature,45.00,degrees C,'OK'", m) == (
        "node01",
        "temperature",
        "cpu1",
        "degC",
        45.0,
    )
    assert parse_sensor_line("other-bmc: 4,CPU1 Temp,Temperature,45.00,degrees C,'OK'", m) is None
    assert parse_sensor_line("node01-bmc: 14,Exhaust Temp,Temperature,N/A,degrees C,N/A", m) is None
    assert parse_sensor_line("node01-bmc: 40,Volt_VBAT,Voltage,3.10,Volts,'OK'", m) == (
        "node01",
        "voltage",
        "vbat",
        "Volts",
        3.1,
    )


async def test_ipmi_receiver_with_fake_freeipmi(fake_ipmi: Path) -> None:
    sink = Collected()
    cfg = {
        "type": "ipmi",
        "interval": "30s",
        "username": "admin",
        "password": "pw",
        "endpoint": "ipmi-sensors://%h-bmc",
        "exclude_metrics": ["voltage"],
        "process_messages": {"add_tags_if": [{"if": "true", "key": "cluster", "value": "fritz"}]},
        "client_config": [
            {"host_list": "node[01-02]"},
            {
                "host_list": "gpu1",
                "driver_type": "LAN",
                "fanout": 8,
                "password": "other",
                "cli_options": ["-W", "authcap"],
            },
        ],
    }
    r = create_receiver("bmcs", cfg, sink, factory)
    assert isinstance(r, IPMIReceiver)
    await r.start()
    try:
        await sink.wait(3 * len(IPMI_EXPECTED))
        await until(lambda: r.polls >= 1, what="first poll")
    finally:
        await r.close()
    assert len(sink.msgs) == 3 * len(IPMI_EXPECTED)
    for host in ("node01", "node02", "gpu1"):
        got = {
            (m.name, m.tags["name"], m.fields["value"], m.meta["unit"])
            for m in sink.msgs
            if m.tags["hostname"] == host
        }
        assert got == IPMI_EXPECTED, host
    m = sink.msgs[0]
    assert m.tags["type"] == "node" and m.tags["cluster"] == "fritz"
    assert m.meta["source"] == "IPMIReceiver(bmcs)" and m.meta["group"] == "IPMI"
    calls = (await asyncio.to_thread(fake_ipmi.read_text)).splitlines()
    assert len(calls) == 2
    gpu = next(c for c in calls if "gpu1-bmc" in c)
    nodes = next(c for c in calls if "node01-bmc" in c)
    assert gpu.endswith(
        "--fanout 8 --driver-type LAN --hostname gpu1-bmc --username admin --password other -W authcap"
    )
    assert (
        "--fanout 64 --driver-type LAN_2_0 --hostname node01-bmc,node02-bmc --username admin --password pw"
        in nodes
    )
    assert nodes.startswith("--always-prefix --sdr-cache-recreate --interpret-oem-data")


async def test_ipmi_failure_is_logged_with_masked_password(
    fake_ipmi: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAKE_IPMI_FAIL", "node01-bmc: connection timeout (password topsecret rejected)")
    monkeypatch.setenv("CC_IPMI_USERNAME", "envuser")
    monkeypatch.setenv("CC_IPMI_PASSWORD", "topsecret")
    sink = Collected()
    cfg = {"type": "ipmi", "endpoint": "ipmi-sensors://%h-bmc", "client_config": [{"host_list": "node01"}]}
    r = create_receiver("bmcs", cfg, sink)
    with caplog.at_level(logging.ERROR):
        await r.start()
        await until(lambda: r.polls >= 1, what="first poll")
        await r.close()
    text = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "exited with 1" in text and "connection timeout" in text and "--username envuser" in text
    assert "topsecret" not in text and "<PW>" in text
    assert sink.msgs == []


def test_ipmi_configuration_errors(fake_ipmi: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = Collected()
    base = {"type": "ipmi", "username": "u", "password": "p", "endpoint": "ipmi-sensors://%h-bmc"}
    cases = [
        ({"client_config": []}, "non-empty list"),
        ({"client_config": [{"host_list": "n1"}], "interval_s": "1s"}, "unknown configuration key"),
        ({"client_config": [{"host_list": "n1", "hosts": "x"}]}, "unknown configuration key"),
        ({"client_config": [{"host_list": "n1", "cli_options": ["--username=x"]}]}, "do not set"),
        ({"client_config": [{"host_list": "n1", "cli_options": ["--no-header-output"]}]}, "used internally"),
        ({"client_config": [{"host_list": "n1", "driver_type": "KCS"}]}, "invalid driver type"),
        ({"client_config": [{"host_list": "n[2-1]"}]}, "host list"),
        ({"client_config": [{"host_list": "n1", "endpoint": "%h-bmc"}]}, "invalid endpoint"),
    ]
    for extra, match in cases:
        with pytest.raises(ReceiverError, match=match):
            create_receiver("i", {**base, **extra}, sink)
    with pytest.raises(ReceiverError, match="requires password"):
        create_receiver(
            "i",
            {
                "type": "ipmi",
                "username": "u",
                "endpoint": "ipmi-sensors://%h",
                "client_config": [{"host_list": "n"}],
            },
            sink,
        )
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ReceiverError, match="not found on PATH"):
        create_receiver("i", {**base, "client_config": [{"host_list": "n1"}]}, sink)


# ============================================================================ redfish


class FakeBMCs:
    """An aiohttp server answering for several BMCs under /bmc/<host>/ with recorded Redfish documents."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = json.loads((FIXTURES / "redfish-bmc.json").read_text())
        self.gets: dict[tuple[str, str], int] = {}
        self.tokens: dict[str, str] = {}
        self.deleted: list[str] = []
        self.logins = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        host, path = request.match_info["host"], "/" + request.match_info["tail"]
        basic_only = host.startswith("basic")  # a BMC without SessionService
        if request.method == "POST" and path == "/redfish/v1/SessionService/Sessions" and basic_only:
            return web.json_response({"error": "not supported"}, status=405)
        if basic_only and path != "/redfish/v1/":
            if request.headers.get("Authorization") != basic("root", "calvin"):
                return web.json_response({"error": "unauthorized"}, status=401)
            self.gets[(host, path)] = self.gets.get((host, path), 0) + 1
            doc = self.docs.get(path)
            return web.json_response(doc) if doc is not None else web.json_response({}, status=404)
        if request.method == "POST" and path == "/redfish/v1/SessionService/Sessions":
            body = await request.json()
            if (body.get("UserName"), body.get("Password")) != ("root", "calvin"):
                return web.json_response({"error": "bad credentials"}, status=401)
            self.logins += 1
            token = uuid.uuid4().hex
            sid = f"/redfish/v1/SessionService/Sessions/{self.logins}"
            self.tokens[token] = host
            return web.json_response(
                {"@odata.id": sid, "Id": str(self.logins), "UserName": "root"},
                status=201,
                headers={"X-Auth-Token": token, "Location": sid},
            )
        if path != "/redfish/v1/" and self.tokens.get(request.headers.get("X-Auth-Token", "")) != host:
            return web.json_response({"error": "unauthorized"}, status=401)
        if request.method == "DELETE":
            self.deleted.append(host)
            self.tokens.pop(request.headers["X-Auth-Token"], None)
            return web.Response(status=204)
        self.gets[(host, path)] = self.gets.get((host, path), 0) + 1
        doc = self.docs.get(path)
        if doc is None:
            return web.json_response({"error": {"code": "Base.1.8.ResourceMissingAtURI"}}, status=404)
        return web.json_response(doc)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bmc/{host}/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def bmcs() -> AsyncIterator[FakeBMCs]:
    srv = FakeBMCs()
    await srv.start()
    yield srv
    await srv.stop()


async def test_redfish_receiver_against_recorded_bmc(
    bmcs: FakeBMCs, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Collected()
    cfg = {
        "type": "redfish",
        "interval": "300ms",
        "username": "root",
        "password": "calvin",
        "endpoint": f"http://127.0.0.1:{bmcs.port}/bmc/%h",
        "exclude_metrics": ["min_consumed_watts"],
        "process_messages": {"add_tags_if": [{"if": "true", "key": "cluster", "value": "fritz"}]},
        "client_config": [
            {
                "host_list": "node[01-02]",
                "process_messages": {"add_tags_if": [{"if": "true", "key": "rack", "value": "r1"}]},
            },
            {"host_list": "node03", "endpoint": f"http://127.0.0.1:{free_port()}/down/%h"},
        ],
    }
    r = create_receiver("bmcs", cfg, sink, factory)
    assert isinstance(r, RedfishReceiver)
    with caplog.at_level(logging.ERROR):
        await r.start()
        await until(lambda: r.polls >= 2, limit=8, what="two polls")
        await r.close()
    per_poll = 13
    first = sink.msgs[: 2 * per_poll]  # both hosts finish a poll before the next starts
    assert len(sink.msgs) >= 4 * per_poll
    n1 = [m for m in first if m.tags["hostname"] == "node01"]
    assert len(n1) == per_poll
    assert all(m.tags["cluster"] == "fritz" and m.tags["rack"] == "r1" for m in n1)
    assert all(m.meta["source"] == "RedfishReceiver(bmcs)" for m in n1)
    by = {
        (
            m.name,
            m.tags.get("sensor_id")
            or m.tags.get("temperature_member_id")
            or m.tags.get("fan_member_id")
            or m.tags.get("power_control_member_id")
            or m.tags.get("processor_id"),
        ): m
        for m in n1
    }
    t = by[("temperature", "CPU1_Temp")]
    assert t.fields == {"value": 52.0} and t.meta["group"] == "Temperature" and t.meta["unit"] == "degC"
    assert t.tags["chassis_typ"] == "RackMount" and t.tags["chassis_name"] == "Computer System Chassis"
    assert t.tags["temperature_physical_context"] == "CPU" and t.tags["temperature_name"] == "CPU1 Temp"
    assert by[("power", "PSU1_Input_Power")].meta["unit"] == "watts"
    assert (
        by[("fan_speed", "Fan1")].meta["unit"] == "RPM"
        and by[("fan_speed", "Fan2_Duty")].meta["unit"] == "Percent"
    )
    assert by[("temperature", "1")].tags["temperature_name"] == "Inlet Temp"
    assert "temperature_id" not in by[("temperature", "1")].tags  # empty tags are removed
    assert by[("fan_speed", "0")].fields == {"value": 7200.0}
    cw = by[("consumed_watts", "0")]
    assert (
        cw.fields == {"value": 212.0}
        and cw.meta["interval_in_minutes"] == "1"
        and cw.meta["group"] == "Energy"
    )
    assert ("average_consumed_watts", "0") in by and ("max_consumed_watts", "0") in by
    assert ("min_consumed_watts", "0") not in by
    cp = by[("consumed_power", "CPU1")]
    assert cp.tags["type"] == "socket" and cp.tags["processor_typ"] == "CPU" and cp.fields == {"value": 95.0}
    assert ("consumed_power", "CPU2") not in by  # 65535 = no value
    assert by[("temperature", "CPU2")].fields == {"value": 49.0}
    # sensors are listed once, then only the remembered ones are read; a 404 is not asked again
    for host in ("node01", "node02"):
        assert bmcs.gets[(host, "/redfish/v1/Chassis/1/Sensors")] == 1
        assert bmcs.gets[(host, "/redfish/v1/Chassis/1/Sensors/CPU1_Temp")] >= 2
        assert (host, "/redfish/v1/Chassis/1/Sensors/VBAT") in bmcs.gets
        assert bmcs.gets[(host, "/redfish/v1/Systems/1/Processors/GPU1/ProcessorMetrics")] == 1
        assert bmcs.gets[(host, "/redfish/v1/Chassis/1/Sensors/VBAT")] == 1
    assert bmcs.logins == 2 and sorted(bmcs.deleted) == ["node01", "node02"]  # one session each, closed
    errors = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1 and "node03" in errors[0]


async def test_redfish_basic_auth_and_session_renewal(
    bmcs: FakeBMCs, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Collected()
    cfg = {
        "type": "redfish",
        "interval": "200ms",
        "username": "root",
        "password": "calvin",
        "endpoint": f"http://127.0.0.1:{bmcs.port}/bmc/%h",
        "disable_sensors": True,
        "client_config": [
            {"host_list": "basic1"},
            {"host_list": "node01", "disable_processor_metrics": True, "disable_thermal_metrics": True},
        ],
    }
    r = create_receiver("rf", cfg, sink)
    with caplog.at_level(logging.WARNING):
        await r.start()
        await until(lambda: r.polls >= 1, what="first poll")
        bmcs.tokens.clear()  # the BMC forgets the session: the receiver must log in again
        await until(lambda: r.polls >= 3, what="more polls")
        await r.close()
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert bmcs.logins == 2  # node01 twice, basic1 never
    assert not any(path.endswith("/Sensors") for (_, path) in bmcs.gets)
    basic1 = {m.name for m in sink.msgs if m.tags["hostname"] == "basic1"}
    node01 = {m.name for m in sink.msgs if m.tags["hostname"] == "node01"}
    assert {"temperature", "fan_speed", "consumed_watts", "consumed_power"} <= basic1
    assert node01 == {"consumed_watts", "average_consumed_watts", "min_consumed_watts", "max_consumed_watts"}


async def test_redfish_wrong_password_and_config_errors(
    bmcs: FakeBMCs, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Collected()
    ep = f"http://127.0.0.1:{bmcs.port}/bmc/%h"
    cfg = {
        "type": "redfish",
        "username": "root",
        "password": "nope",
        "endpoint": ep,
        "client_config": [{"host_list": "n1"}],
    }
    r = create_receiver("rf", cfg, sink)
    with caplog.at_level(logging.ERROR):
        await r.start()
        await until(lambda: r.polls >= 1, what="poll")
        await r.close()
    assert sink.msgs == [] and any(
        "check username and password" in rec.getMessage() for rec in caplog.records
    )
    base = {"type": "redfish", "username": "u", "password": "p", "endpoint": ep}
    for extra, match in [
        (
            {"client_config": [{"host_list": "n[1-2]"}, {"host_list": "n2"}]},
            "duplicate client config for host n2",
        ),
        ({"client_config": []}, "at least one client config"),
        ({"client_config": [{"host_list": "n1"}], "disable_gpu": True}, "unknown configuration key"),
        ({"client_config": [{"host_list": "n1", "fanout": 3}]}, "unknown configuration key"),
        ({"client_config": [{"host_list": "n1"}], "interval": "soon"}, "interval"),
    ]:
        with pytest.raises(ReceiverError, match=match):
            create_receiver("rf", {**base, **extra}, sink)
    with pytest.raises(ReceiverError, match="requires endpoint"):
        create_receiver(
            "rf",
            {"type": "redfish", "username": "u", "password": "p", "client_config": [{"host_list": "n1"}]},
            sink,
        )
