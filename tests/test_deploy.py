"""The files in deploy/: NATS server config and systemd units as the how-to guide uses them."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, missing_service

DEPLOY = ROOT / "deploy"


def _tls_files(d: Path) -> dict[str, str]:
    """A CA and a server certificate made with openssl, for the TLS config."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not available")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server-key.pem",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    )
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-out",
        "server-cert.pem",
        "-days",
        "2",
    )
    return {f"/etc/nats/certs/{n}": str(d / n) for n in ("server-cert.pem", "server-key.pem", "ca.pem")}


@pytest.mark.parametrize("name", ["nats-server.conf", "nats-auth.conf", "nats-tls.conf", "nats-cluster.conf"])
def test_nats_configs_are_accepted_by_nats_server(name: str, tmp_path: Path) -> None:
    exe = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if exe is None:
        missing_service("nats-server is not on PATH")
    text = (DEPLOY / "nats" / name).read_text()
    if "tls {" in text:
        for old, new in _tls_files(tmp_path).items():
            text = text.replace(old, new)
    conf = tmp_path / name
    conf.write_text(text)
    r = subprocess.run([exe, "-c", str(conf), "-t"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid" in (r.stdout + r.stderr)


def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # keys are case-sensitive in systemd
    cp.read(DEPLOY / name)
    return cp


@pytest.mark.parametrize(
    "name,program",
    [
        ("systemd/cc-metric-store.service", "cc-metric-store"),
        ("systemd/cc-metric-collector.service", "cc-metric-collector"),
        ("systemd/cc-backend.service", "cc-backend"),
        ("nats/nats.service", "nats-server"),
    ],
)
def test_units_have_the_sections_systemd_needs(name, program):
    u = _unit(name)
    assert {"Unit", "Service", "Install"} <= set(u.sections())
    assert program in u["Service"]["ExecStart"]
    assert u["Install"]["WantedBy"] == "multi-user.target"


def test_metric_store_unit_matches_the_guide():
    s = _unit("systemd/cc-metric-store.service")["Service"]
    assert s["ExecStart"].split()[-2:] == ["-config", "/etc/cc-metric-store/config.json"]
    assert s["User"] == "cc-metricstore"
    assert s["Type"] == "notify"  # the daemon calls sd_notify(READY=1) after restoring checkpoints


def test_collector_unit_matches_the_guide():
    s = _unit("systemd/cc-metric-collector.service")["Service"]
    assert s["ExecStart"].split()[-2:] == ["-config", "/etc/cc-metric-collector/config.json"]
    assert s["User"] == "cc-collector" and s["Restart"] == "always" and s["RestartSec"] == "10"


def test_backend_unit_matches_the_guide():
    s = _unit("systemd/cc-backend.service")["Service"]
    # started as root (no User=) so that it can bind 80/443; privileges drop via config main.user/group
    assert "User" not in s
    assert s["WorkingDirectory"] == "/opt/monitoring/cc-backend"
    assert s["ExecStart"].startswith("/opt/monitoring/cc-backend/cc-backend ")
    assert "-server" in s["ExecStart"].split()
    assert s["Type"] == "notify"
