"""Sinks of the collector (spec collector §7) against real peers on loopback.

Peers: the project's metric store daemon (http sink → `/api/write`, read back with `/api/query`),
nats-server (the machine's one or private ones for auth, TLS, `max_payload` and restarts), an
aiohttp server standing in for HTTP/InfluxDB endpoints (status sequences, outages), InfluxDB 1.6
(`influxd`, when installed), a real scrape of the prometheus sink, a UDP socket decoding the
ganglia datagrams, and stdout/files.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import gzip
import ipaddress
import json
import logging
import os
import shutil
import ssl
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats
import orjson
import pytest
from aiohttp import web

from cccollector.sinks import REGISTRY, SinkError, SinkManager, create_sink, load_all, set_processor_factory
from cccollector.sinks._encode import LineError, line_a, line_b
from cccollector.sinks.ganglia import GangliaSink
from cccollector.sinks.http import HttpSink
from cccollector.sinks.nats import server_urls
from cccommon import jwt as ccjwt
from cccommon.message import CCMessage, UInt, new_message
from tests.conftest import free_port, missing_service, wait_port
from tests.metricstore.conftest import Daemon, current_config

NOW_S = int(time.time()) // 10 * 10
T0 = NOW_S - 600  # seconds
T0_NS = T0 * 10**9


def msg(
    name: str = "cpu_load",
    value: Any = 1.5,
    t: int = T0_NS,
    meta: dict[str, str] | None = None,
    **tags: str,
) -> CCMessage:
    tags.setdefault("hostname", "node01")
    tags.setdefault("type", "node")
    return new_message(name, tags, meta or {}, {"value": value}, t)


async def until(cond: Callable[[], Any], limit: float = 8.0, what: str = "condition") -> None:
    """Poll `cond` until true (no fixed sleeps)."""
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def fast(sink: Any) -> Any:
    """Short back-off for tests."""
    sink.retry_initial = 0.05
    sink.retry_max = 0.2
    sink.attempt_delay = 0.02
    return sink


# ----------------------------------------------------------------------------- a fake HTTP peer


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def lines(self) -> list[str]:
        return self.body.decode().splitlines()


class FakeHTTP:
    """An aiohttp server recording requests; answers from `statuses`, then `default`."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests: list[Req] = []
        self.statuses: deque[int] = deque()
        self.default = 200
        self.version = "v2.7.1"
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def writes(self) -> list[Req]:
        return [r for r in self.requests if r.path != "/ping"]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip" and body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)  # (aiohttp usually inflates request bodies itself)
        req = Req(request.method, request.path, dict(request.query), dict(request.headers), body)
        if request.path == "/ping":
            self.requests.append(req)
            return web.Response(status=204, headers={"X-Influxdb-Version": self.version})
        status = self.statuses.popleft() if self.statuses else self.default
        self.requests.append(req)
        return web.Response(status=status, text="" if status < 300 else f"error {status}")

    async def start(self) -> FakeHTTP:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def fake() -> AsyncIterator[FakeHTTP]:
    srv = await FakeHTTP().start()
    yield srv
    await srv.stop()


@pytest.fixture
async def sinks() -> AsyncIterator[list[Any]]:
    """Sinks to close after the test."""
    made: list[Any] = []
    yield made
    for s in made:
        await s.close()


async def started(made: list[Any], name: str, config: dict[str, Any], **attrs: Any) -> Any:
    s = create_sink(name, config)
    for k, v in attrs.items():
        setattr(s, k, v)
    made.append(s)
    await s.start()
    return s


# ----------------------------------------------------------------------------- line protocol


def test_writer_b_spec_examples_and_precision():
    t = 1719840000 * 10**9 + 123_456_789
    assert line_b(msg("cpu_user", 12.5, t, type="hwthread", **{"type-id": "3", "unit": "Percent"})) == (
        "cpu_user,hostname=node01,type=hwthread,type-id=3,unit=Percent value=12.5 1719840000"
    )
    assert line_b(msg("num_cpus", 64, t)) == "num_cpus,hostname=node01,type=node value=64i 1719840000"
    assert line_b(msg("disk_total", UInt(931), t, device="/dev/nvme0n1p2")).endswith("value=931u 1719840000")
    assert line_b(msg("mem_used", 12345678.0, t, unit="kB")) == (
        "mem_used,hostname=node01,type=node,unit=kB value=1.2345678e+07 1719840000"
    )
    assert line_b(msg("topproc1", 'a "b"\n', t)).endswith('value="a \\"b\\"\\n" 1719840000')
    assert line_b(msg(t=t), 1_000_000).endswith(" 1719840000123")
    assert line_b(msg(t=t), 1_000).endswith(" 1719840000123456")
    assert line_b(msg(t=t), 1).endswith(" 1719840000123456789")


@pytest.mark.parametrize(
    "bad",
    [
        CCMessage("m", {"hostname": ""}, {}, {"value": 1.0}, T0_NS),
        CCMessage("m", {"hostname": "a\nb"}, {}, {"value": 1.0}, T0_NS),
        CCMessage("m\\", {"hostname": "a"}, {}, {"value": 1.0}, T0_NS),
        CCMessage("m", {"hostname": "a"}, {}, {"value": float("nan")}, T0_NS),
        CCMessage("m", {"hostname": "a"}, {}, {"value": "\udcff"}, T0_NS),
        CCMessage("m", {"hostname": "a"}, {}, {}, T0_NS),
    ],
)
def test_writer_b_rejects_invalid_lines(bad):
    with pytest.raises(LineError):
        line_b(bad)


def test_writer_a_quirks():
    m = CCMessage(
        "cpu load", {"hostname": "n1", "z": "", "a": "x\ny"}, {}, {"value": 2.0, "b": 'q"\\\n', "a": 3}, T0_NS
    )
    assert line_a(m) == f'cpu\\ load,a=x\\\\ny,hostname=n1,z= a=3i,b="q\\"\\\\\n",value=2 {T0_NS}'
    assert line_a(CCMessage("n", {}, {}, {"value": UInt(1)}, T0_NS), 1_000_000_000) == f"n, value=1u {T0}"


