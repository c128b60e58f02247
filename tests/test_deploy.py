"""The files in deploy/: NATS server config and systemd units as the how-to guide uses them."""

from __future__ import annotations

import configparser
import shutil
import subprocess

import pytest

from tests.conftest import ROOT, missing_service

DEPLOY = ROOT / "deploy"


def test_nats_config_is_accepted_by_nats_server():
    exe = shutil.which("nats-server")
    if exe is None:
        missing_service("nats-server is not on PATH")
    r = subprocess.run(
        [exe, "-c", str(DEPLOY / "nats" / "nats-server.conf"), "-t"], capture_output=True, text=True
    )
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
