"""The guide's hierarchical collection, end to end, with real processes.

compute-node collector --NATS metrics.rack1--> two aggregator collectors (one queue_group)
--HTTP /api/write--> our cc-metric-store. Every metric arrives exactly once, with the tags the
guide adds on both levels and second timestamps; the NATS server is restarted mid-run and the
collectors carry on with no gap larger than one interval.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cccommon.lineprotocol import parse_lines
from tests.metricstore.test_api import call

pytestmark = pytest.mark.slow

COLLECTOR = [sys.executable, "-m", "cccollector.cli"]
METRICS = ("load_one", "load_five", "load_fifteen", "proc_run", "proc_total")


def start_collector(
    d: Path, name: str, sinks: dict, collectors: dict, receivers: dict, router: dict
) -> subprocess.Popen:
    wd = d / name
    wd.mkdir()
    main: dict[str, object] = {"main": {"interval": "1s", "duration": "1s"}}
    for sec, content in (
        ("sinks", sinks),
        ("collectors", collectors),
        ("receivers", receivers),
        ("router", router),
    ):
        (wd / f"{sec}.json").write_text(json.dumps(content))
        main[f"{sec}-file"] = str(wd / f"{sec}.json")
    (wd / "config.json").write_text(json.dumps(main))
    log = open(wd / "log.txt", "w")  # noqa: SIM115 - the child owns it
    p = subprocess.Popen([*COLLECTOR, "-config", str(wd / "config.json")], cwd=wd, stderr=log, stdout=log)
    log.close()
    return p


def stop(p: subprocess.Popen) -> int:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        return p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        return -9


def test_compute_node_to_aggregators_to_store(tmp_path, private_nats, daemon_factory):
    store = daemon_factory(metrics={m: {"frequency": 1, "aggregation": None} for m in METRICS}).start()
    store_port = store.url.rsplit(":", 1)[1]
    nats_port = str(private_nats.port)
    host = socket.gethostname().split(".")[0]

    aggregators = []
    for i in (1, 2):
        aggregators.append(
            start_collector(
                tmp_path,
                f"agg{i}",
                sinks={
                    "metricstore": {
                        "type": "http",
                        "host": "127.0.0.1",
                        "port": store_port,
                        "path": "/api/write",
                        "idle_connection_timeout": "5s",
                        "timeout": "5s",
                        "flush_delay": "200ms",
                    },
                    "copy": {"type": "stdout", "output_file": str(tmp_path / f"agg{i}.txt")},
                },
                collectors={},
                receivers={
                    "nats_rack1": {
                        "type": "nats",
                        "address": "localhost",
                        "port": nats_port,
                        "subject": "metrics.rack1",
                        "queue_group": "aggregators",
                    }
                },
                router={
                    "interval_timestamp": False,
                    "num_cache_intervals": 0,
                    "process_messages": {"manipulate_messages": [{"add_base_tags": {"datacenter": "dc1"}}]},
                },
            )
        )
    time.sleep(2)  # let the aggregators subscribe
    compute = start_collector(
        tmp_path,
        "compute",
        sinks={
            "nats_aggregator": {
                "type": "nats",
                "host": "127.0.0.1",
                "port": nats_port,
                "subject": "metrics.rack1",
                "flush_delay": "100ms",  # one NATS message per tick
            },
            "sent": {"type": "stdout", "output_file": str(tmp_path / "sent.txt")},
        },
        collectors={"loadavg": {}},
        receivers={},
        router={
            "interval_timestamp": True,
            "process_messages": {
                "manipulate_messages": [{"add_base_tags": {"cluster": "mycluster", "rack": "rack1"}}]
            },
        },
    )
    try:
        time.sleep(6)
        private_nats.restart()  # the aggregation node's NATS goes away and comes back
        time.sleep(8)
        assert compute.poll() is None, (tmp_path / "compute" / "log.txt").read_text()
        assert stop(compute) == 0
        time.sleep(2)  # in flight through NATS and the aggregators
    finally:
        rcs = [stop(a) for a in aggregators]
        stop(compute)
    assert rcs == [0, 0], [(tmp_path / f"agg{i}" / "log.txt").read_text() for i in (1, 2)]

    sent, err = parse_lines((tmp_path / "sent.txt").read_bytes())
    assert not err and sent
    received = []
    per_agg = []
    for i in (1, 2):
        lines, err = parse_lines((tmp_path / f"agg{i}.txt").read_bytes())
        assert not err
        received += lines
        per_agg.append(len(lines))

    def key(ln):
        return (ln.measurement, ln.time // 10**9)

    sent_keys = [key(ln) for ln in sent]
    recv_keys = [key(ln) for ln in received]
    assert len(recv_keys) == len(set(recv_keys)), "a metric arrived twice"
    assert set(recv_keys) <= set(sent_keys)
    # NATS core is at-most-once: a batch in flight when the server stops may be lost, nothing else
    recv_ticks = sorted({t for name, t in recv_keys if name == "load_one"})
    assert len(recv_ticks) >= len({t for name, t in sent_keys if name == "load_one"}) - 1
    assert max(b - a for a, b in zip(recv_ticks, recv_ticks[1:], strict=False)) <= 2
    assert all(n > 0 for n in per_agg), f"the queue group did not share the load: {per_agg}"
    for ln in received:
        assert (
            ln.tags["cluster"] == "mycluster"
            and ln.tags["rack"] == "rack1"
            and ln.tags["datacenter"] == "dc1"
        )
        assert ln.tags["hostname"] == host
    ticks = sorted({t for name, t in sent_keys if name == "load_one"})
    assert len(ticks) >= 10
    assert max(b - a for a, b in zip(ticks, ticks[1:], strict=False)) <= 2  # at most one interval missing

    # the store holds them at one-second resolution
    q = {
        "cluster": "mycluster",
        "from": ticks[0],
        "to": ticks[-1] + 1,
        "queries": [{"metric": "load_one", "host": host}],
    }
    st, _, body = call(store.url, "POST", "/api/query", json.dumps(q))
    assert st == 200
    data = json.loads(body)["results"][0][0]["data"]
    stored = sum(1 for v in data if v is not None)
    assert stored >= len(ticks) - 1, (stored, len(ticks), data)