# ----------------------------------------------------------------------------- options, registry, manager


def test_registry_has_every_sink_type():
    assert set(load_all()) == {
        "stdout",
        "http",
        "nats",
        "influxdb",
        "influxasync",
        "prometheus",
        "ganglia",
        "libganglia",
        "questdb",
    }
    assert REGISTRY["http"] is HttpSink


def test_strict_options_name_sink_and_key():
    with pytest.raises(SinkError, match=r"StdoutSink\(mine\).*'bogus'"):
        create_sink("mine", {"type": "stdout", "bogus": 1})
    with pytest.raises(SinkError, match="unknown sink type 'file'"):
        create_sink("f", {"type": "file"})
    with pytest.raises(SinkError, match="missing 'type'"):
        create_sink("f", {"output_file": "x"})
    with pytest.raises(SinkError, match="'meta_as_tags' must be a list of strings"):
        create_sink("f", {"type": "stdout", "meta_as_tags": "unit"})
    with pytest.raises(SinkError, match="'port' must be a port number"):
        create_sink("p", {"type": "prometheus", "port": "http"})


def test_keys_match_case_insensitively_and_ports_may_be_numbers(caplog):
    s = create_sink(
        "h", {"Type": "http", "URL": "http://x:1/api/write", "Flush_Delay": "250ms", "MAX_RETRIES": 0}
    )
    assert (s.url, s.flush_delay, s.attempts) == ("http://x:1/api/write", 0.25, 1)
    assert create_sink("p", {"type": "prometheus", "port": 9091}).port == 9091
    with caplog.at_level(logging.WARNING):
        s = create_sink("h2", {"type": "http", "url": "http://x/", "timeout": "5 seconds"})
    assert s.timeout == 5.0 and "keeping the default" in caplog.text


def test_http_url_forms():
    def url(**cfg: Any) -> str:
        return create_sink("h", {"type": "http", **cfg}).url

    assert (
        url(host="agg.example.org", port="8080", path="/api/write") == "http://agg.example.org:8080/api/write"
    )
    assert url(host="a", port=8082, path="api/write") == "http://a:8082/api/write"
    assert url(host="a", port="8086", database="mydb", ssl=True) == "https://a:8086/mydb"
    assert url(host="a", port="1") == "http://a:1/"
    for bad, why in (
        ({"url": "http://a/", "host": "a"}, "not both"),
        ({}, "`url` config option is required"),
        ({"url": "http://a/", "username": "u"}, "both 'username' and 'password'"),
        ({"url": "ccms:8082/api/write"}, "not an http:// or https:// URL"),
    ):
        with pytest.raises(SinkError, match=why):
            create_sink("h", {"type": "http", **bad})


def test_manager_object_and_list_forms(tmp_path, caplog):
    good = {"type": "stdout", "output_file": str(tmp_path / "a.txt")}
    with caplog.at_level(logging.ERROR):
        mgr = SinkManager(
            {"good": good, "bad": {"type": "stdout", "nope": 1}, "odd": {"type": "libgangliaX"}}
        )
    assert list(mgr.sinks) == ["good"]
    assert "SKIP bad" in caplog.text and "'nope'" in caplog.text and "SKIP odd" in caplog.text
    mgr = SinkManager([dict(good, name="first"), good])
    assert list(mgr.sinks) == ["first", "stdout1"]
    assert list(SinkManager(json.dumps({"x": good}).encode()).sinks) == ["x"]
    with pytest.raises(SinkError, match="found no usable sinks"):
        SinkManager({"bad": {"type": "nope"}})
    with pytest.raises(SinkError, match="must be a JSON object"):
        SinkManager(42)


