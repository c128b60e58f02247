"""cc-metric-collector as a user runs it: the command line, -once, SIGTERM, bad configs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from cccommon.lineprotocol import parse_lines

COLLECTOR = [sys.executable, "-m", "cccollector.cli"]


def write_config(
    d: Path, sinks: dict, collectors: dict, router: dict | None = None, interval: str = "1s"
) -> Path:
    files = {"sinks": sinks, "collectors": collectors, "receivers": {}, "router": router or {}}
    main: dict[str, object] = {}
    for name, content in files.items():
        (d / f"{name}.json").write_text(json.dumps(content))
        main[f"{name}-file"] = str(d / f"{name}.json")
    main["main"] = {"interval": interval, "duration": "1s" if interval != "500ms" else "100ms"}
    (d / "config.json").write_text(json.dumps(main))
    return d / "config.json"


def test_once_with_the_guides_compute_node_router(tmp_path):
    out = tmp_path / "out.txt"
    cfg = write_config(
        tmp_path,
        {"file": {"type": "stdout", "output_file": str(out), "meta_as_tags": ["unit"]}},
        {"cpustat": {}, "memstat": {}, "loadavg": {}, "diskstat": {}},
        {
            "interval_timestamp": True,
            "process_messages": {
                "manipulate_messages": [{"add_base_tags": {"cluster": "mycluster", "rack": "rack1"}}]
            },
        },
    )
    t0 = time.time()
    r = subprocess.run([*COLLECTOR, "-config", str(cfg), "-once"], capture_output=True, text=True, timeout=30)
    took = time.time() - t0
    assert r.returncode == 0, r.stderr
    assert 1.0 < took < 10
    lines, errors = parse_lines(out.read_bytes())
    assert not errors
    names = {ln.measurement for ln in lines}
    assert {"cpu_user", "mem_used", "load_one", "disk_free"} <= names
    for ln in lines:
        assert ln.tags["cluster"] == "mycluster" and ln.tags["rack"] == "rack1"
        assert ln.tags["hostname"]
        assert abs(ln.time / 1e9 - t0) < 10  # nanoseconds of now
    # every collector ran exactly once: one load_one line
    assert sum(1 for ln in lines if ln.measurement == "load_one") == 1
    assert "collector running" in r.stderr and "shutdown complete" in r.stderr


def test_sigterm_flushes_and_exits_zero(tmp_path):
    out = tmp_path / "out.txt"
    cfg = write_config(
        tmp_path, {"f": {"type": "stdout", "output_file": str(out)}}, {"loadavg": {}}, interval="500ms"
    )
    p = subprocess.Popen([*COLLECTOR, "--config=" + str(cfg)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20
        while time.time() < deadline and (not out.exists() or out.read_text().count("load_one") < 2):
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        rc = p.wait(20)
    finally:
        if p.poll() is None:
            p.kill()
    assert rc == 0
    assert out.read_text().count("load_one") >= 2


def test_config_errors_exit_2_naming_file_and_field(tmp_path):
    cfg = write_config(tmp_path, {"f": {"type": "stdout"}}, {})
    doc = json.loads(cfg.read_text())
    doc["main"] = {"interval": "10s", "duration": "20s"}
    cfg.write_text(json.dumps(doc))
    r = subprocess.run([*COLLECTOR, "-config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert str(cfg) in r.stderr and "main.duration" in r.stderr
    # a router rule that does not compile
    (tmp_path / "router.json").write_text(json.dumps({"process_messages": {"drop_messages_if": ["value >"]}}))
    doc["main"] = {"interval": "10s"}
    cfg.write_text(json.dumps(doc))
    r = subprocess.run([*COLLECTOR, "-config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "drop_messages_if" in r.stderr
    # no usable sink: the daemon cannot run
    (tmp_path / "router.json").write_text("{}")
    (tmp_path / "sinks.json").write_text(json.dumps({"x": {"type": "nope"}}))
    r = subprocess.run([*COLLECTOR, "-config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "no usable sinks" in r.stderr
    r = subprocess.run([*COLLECTOR, "-nope"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2


def test_http_sink_into_the_metric_store(tmp_path, daemon_factory):
    """Node collector -> HTTP sink -> our cc-metric-store, then read back with /api/query."""
    from tests.metricstore.conftest import README_TOKEN
    from tests.metricstore.test_api import call

    store = daemon_factory(
        metrics={
            "load_one": {"frequency": 1, "aggregation": None},
            "mem_used": {"frequency": 1, "aggregation": None},
        }
    ).start()
    port = store.url.rsplit(":", 1)[1]
    cfg = write_config(
        tmp_path,
        {
            "metricstore": {
                "type": "http",
                "host": "127.0.0.1",
                "port": port,
                "path": "/api/write",
                "idle_connection_timeout": "5s",
                "timeout": "5s",
                "jwt": README_TOKEN,
            }
        },
        {"loadavg": {}, "memstat": {}},
        {"process_messages": {"manipulate_messages": [{"add_base_tags": {"cluster": "mycluster"}}]}},
    )
    t0 = int(time.time())
    r = subprocess.run([*COLLECTOR, "-config", str(cfg), "-once"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    import socket

    host = socket.gethostname().split(".")[0]
    q = {
        "cluster": "mycluster",
        "from": t0 - 5,
        "to": int(time.time()) + 5,
        "queries": [{"metric": "load_one", "host": host}, {"metric": "mem_used", "host": host}],
    }
    st, _, body = call(store.url, "POST", "/api/query", json.dumps(q))
    assert st == 200
    res = json.loads(body)["results"]
    for row in res:
        assert any(v is not None for v in row[0]["data"]), res
