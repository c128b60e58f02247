"""Shared fixtures: real services (NATS, PostgreSQL) and helpers to run our daemons.

A test that needs a service uses the running one or starts one from PATH; when neither works it
skips with a reason, except under CC_REQUIRE_SERVICES=1 (set by .ci/run), where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
UPSTREAM = SHARED / "fixtures" / "upstream"
DATA = ROOT / "tests" / "data"
VENV_BIN = Path(sys.executable).parent


def require_services() -> bool:
    return os.environ.get("CC_REQUIRE_SERVICES", "") not in ("", "0")


def missing_service(reason: str) -> None:
    """Skip, or fail under CC_REQUIRE_SERVICES=1."""
    if require_services():
        pytest.fail(f"required service missing (CC_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


def upstream_fixture(rel: str) -> Path:
    """Path of an upstream fixture file; skips when ../shared is not beside the checkout."""
    p = UPSTREAM / rel
    if not p.exists():
        pytest.skip(f"upstream fixture {p} not available")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port, 0.2):
            return True
        time.sleep(0.05)
    return False


class NatsServer:
    """A NATS server reachable from the tests; `restart()` only works for one we started."""

    def __init__(self, url: str, proc: subprocess.Popen | None, port: int, workdir: Path | None):
        self.url = url
        self.proc = proc
        self.port = port
        self.workdir = workdir

    @property
    def owned(self) -> bool:
        return self.proc is not None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def start(self) -> None:
        exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
        assert self.workdir is not None
        self.proc = subprocess.Popen(
            [exe, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_port("127.0.0.1", self.port, 10):
            raise RuntimeError("nats-server did not start")

    def restart(self) -> None:
        self.stop()
        self.start()


def _start_private_nats() -> NatsServer | None:
    exe = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)
    if exe is None:
        return None
    port = free_port()
    wd = Path(tempfile.mkdtemp(prefix="cc-nats-"))
    srv = NatsServer(f"nats://127.0.0.1:{port}", None, port, wd)
    try:
        srv.start()
    except RuntimeError:
        return None
    return srv


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """The machine's NATS (127.0.0.1:4222) or a private one started from PATH."""
    if port_open("127.0.0.1", 4222):
        yield NatsServer("nats://127.0.0.1:4222", None, 4222, None)
        return
    srv = _start_private_nats()
    if srv is None:
        missing_service("no NATS server on 127.0.0.1:4222 and no nats-server on PATH")
    yield srv
    srv.stop()


@pytest.fixture
def private_nats() -> Iterator[NatsServer]:
    """A NATS server owned by this test (so it can be restarted)."""
    srv = _start_private_nats()
    if srv is None:
        missing_service("nats-server not on PATH (needed for restart tests)")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of a reachable PostgreSQL (env CC_TEST_PG_DSN or 127.0.0.1:5432 db test)."""
    dsn = os.environ.get("CC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    if not port_open("127.0.0.1", 5432) and "CC_TEST_PG_DSN" not in os.environ:
        missing_service("no PostgreSQL on 127.0.0.1:5432")
    return dsn


@pytest.fixture
def tmp_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# The metric store daemon fixture, for tests outside tests/metricstore (collector -> store).
from tests.metricstore.conftest import daemon_factory  # noqa: E402, F401