async def test_manager_fans_out_from_its_queue_and_drains_on_close(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    mgr = SinkManager(
        {
            "a": {"type": "stdout", "output_file": str(a)},
            "b": {"type": "stdout", "output_file": str(b), "meta_as_tags": ["unit"]},
            "dead": {
                "type": "influxdb",
                "host": "127.0.0.1",
                "port": str(free_port()),
                "database": "d",
                "organization": "o",
                "password": "t",
            },
        }
    )
    q: asyncio.Queue[CCMessage] = asyncio.Queue(200)
    mgr.add_input(q)
    await mgr.start()
    assert sorted(mgr.sinks) == ["a", "b"]  # the unreachable InfluxDB is skipped at start
    for i in range(120):
        await q.put(msg(value=i, meta={"unit": "load"}, t=T0_NS + i))
    await mgr.close()
    la, lb = a.read_text().splitlines(), b.read_text().splitlines()
    assert len(la) == len(lb) == 120
    assert la[5] == f"cpu_load,hostname=node01,type=node value=5i {T0_NS + 5}"
    assert lb[5] == f"cpu_load,hostname=node01,type=node,unit=load value=5i {T0_NS + 5}"


async def test_process_messages_needs_and_uses_the_rules_engine(tmp_path, sinks):
    cfg = {"type": "stdout", "output_file": str(tmp_path / "o"), "process_messages": {"drop_messages": ["x"]}}
    with pytest.raises(SinkError, match="needs the rules engine"):
        create_sink("s", cfg)

    class Drop:
        def __init__(self, config: Any) -> None:
            self.names = set(config["drop_messages"])

        def process(self, m: CCMessage) -> CCMessage | None:
            if m.name in self.names:
                return None
            m.name = m.name.upper()
            return m

    s = create_sink("s", dict(cfg, meta_as_tags=["unit"]), processor_factory=Drop)
    sinks.append(s)
    await s.start()
    original = msg("y", 1.0, meta={"unit": "W"})
    s.write(msg("x", 1.0))
    s.write(original)
    await s.flush()
    assert (tmp_path / "o").read_text() == f"Y,hostname=node01,type=node,unit=W value=1 {T0_NS}\n"
    assert original.name == "y" and original.meta == {"unit": "W"}  # the caller's message is untouched
    set_processor_factory(Drop)  # what the collector's wiring does once
    try:
        assert isinstance(create_sink("t", cfg).processor, Drop)
    finally:
        set_processor_factory(None)


async def test_manager_reports_sent_counts_per_sink(tmp_path, caplog):
    mgr = SinkManager({"file": {"type": "stdout", "output_file": str(tmp_path / "o")}})
    await mgr.start()
    for i in range(3):
        mgr.write(msg(value=i))
    await mgr.flush()
    with caplog.at_level(logging.INFO, logger="SinkManager"):
        mgr.report()
        mgr.report()  # nothing new: no second line
    await mgr.close()
    assert caplog.text.count("StdoutSink(file): sent 3, received 3, dropped 0 messages") == 1


# ----------------------------------------------------------------------------- stdout


async def test_stdout_writes_writer_a_lines(capsys, sinks):
    s = await started(sinks, "out", {"type": "stdout"})
    s.write(msg("cpu_user", 12.5, type="hwthread", **{"type-id": "3"}))
    s.write(msg("note", "a b"))
    await s.flush()
    assert capsys.readouterr().out == (
        f"cpu_user,hostname=node01,type=hwthread,type-id=3 value=12.5 {T0_NS}\n"
        f'note,hostname=node01,type=node value="a b" {T0_NS}\n'
    )
    e = await started(sinks, "err", {"type": "stdout", "output_file": "STDERR"})
    e.write(msg())
    await e.flush()
    assert capsys.readouterr().err == f"cpu_load,hostname=node01,type=node value=1.5 {T0_NS}\n"


async def test_stdout_file_is_appended_and_private(tmp_path, sinks):
    path = tmp_path / "metrics.lp"
    path.write_text("old line\n")
    os.chmod(path, 0o644)
    s = await started(sinks, "f", {"type": "stdout", "output_file": str(path)})
    s.write(msg())
    await s.close()
    assert path.read_text() == f"old line\ncpu_load,hostname=node01,type=node value=1.5 {T0_NS}\n"
    fresh = tmp_path / "new.lp"
    s = await started(sinks, "g", {"type": "stdout", "output_file": str(fresh)})
    await s.close()
    assert fresh.stat().st_mode & 0o777 == 0o600
    with pytest.raises(SinkError, match="cannot open output file"):
        await create_sink("h", {"type": "stdout", "output_file": str(tmp_path / "no" / "dir")}).start()


# ----------------------------------------------------------------------------- http → metric store


@pytest.fixture
def store(tmp_path) -> Iterator[tuple[Daemon, str]]:
    pub, priv = ccjwt.generate_keypair()
    port = free_port()
    cfg = current_config(tmp_path, port, main={"jwt-public-key": pub})
    d = Daemon(tmp_path, cfg, port)
    try:
        d.start()
    except RuntimeError as e:
        missing_service(f"cc-metric-store daemon: {e}")
    yield d, ccjwt.sign({"user": "collector", "roles": ["ROLE_API"]}, priv)
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait(10)


async def test_http_sink_feeds_the_metric_store(store, sinks, caplog):
    daemon, token = store
    # the how-to form (host/port/path + jwt), cluster from the URL as cc-metric-store allows
    s = await started(
        sinks,
        "metricstore",
        {
            "type": "http",
            "host": "127.0.0.1",
            "port": str(daemon.port),
            "path": "/api/write?cluster=testcl",
            "jwt": token,
            "timeout": "5s",
            "idle_connection_timeout": "5s",
            "flush_delay": "100ms",
        },
    )
    for k in range(6):
        s.write(msg("cpu_load", k + 0.5, (T0 + 10 * k) * 10**9 + 999, hostname="h1"))
        s.write(msg("mem_used", float(k), (T0 + 10 * k) * 10**9, hostname="h1"))
    await until(lambda: s.sent == 12, what="delivery to the metric store")
    body = {"cluster": "testcl", "from": T0, "to": T0 + 60, "queries": [{"metric": "cpu_load", "host": "h1"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{daemon.url}/api/query", data=orjson.dumps(body), headers={"Authorization": f"Bearer {token}"}
        ) as r,
    ):
        assert r.status == 200
        out = await r.json()
    assert out["results"][0][0]["data"] == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]

    # a refused token (the how-to's truncated example) is logged once and the data stays buffered
    bad = fast(
        await started(
            sinks,
            "badtoken",
            {
                "type": "http",
                "url": f"{daemon.url}/api/write?cluster=testcl",
                "jwt": token[:-8],
                "flush_delay": "0s",
            },
        )
    )
    with caplog.at_level(logging.INFO, logger="HttpSink(badtoken)"):
        for k in range(5):
            bad.write(msg(t=(T0 + 10 * k) * 10**9, hostname="h2"))
        await until(lambda: bad._failed_rounds >= 3, what="retries")
    assert bad.stats()["buffered"] == 5 and bad.dropped == 0
    assert caplog.text.count("cannot deliver") == 1 and "HTTP 401" in caplog.text


# ----------------------------------------------------------------------------- http → fake server


async def test_http_batches_within_flush_delay_with_auth_headers(fake, sinks):
    s = await started(
        sinks,
        "h",
        {
            "type": "http",
            "url": f"{fake.url}/api/write?cluster=fritz",
            "username": "u",
            "password": "p",
            "flush_delay": "300ms",
            "precision": "ms",
        },
    )
    t0 = time.monotonic()
    for i in range(3):
        s.write(msg(value=i, t=T0_NS + 123_456_789))
    await until(lambda: fake.writes(), what="the batch")
    assert time.monotonic() - t0 >= 0.25
    (r,) = fake.writes()
    assert (r.method, r.path, r.query) == ("POST", "/api/write", {"cluster": "fritz"})
    assert r.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.lines == [f"cpu_load,hostname=node01,type=node value={i}i {T0 * 1000 + 123}" for i in range(3)]
    # an invalid line is dropped alone
    s.write(msg(hostname=""))
    s.write(msg(value=7))
    await s.flush()
    assert fake.writes()[-1].lines == [f"cpu_load,hostname=node01,type=node value=7i {T0 * 1000}"]
    assert s.dropped == 1


async def test_http_batch_size_and_zero_flush_delay(fake, sinks):
    s = await started(
        sinks,
        "h",
        {"type": "http", "url": fake.url + "/w", "flush_delay": "1h", "batch_size": 4, "jwt": "tok"},
    )
    for i in range(9):
        s.write(msg(value=i))
    await until(lambda: len(fake.writes()) == 2, what="two full batches")
    assert [len(r.lines) for r in fake.writes()] == [4, 4]
    assert fake.writes()[0].headers["Authorization"] == "Bearer tok"
    await s.close()  # the final flush sends the rest
    assert [len(r.lines) for r in fake.writes()] == [4, 4, 1]

    z = await started(sinks, "z", {"type": "http", "url": fake.url + "/z", "flush_delay": "0s"})
    z.write(msg(value=1))
    await until(lambda: any(r.path == "/z" for r in fake.writes()), what="immediate send")


async def test_http_write_many_cuts_and_drops_as_write_does(fake, sinks):
    """The batch path (one collector read at once) gives the same requests as single writes."""
    s = await started(
        sinks, "h", {"type": "http", "url": fake.url + "/w", "flush_delay": "1h", "batch_size": 4}
    )
    batch = [msg(value=i) for i in range(9)]
    batch.insert(5, msg(hostname=""))  # refused by writer B: dropped alone
    s.write_many(batch)
    await until(lambda: len(fake.writes()) == 2, what="two full batches")
    await s.close()
    assert [len(r.lines) for r in fake.writes()] == [4, 4, 1]
    assert [ln for r in fake.writes() for ln in r.lines] == [line_b(m) for m in batch if m.tags["hostname"]]
    assert (s.received, s.sent, s.dropped) == (10, 9, 1)

    t = await started(sinks, "t", {"type": "http", "url": fake.url + "/t", "flush_delay": "200ms"})
    t.write_many([msg(value=i) for i in range(3)])
    t.write_many([msg(value=i) for i in range(3, 5)])
    await until(lambda: any(r.path == "/t" for r in fake.writes()), what="the timed batch")
    assert [r.lines for r in fake.writes() if r.path == "/t"] == [[line_b(msg(value=i)) for i in range(5)]]


async def test_write_many_honours_sink_rules_and_meta_as_tags(fake, sinks):
    from cccollector.cli import _processor_factory  # the rules engine, as the collector wires it

    cfg = {
        "type": "http",
        "url": fake.url + "/w",
        "flush_delay": "0s",
        "meta_as_tags": ["unit"],
        "process_messages": {"drop_messages": ["cpu_idle"]},
    }
    s = create_sink("h", cfg, processor_factory=_processor_factory("sink", {}))
    sinks.append(s)
    await s.start()
    a = msg("cpu_user", 1.5)
    a.meta["unit"] = "Percent"
    b = msg("cpu_idle", 2.0)
    s.write_many([a, b])
    await until(lambda: s.sent == 1, what="one line")
    assert fake.writes()[0].lines == [f"cpu_user,hostname=node01,type=node,unit=Percent value=1.5 {T0}"]
    assert a.meta == {"unit": "Percent"} and "unit" not in a.tags  # shared message left alone


async def test_http_retries_after_500_and_drops_on_400(fake, sinks, caplog):
    fake.statuses.extend([500, 503])
    s = await started(sinks, "h", {"type": "http", "url": fake.url + "/api/write", "flush_delay": "0s"})
    fast(s)
    s.write(msg(value=1))
    await until(lambda: s.sent == 1, what="delivery after two 5xx")
    assert [len(r.lines) for r in fake.writes()] == [1, 1, 1]
    assert s._failed_rounds == 0 and not s._down  # the quick retries were enough

    fake.statuses.append(400)
    with caplog.at_level(logging.ERROR):
        s.write(msg(value=2))
        await until(lambda: s.dropped == 1, what="the refused batch")
    assert len(fake.writes()) == 4 and "refused 1 lines" in caplog.text
    s.write(msg(value=3))
    await until(lambda: s.sent == 2, what="next batch")


async def test_http_buffers_while_the_peer_is_down(sinks, caplog):
    down = FakeHTTP()  # port reserved, nothing listening yet
    s = fast(
        await started(
            sinks,
            "h",
            {"type": "http", "url": down.url + "/api/write", "flush_delay": "0s", "max_retries": 1},
        )
    )
    with caplog.at_level(logging.INFO, logger="HttpSink(h)"):
        for i in range(5):
            s.write(msg(value=i))
        await until(lambda: s._failed_rounds >= 2, what="failed rounds")
        assert s.stats()["buffered"] == 5 and s.sent == 0
        await down.start()
        try:
            await until(lambda: s.sent == 5, what="delivery after the peer came back")
            s.write(msg(value=5))
            await until(lambda: s.sent == 6, what="normal operation")
        finally:
            await down.stop()
    lines = [ln for r in down.writes() for ln in r.lines]
    assert lines == [f"cpu_load,hostname=node01,type=node value={i}i {T0}" for i in range(6)]
    assert caplog.text.count("cannot deliver") == 1 and caplog.text.count("reachable again") == 1


async def test_http_buffer_is_bounded_oldest_dropped(sinks, caplog):
    down = FakeHTTP()
    s = fast(await started(sinks, "h", {"type": "http", "url": down.url + "/", "flush_delay": "0s"}))
    s.max_buffered_lines = 3
    with caplog.at_level(logging.ERROR):
        for i in range(8):
            s.write(msg(value=i))
            await asyncio.sleep(0)
    assert s.stats()["buffered"] <= 4 and s.dropped >= 4
    assert "buffer for" in caplog.text
    await down.start()
    try:
        await until(lambda: s.stats()["buffered"] == 0, what="drain")
    finally:
        await down.stop()
    got = [ln for r in down.writes() for ln in r.lines]
    assert got[-1].endswith("value=7i " + str(T0)) and len(got) + s.dropped == 8


async def test_http_close_gives_up_on_a_dead_peer(sinks, caplog):
    s = fast(
        await started(
            sinks, "h", {"type": "http", "url": f"http://127.0.0.1:{free_port()}/", "flush_delay": "1h"}
        )
    )
    s.close_timeout = 2.0
    s.write(msg())
    t0 = time.monotonic()
    with caplog.at_level(logging.ERROR):
        await s.close()
    assert time.monotonic() - t0 < 3 and "1 undelivered lines" in caplog.text and s.dropped == 1
    s.write(msg())  # after close: counted, never raises
    assert s.dropped == 2


# ----------------------------------------------------------------------------- nats


class NatsProc:
    def __init__(self, tmp: Path, *args: str, conf: str | None = None, port: int | None = None) -> None:
        exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not os.path.exists(exe):
            missing_service("nats-server not installed")
        self.port = port or free_port()
        argv = [exe, "-a", "127.0.0.1", "-p", str(self.port), *args]
        if conf is not None:
            cf = tmp / f"nats-{self.port}.conf"
            cf.write_text(conf)
            argv += ["-c", str(cf)]
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NatsProc:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port("127.0.0.1", self.port, 10):
            self.stop()
            missing_service("nats-server did not start")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def nats_procs() -> Iterator[list[NatsProc]]:
    procs: list[NatsProc] = []
    yield procs
    for p in procs:
        p.stop()


class Subscriber:
    def __init__(self) -> None:
        self.nc: Any = None
        self.payloads: list[bytes] = []

    async def connect(self, url: str, subject: str, **kw: Any) -> Subscriber:
        self.nc = await nats.connect(url, reconnect_time_wait=0.05, max_reconnect_attempts=-1, **kw)

        async def cb(m: Any) -> None:
            self.payloads.append(m.data)

        await self.nc.subscribe(subject, cb=cb)
        await self.nc.flush()
        return self

    def lines(self) -> list[str]:
        return [ln for p in self.payloads for ln in p.decode().splitlines()]

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()


def test_nats_server_urls():
    assert server_urls("nats1,nats2, nats3", "4222") == [
        "nats://nats1:4222",
        "nats://nats2:4222",
        "nats://nats3:4222",
    ]
    assert server_urls("a:4223,tls://b:1,::1,[::2]", "9", "tls") == [
        "tls://a:4223",
        "tls://b:1",
        "tls://[::1]:9",
        "tls://[::2]:9",
    ]
    with pytest.raises(SinkError, match="host, port, subject"):
        create_sink("n", {"type": "nats", "host": "x"})
    with pytest.raises(SinkError, match="both 'ssl_cert' and 'ssl_key'"):
        create_sink("n", {"type": "nats", "host": "x", "subject": "s", "ssl_cert": "/c.pem"})
    with pytest.raises(SinkError, match="does not exist"):
        create_sink("n", {"type": "nats", "host": "x", "subject": "s", "nkey_file": "/nonexistent.creds"})


async def test_nats_publishes_batches_to_the_subject(nats_server, sinks):
    subject = f"test.sinks.{os.getpid()}.{time.monotonic_ns()}"
    sub = await Subscriber().connect(nats_server.url, subject)
    try:
        port = nats_server.url.rsplit(":", 1)[1]
        # the README/tutorial spelling `database` for the subject
        s = await started(
            sinks,
            "n",
            {"type": "nats", "host": "127.0.0.1", "port": port, "database": subject, "flush_delay": "100ms"},
        )
        for i in range(5):
            s.write(msg(value=i, t=T0_NS + 999))
        await until(lambda: len(sub.lines()) == 5, what="the batch on NATS")
        assert len(sub.payloads) == 1
        assert sub.lines() == [f"cpu_load,hostname=node01,type=node value={i}i {T0}" for i in range(5)]
        s.write(msg(value=9))
        await s.close()  # close publishes the pending batch (upstream loses it)
        await until(lambda: len(sub.lines()) == 6, what="the final batch")
    finally:
        await sub.close()


async def test_nats_splits_batches_below_max_payload(tmp_path, nats_procs, sinks):
    srv = NatsProc(tmp_path, conf="max_payload: 1024\n").start()
    nats_procs.append(srv)
    url = f"nats://127.0.0.1:{srv.port}"
    sub = await Subscriber().connect(url, "big")
    try:
        s = await started(
            sinks, "n", {"type": "nats", "host": "127.0.0.1", "port": srv.port, "subject": "big"}
        )
        for i in range(100):
            s.write(msg(value=i, hostname=f"node{i:04d}"))
        s.write(msg("x" * 2000))  # longer than max_payload: dropped alone
        await s.flush()
        await until(lambda: len(sub.lines()) == 100, what="all lines")
        assert len(sub.payloads) > 5 and max(len(p) for p in sub.payloads) <= 1024
        assert sub.lines() == [line_b(msg(value=i, hostname=f"node{i:04d}")) for i in range(100)]
        assert s.dropped == 1 and s.sent == 100
    finally:
        await sub.close()


async def test_nats_user_password_and_host_list(tmp_path, nats_procs, sinks):
    srv = NatsProc(tmp_path, "--user", "collector", "--pass", "secure_password").start()
    nats_procs.append(srv)
    url = f"nats://collector:secure_password@127.0.0.1:{srv.port}"
    sub = await Subscriber().connect(url, "metrics.rack1")
    try:
        s = await started(
            sinks,
            "n",
            {
                "type": "nats",
                "host": "127.0.0.2,127.0.0.1",  # nothing listens on the first one
                "port": str(srv.port),
                "subject": "metrics.rack1",
                "username": "collector",
                "password": "secure_password",
                "flush_delay": "0s",
            },
        )
        s.write(msg())
        await until(lambda: len(sub.lines()) == 1, what="a publish with user/password")
    finally:
        await sub.close()


async def test_nats_unreachable_at_start_then_reconnects(tmp_path, nats_procs, sinks, caplog):
    srv = NatsProc(tmp_path)
    nats_procs.append(srv)
    cfg = {
        "type": "nats",
        "host": "127.0.0.1",
        "port": str(srv.port),
        "subject": "later",
        "flush_delay": "0s",
    }
    s = create_sink("n", cfg)
    s.reconnect_time_wait = 0.5
    sinks.append(s)
    caplog.set_level(logging.INFO, logger="NatsSink(n)")
    await s.start()  # does not fail although no server is there
    for i in range(3):
        s.write(msg(value=i))
    await until(lambda: "cannot connect" in caplog.text, what="the connection error")
    assert s.stats()["buffered"] == 3
    srv.start()
    sub = await Subscriber().connect(f"nats://127.0.0.1:{srv.port}", "later")
    try:
        await until(lambda: len(sub.lines()) == 3, limit=10, what="buffered lines after the server came up")
        srv.stop()
        await until(lambda: "disconnected" in caplog.text, what="the disconnect")
        s.write(msg(value=3))
        srv.start()
        await until(lambda: len(sub.lines()) == 4, limit=10, what="a line written while the server was down")
    finally:
        await sub.close()
    assert sub.lines()[-1] == f"cpu_load,hostname=node01,type=node value=3i {T0}"
    assert caplog.text.count("cannot connect") == 1


def _make_certs(d: Path) -> dict[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def save(stem: str, key: Any, cert: x509.Certificate) -> tuple[str, str]:
        kp, cp = d / f"{stem}-key.pem", d / f"{stem}-cert.pem"
        kp.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(kp), str(cp)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test ca"))
        .issuer_name(name("test ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out = {"ca": save("ca", ca_key, ca)[1]}
    for stem, eku in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(stem))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        out[f"{stem}_key"], out[f"{stem}_cert"] = save(stem, key, cert)
    return out


async def test_nats_tls_with_client_certificate(tmp_path, nats_procs, sinks):
    certs = _make_certs(tmp_path)
    srv = NatsProc(
        tmp_path,
        "--tlsverify",
        "--tlscert",
        certs["server_cert"],
        "--tlskey",
        certs["server_key"],
        "--tlscacert",
        certs["ca"],
    ).start()
    nats_procs.append(srv)
    ctx = ssl.create_default_context(cafile=certs["ca"])
    ctx.load_cert_chain(certs["client_cert"], certs["client_key"])
    sub = await Subscriber().connect(f"tls://127.0.0.1:{srv.port}", "secure", tls=ctx)
    try:
        s = await started(
            sinks,
            "n",
            {
                "type": "nats",
                "host": "127.0.0.1",
                "port": str(srv.port),
                "subject": "secure",
                "ssl": True,
                "ssl_cert": certs["client_cert"],
                "ssl_key": certs["client_key"],
                "ssl_ca": certs["ca"],
                "flush_delay": "0s",
            },
        )
        assert s.servers == [f"tls://127.0.0.1:{srv.port}"]
        s.write(msg())
        await until(lambda: sub.lines() == [line_b(msg())], what="a publish over TLS")
    finally:
        await sub.close()


# ----------------------------------------------------------------------------- influx


def influx_cfg(srv: FakeHTTP, **kw: Any) -> dict[str, Any]:
    return {
        "type": "influxdb",
        "host": "127.0.0.1",
        "port": str(srv.port),
        "database": "bucket1",
        "organization": "org1",
        "password": "token1",
        **kw,
    }


async def test_influxdb_v2_write_api(fake, sinks):
    s = await started(sinks, "i", influx_cfg(fake, precision="ms", batch_size=2, flush_delay="1h"))
    assert fake.requests[0].path == "/ping" and s.target.api == "v2"
    for i in range(5):
        s.write(msg(value=i, t=T0_NS + 5_000_000))
    await until(lambda: len(fake.writes()) == 2, what="two batches of batch_size")
    r = fake.writes()[0]
    assert (r.path, r.query) == ("/api/v2/write", {"org": "org1", "bucket": "bucket1", "precision": "ms"})
    assert r.headers["Authorization"] == "Token token1"
    assert r.lines == [f"cpu_load,hostname=node01,type=node value={i}i {T0 * 1000 + 5}" for i in range(2)]
    await s.close()
    assert sum(len(w.lines) for w in fake.writes()) == 5

    g = await started(sinks, "g", influx_cfg(fake, user="admin", use_gzip=True, flush_delay="0s"))
    g.write(msg())
    await until(lambda: fake.writes()[-1].headers.get("Content-Encoding") == "gzip", what="gzip write")
    r = fake.writes()[-1]
    assert r.headers["Authorization"] == "Token admin:token1" and r.lines == [line_b(msg())]


async def test_influxdb_v1_server_detected_from_ping(fake, sinks):
    fake.version = "1.8.10"
    s = await started(sinks, "i", influx_cfg(fake, organization=None, user="u", password="p", precision="us"))
    s.write(msg())
    await s.flush()
    (r,) = fake.writes()
    assert (r.path, r.query) == ("/write", {"db": "bucket1", "precision": "u"})
    assert r.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert r.lines == [line_b(msg(), 1000)]


async def test_influxdb_start_fails_without_server_or_org(fake):
    with pytest.raises(SinkError, match="unable to connect"):
        await create_sink("i", influx_cfg(FakeHTTP())).start()
    s = create_sink("i", influx_cfg(fake, organization=None))
    with pytest.raises(SinkError, match="missing organization"):
        await s.start()
    await s.close()
    with pytest.raises(SinkError, match="batch_size=0"):
        create_sink("i", influx_cfg(fake, batch_size=0))
    with pytest.raises(SinkError, match="missing database"):
        create_sink("i", influx_cfg(fake, database=""))


INFLUX_CONF = """reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "error"
"""


@pytest.fixture
def influxd(tmp_path) -> Iterator[int]:
    exe = shutil.which("influxd")
    if exe is None:
        pytest.skip(
            "influxd (InfluxDB 1.x) not installed (optional peer; scripts/test.sh installs it as root)"
        )
    port, rpc = free_port(), free_port()
    conf = tmp_path / "influxdb.conf"
    conf.write_text(INFLUX_CONF.format(d=tmp_path / "influx", port=port, rpc=rpc))
    proc = subprocess.Popen([exe, "-config", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_port("127.0.0.1", port, 30):
            missing_service("influxd did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(20)


async def test_influxdb_sink_writes_land_in_influxdb_1x(influxd, sinks):
    base = f"http://127.0.0.1:{influxd}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/query", params={"q": "CREATE DATABASE ccsinks"}) as r:
            assert r.status == 200
        s = await started(
            sinks,
            "influx",
            {
                "type": "influxdb",
                "host": "127.0.0.1",
                "port": influxd,
                "database": "ccsinks",
                "password": "unused",
            },
        )
        assert s.target.api == "v1" and s.target.version.startswith("1.6")
        for k in range(3):
            s.write(msg("cpu_user", 10.0 + k, (T0 + 10 * k) * 10**9, type="hwthread", **{"type-id": "2"}))
        s.write(msg("num_cpus", 64))
        await s.flush()
        assert s.sent == 4
        q = "SELECT value FROM cpu_user WHERE \"type-id\" = '2'"
        async with http.get(f"{base}/query", params={"db": "ccsinks", "q": q, "epoch": "s"}) as r:
            data = await r.json()
    rows = data["results"][0]["series"][0]["values"]
    assert rows == [[T0, 10.0], [T0 + 10, 11.0], [T0 + 20, 12.0]]


async def test_influxasync_retries_with_backoff_then_drops(fake, sinks, caplog):
    cfg = dict(influx_cfg(fake, type="influxasync", flush_interval=50, retry_interval="100ms"))
    fake.statuses.extend([500])
    s = await started(sinks, "a", cfg)
    assert s.retry_max == 0.1 and s.flush_delay == 0.05
    s.write(msg("mem_used", 5.0, **{"type": "node"}))
    await until(lambda: s.sent == 1, what="delivery after one retry")
    assert [r.lines for r in fake.writes()] == [[line_a(msg("mem_used", 5.0), 10**9)]] * 2
    fake.statuses.extend([500, 502, 503])
    with caplog.at_level(logging.ERROR):
        s.write(msg(value=2))
        await until(lambda: s.dropped == 1, what="drop after max_retry_attempts")
    assert len(fake.writes()) == 4  # first try + max_retry_attempts (1) retry
    assert "Failed to write batch with 1 metrics 2 times (max: 1)" in caplog.text


# ----------------------------------------------------------------------------- prometheus


async def test_prometheus_scrape(sinks, caplog):
    port = free_port()
    s = await started(
        sinks, "p", {"type": "prometheus", "host": "127.0.0.1", "port": str(port), "path": "metrics"}
    )
    s.write(msg("cpu_user", 12.5, type="hwthread", **{"type-id": "3"}))
    s.write(msg("cpu_user", 1.0, type="hwthread", **{"type-id": "4"}))
    s.write(msg("mem_used", 5, meta={"group": "Memory"}))
    s.write(msg("mem_used", 7))  # node gauges are updated (upstream keeps the first value)
    s.write(msg("net_bytes_in", UInt(3), meta={"device": "eth0"}))
    with caplog.at_level(logging.ERROR):
        s.write(msg("topproc1", "slurmstepd"))  # string value: error, skipped
        s.write(msg("cpu_user", 2.0))  # no type-id: other label set than the first one
        s.write(msg("bad-name", 1.0))
    s.write(new_message("ev", {"hostname": "n"}, {}, {"event": "x"}, T0_NS))  # not a metric: ignored
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    lines = set(text.splitlines())
    assert {
        'cpu_user{hwthread="3"} 12.5',
        'cpu_user{hwthread="4"} 1.0',
        "mem_used 7.0",
        'net_bytes_in{device="eth0"} 3.0',
    } <= lines
    assert (
        "topproc1" not in text and "bad-name" not in text and "ev" not in {ln.split(" ")[0] for ln in lines}
    )
    assert (
        "cannot be casted" in caplog.text
        and "registered with" in caplog.text
        and "not a valid" in caplog.text
    )

    port2 = free_port()
    g = await started(
        sinks, "g", {"type": "prometheus", "host": "127.0.0.1", "port": port2, "group_as_name_space": True}
    )
    g.write(msg("mem_used", 1.0, meta={"group": "Memory"}, type="socket", **{"type-id": "0"}))
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port2}/") as r:
        assert 'memory_mem_used{socket="0"} 1.0' in await r.text()
    with pytest.raises(SinkError, match="cannot listen"):
        await create_sink("p2", {"type": "prometheus", "host": "127.0.0.1", "port": port2}).start()


# ----------------------------------------------------------------------------- ganglia


def _xdr_decode(data: bytes) -> list[Any]:
    """Decode a gmetric datagram into a flat list (ints and strings as the protocol defines)."""
    pos = 0

    def u32() -> int:
        nonlocal pos
        (v,) = struct.unpack_from(">I", data, pos)
        pos += 4
        return v

    def xs() -> str:
        nonlocal pos
        n = u32()
        s = data[pos : pos + n].decode()
        pos += n + (-n % 4)
        return s

    kind = u32()
    out: list[Any] = [kind, xs(), xs(), u32()]
    if kind == 128:
        out += [xs(), xs(), xs(), u32(), u32(), u32()]
        out.append({xs(): xs() for _ in range(u32())})
    else:
        out += [xs(), xs()]
    assert pos == len(data)
    return out


class UDPCollector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.packets.append(data)


async def test_ganglia_sends_gmetric_datagrams(tmp_path, sinks):
    loop = asyncio.get_running_loop()
    transport, rx = await loop.create_datagram_endpoint(UDPCollector, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    conf = tmp_path / "gmond.conf"
    conf.write_text(
        "globals {\n  override_hostname = node01.cluster\n}\n/* a comment */\n"
        f"udp_send_channel {{\n  host = 127.0.0.1\n  port = {port}  # gmond port\n  ttl = 1\n}}\n"
    )
    try:
        s = await started(
            sinks,
            "g",
            {
                "type": "ganglia",
                "gmetric_config": str(conf),
                "cluster_name": "fritz",
                "add_ganglia_group": True,
                "add_units": True,
            },
        )
        s.write(msg("cpu_iowait", 2.5, meta={"group": "CPU", "unit": "Percent"}))
        s.write(msg("ib_recv", 42, meta={"group": "Network", "unit": "bytes"}))
        s.write(new_message("ev", {"hostname": "n"}, {}, {"event": "x"}, T0_NS))
        await until(lambda: len(rx.packets) == 4, what="two metadata + two value packets")
    finally:
        transport.close()
    meta1, val1, meta2, val2 = (_xdr_decode(p) for p in rx.packets)
    assert meta1 == [
        128,
        "node01.cluster",
        "cpu_wio",
        0,
        "float",
        "cpu_wio",
        "%",
        3,
        90,
        0,
        {"CLUSTER": "fritz", "GROUP": "cpu"},
    ]
    assert val1 == [133, "node01.cluster", "cpu_wio", 0, "%s", "2.500000"]
    assert meta2[4:10] == ["int32", "ib_recv", "bytes", 3, 300, 0] and meta2[10]["GROUP"] == "Network"
    assert val2[-1] == "42"
    assert s.dropped == 1 and s.sent == 2  # the event has no value


async def test_ganglia_exec_mode_and_names(tmp_path, sinks):
    log_file = tmp_path / "args.txt"
    fake = tmp_path / "gmetric"
    fake.write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(log_file)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
    )
    fake.chmod(0o755)
    s = await started(
        sinks,
        "g",
        {
            "type": "ganglia",
            "gmetric_path": str(fake),
            "add_type_to_name": True,
            "add_units": True,
            "gmetric_config": "/x.conf",
        },
    )
    assert isinstance(s, GangliaSink) and s.gmetric == str(fake)
    s.write(msg("cpu_user", 3.0, type="hwthread", **{"type-id": "7"}))
    s.write(msg("temp", UInt(40), meta={"unit": "degC"}, type="socket", **{"type-id": "1"}))
    s.write(msg("net_bytes_in_bw", 1.0, device="ib0"))
    await s.flush()
    assert log_file.read_text().splitlines() == [
        "--units=% --conf=/x.conf --name=hwthread7_cpu_user --slope=both --value=3.000000 --type=float --tmax=90",
        "--units=degC --conf=/x.conf --name=socket1_temp --slope=both --value=40 --type=uint32 --tmax=300",
        "--conf=/x.conf --name=net_bytes_in_bw_ib0 --slope=both --value=1.000000 --type=double --tmax=300",
    ]
    with pytest.raises(SinkError, match="cannot find executable"):
        create_sink("g", {"type": "ganglia", "gmetric_path": str(tmp_path / "missing")})
    lib = create_sink(
        "l", {"type": "libganglia", "libganglia_path": "libganglia.so", "gmond_config": "/etc/x"}
    )
    assert lib.add_units is True and lib.gmond_config == "/etc/x"


# ----------------------------------------------------------------------------- questdb → fake server


async def test_questdb_ilp_over_http(fake, sinks, caplog):
    from cccollector.sinks.questdb import column_name

    assert column_name("type-id") == "typeID" and column_name("stype-id") == "stypeID"
    assert column_name("my-tag") == "my_tag"
    address = fake.url.removeprefix("http://")
    s = await started(
        sinks,
        "q",
        {
            "type": "questdb",
            "address": address,
            "bearer_token": "tok",
            "auto_flush_interval": "1h",
            "auto_flush_rows": 2,
        },
    )
    s.write(msg(value=1.5, type="hwthread", **{"type-id": "3"}))
    s.write(CCMessage("mem", {"hostname": "n1"}, {}, {"value": UInt(7), "ok": True, "note": "x"}, T0_NS))
    await until(lambda: fake.writes(), what="the batch of two rows")
    (r,) = fake.writes()
    assert (r.method, r.path, r.query) == ("POST", "/write", {"precision": "n"})
    assert r.headers["Authorization"] == "Bearer tok"
    assert r.lines == [
        f"cpu_load,hostname=node01,type=hwthread,typeID=3 value=1.5 {T0_NS}",
        f'mem,hostname=n1 value=7i,note="x" {T0_NS}',
    ]
    with pytest.raises(SinkError, match="not both"):
        create_sink("q2", {"type": "questdb", "bearer_token": "t", "username": "u", "password": "p"})
    with pytest.raises(SinkError, match="unknown"):
        create_sink("q3", {"type": "questdb", "auto_flush": "x"})
