"""Start the real cc-metric-store daemon on an ephemeral port for API, NATS and restart tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, wait_port

# the key published in the cc-metric-store README and the token it verifies
README_PUBLIC_KEY = "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0="
README_TOKEN = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJ1c2VyIjoiYWRtaW4iLCJyb2xlcyI6WyJST0xFX0FETUlOIiwiUk9MRV9BTkFMWVNUIiwi"
    "Uk9MRV9VU0VSIl19.d-3_3FZTsadPjDEdsWrrQ7nS0edMAR4zjl-eK7rJU3HziNBfI9PDHDIpJVHTNN5E5SlLGLFXctWyKAkwhXL-Dw"
)

METRICS = {
    "cpu_load": {"frequency": 10, "aggregation": None},
    "cpu_user": {"frequency": 10, "aggregation": "avg"},
    "flops_any": {"frequency": 10, "aggregation": "sum"},
    "mem_used": {"frequency": 10, "aggregation": None},
}


def current_config(workdir: Path, port: int, **store: Any) -> dict[str, Any]:
    main = store.pop("main", {})
    nats = store.pop("nats", None)
    cfg: dict[str, Any] = {
        "main": {"addr": f"127.0.0.1:{port}", **main},
        "metrics": store.pop("metrics", METRICS),
        "metric-store": {
            "retention-in-memory": "48h",
            "memory-cap": 0,
            "checkpoint-interval": "12h",
            "checkpoints": {"file-format": "json", "directory": str(workdir / "checkpoints")},
            "cleanup": {"mode": "delete"},
            **store,
        },
    }
    if nats is not None:
        cfg["nats"] = nats
    return cfg


class Daemon:
    def __init__(self, workdir: Path, config: dict[str, Any], port: int) -> None:
        self.workdir = workdir
        self.config = config
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.cfgfile = workdir / "config.json"
        self.logfile = workdir / "daemon.log"

    def start(self, *flags: str) -> Daemon:
        self.cfgfile.write_text(json.dumps(self.config))
        argv = [sys.executable, "-m", "ccmetricstore.cli", "-config", str(self.cfgfile), "-loglevel", "debug"]
        with open(self.logfile, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [*argv, *flags], cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
            )
        if not wait_port("127.0.0.1", self.port, 30):
            self.proc.kill()
            raise RuntimeError(f"cc-metric-store did not start:\n{self.log()}")
        return self

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        # the port may linger a moment after exit
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), 0.1):
                    time.sleep(0.05)
            except OSError:
                break
        return rc

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Daemon] = []

    def make(config: dict[str, Any] | None = None, port: int | None = None, **store: Any) -> Daemon:
        p = port or free_port()
        cfg = config if config is not None else current_config(tmp_path, p, **store)
        d = Daemon(tmp_path, cfg, p)
        started.append(d)
        return d

    yield make
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
