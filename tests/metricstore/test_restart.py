"""Persistence through the real daemon: final checkpoints, restore, WAL and the kill -9 journal."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import orjson
import pytest

from tests.metricstore.test_api import T0, call, lines, node_query

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fmt", ["json", "wal"])
def test_sigterm_checkpoint_and_restore(daemon_factory, tmp_path, fmt):
    d = daemon_factory(
        checkpoints={"file-format": fmt, "directory": str(tmp_path / "ck")}, journal={"enabled": False}
    )
    d.start()
    body = (
        lines("r1")
        + "\n"
        + "\n".join(
            f"flops_any,hostname=r1,type=hwthread,type-id={t} value={t} {T0 + 10 * k}"
            for k in range(10)
            for t in range(2)
        )
    )
    assert call(d.url, "POST", "/api/write?cluster=c1", body)[0] == 200
    assert d.stop() == 0
    files = sorted(p.name for p in (tmp_path / "ck" / "c1" / "r1").iterdir())
    ext = ".bin" if fmt == "wal" else ".json"
    assert any(f.endswith(ext) for f in files), files
    if fmt == "json":
        snap = json.loads(next((tmp_path / "ck" / "c1" / "r1").glob("*.json")).read_text())
        assert set(snap) == {"metrics", "children", "from", "to"}
        assert snap["metrics"]["cpu_load"]["frequency"] == 10
        assert set(snap["children"]) == {"hwthread0", "hwthread1"}
    d.start()
    assert "Checkpoints loaded (" in d.log()
    row = node_query(d.url, host="r1")
    assert row[0]["data"] == [k + 0.5 for k in range(10)]
    agg = node_query(d.url, host="r1", metric="flops_any")
    assert agg[0]["data"] == [1.0] * 10
    d.stop()


def test_wal_replay_after_kill(daemon_factory, tmp_path):
    """file-format wal without our journal: the upstream WAL (flushed every second) restores data."""
    d = daemon_factory(
        checkpoints={"file-format": "wal", "directory": str(tmp_path / "ck")}, journal={"enabled": False}
    )
    d.start()
    assert call(d.url, "POST", "/api/write?cluster=c1", lines("w1"))[0] == 200
    time.sleep(2.5)  # the WAL writer flushes every second
    d.kill9()
    wal = tmp_path / "ck" / "c1" / "w1" / "current.wal"
    assert wal.exists() and wal.read_bytes()[:4] == (0xCC1DA701).to_bytes(4, "little")
    d.start()
    assert node_query(d.url, host="w1")[0]["data"] == [k + 0.5 for k in range(10)]
    d.stop()


def test_acknowledged_writes_survive_kill9(daemon_factory, tmp_path):
    """Every /api/write answered 200 is there after SIGKILL right after the reply."""
    d = daemon_factory(checkpoints={"file-format": "json", "directory": str(tmp_path / "ck")})
    d.start()
    acked: list[int] = []
    stop = threading.Event()

    def writer(wid: int) -> None:
        k = 0
        while not stop.is_set():
            host = f"k{wid}"
            body = f"cpu_load,hostname={host} value={k} {T0 + 10 * k}"
            try:
                st, _, _ = call(d.url, "POST", "/api/write?cluster=c1", body)
            except OSError:
                return
            if st == 200:
                acked.append(wid * 1_000_000 + k)
            k += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    d.kill9()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 20
    d.start()
    assert "journal replay" in d.log()
    for w in range(4):
        ks = sorted(a % 1_000_000 for a in acked if a // 1_000_000 == w)
        if not ks:
            continue
        body = {
            "cluster": "c1",
            "from": T0,
            "to": T0 + 10 * (ks[-1] + 1),
            "queries": [{"metric": "cpu_load", "host": f"k{w}"}],
            "with-padding": False,
        }
        st, _, data = call(d.url, "GET", "/api/query", orjson.dumps(body))
        got = orjson.loads(data)["results"][0][0]["data"]
        for k in ks:
            assert got[k] == float(k), (w, k)
    d.stop()


def test_guide_style_checkpoint_dir_loads_in_restore_window(daemon_factory, tmp_path):
    """JSON files in the upstream layout are loaded; files older than the window are not."""
    now = int(time.time())
    host = tmp_path / "ck" / "emmy" / "e1111"
    host.mkdir(parents=True)
    start = (now - 3600) // 10 * 10  # on the 10 s grid, as collectors write (queries align `from` to it)

    def snap(start: int, vals: list) -> dict:
        return {
            "metrics": {"cpu_load": {"frequency": 10, "start": start, "data": vals}},
            "children": {},
            "from": start,
            "to": start + 10 * len(vals),
        }

    (host / f"{start}.json").write_text(json.dumps(snap(start, [1.0, None, 3.0])))
    old = now - 100 * 3600
    (host / f"{old}.json").write_text(json.dumps(snap(old, [9.0])))
    (host / "not-a-number.json").write_text("{}")
    (host / f"{start + 60}.json").write_text("{broken")
    d = daemon_factory(checkpoints={"file-format": "json", "directory": str(tmp_path / "ck")})
    d.start()
    body = {
        "cluster": "emmy",
        "from": start,
        "to": start + 30,
        "queries": [{"metric": "cpu_load", "host": "e1111"}],
    }
    st, _, data = call(d.url, "GET", "/api/query", orjson.dumps(body))
    assert orjson.loads(data)["results"][0][0]["data"] == [1.0, None, 3.0]
    log = d.log()
    assert "Checkpoints loaded (1 files" in log
    assert str(host / f"{start + 60}.json") in log
    d.stop(signal.SIGINT)


def test_cleanup_checkpoints_flag(daemon_factory, tmp_path):
    host = tmp_path / "ck" / "c" / "h"
    host.mkdir(parents=True)
    old = int(time.time()) - 100 * 3600
    (host / f"{old}.json").write_text(json.dumps({"metrics": {}, "children": {}, "from": old, "to": old}))
    (host / f"{int(time.time())}.json").write_text(
        json.dumps({"metrics": {}, "children": {}, "from": 0, "to": 0})
    )
    d = daemon_factory(checkpoints={"file-format": "json", "directory": str(tmp_path / "ck")})
    Path(d.cfgfile).write_text(json.dumps(d.config))
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "ccmetricstore.cli", "-config", str(d.cfgfile), "-cleanup-checkpoints"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 checkpoint files")
    assert len(list(host.iterdir())) == 1
