"""`cc-backend -server` as a process: SIGTERM drains the archiving queue and checkpoints the SQLite WAL."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.conftest import DATA, VENV_BIN, free_port, wait_port

EXE = VENV_BIN / "cc-backend"


def _call(port: int, method: str, path: str, token: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read() or b"null")


def test_sigterm_drains_archiving_and_checkpoints_wal(tmp_path: Path):
    r = subprocess.run([str(EXE), "-init"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    shutil.copytree(DATA / "backend" / "api" / "emmy", tmp_path / "var" / "job-archive" / "emmy")
    port = free_port()
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["main"]["addr"] = f"127.0.0.1:{port}"
    # a metric store that is not there: the job must still be archived (meta.json, status 2)
    cfg["metric-store-external"] = [{"scope": "*", "url": f"http://127.0.0.1:{free_port()}", "token": "x"}]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    r = subprocess.run([str(EXE), "-add-user", "adapter:api:", "-jwt", "adapter"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    token = next(x for x in r.stdout.splitlines() if x.startswith("JWT: ")).rsplit(" ", 1)[-1]
    proc = subprocess.Popen([str(EXE), "-server"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_port("127.0.0.1", port, 30)
        start = int(time.time()) - 120
        jobs = []
        for i in range(5):
            status, body = _call(port, "POST", "/api/jobs/start_job/", token, {
                "jobId": 9000 + i, "user": "u", "project": "p", "cluster": "emmy", "startTime": start,
                "numNodes": 1, "resources": [{"hostname": "e0101"}]})
            assert status == 201
            jobs.append(body["id"])
        for i in range(5):
            status, _ = _call(port, "POST", "/api/jobs/stop_job/", token,
                              {"jobId": 9000 + i, "cluster": "emmy", "stopTime": start + 60})
            assert status == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "shutdown complete" in err
    for i in range(5):
        assert (tmp_path / "var/job-archive/emmy/9" / f"{i:03d}" / str(start) / "meta.json").exists()
    db = tmp_path / "var" / "job.db"
    wal = tmp_path / "var" / "job.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed: the .db file alone is complete
    con = sqlite3.connect(db)
    try:
        states = con.execute("SELECT job_state, monitoring_status FROM job ORDER BY id").fetchall()
    finally:
        con.close()
    assert states == [("completed", 2)] * 5
