"""Both config formats of cc-metric-store: the guide's legacy file and upstream's current one."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from cccommon.config import ConfigError
from ccmetricstore.config import load_settings
from tests.conftest import DATA, upstream_fixture

CONFIGS = DATA / "metricstore" / "configs"


def test_guide_legacy_config_maps_onto_settings():
    s = load_settings(CONFIGS / "guide-legacy.json")
    assert s.legacy
    assert (s.host, s.port) == ("0.0.0.0", 8082)
    assert s.jwt_public_key.startswith("kzfY")
    assert s.metrics["cpu_user"].frequency == 10 and s.metrics["cpu_user"].aggregation == "avg"
    assert s.metrics["mem_used"].aggregation is None
    assert s.metrics["net_bw"].aggregation == "sum"
    assert s.retention == 48 * 3600 and s.restore_window == 48 * 3600
    assert s.checkpoint_interval == 12 * 3600
    assert s.checkpoint_format == "json"
    assert str(s.checkpoint_dir) == "/var/lib/cc-metric-store/checkpoints"
    assert s.cleanup_mode == "zip" and str(s.cleanup_dir) == "/var/lib/cc-metric-store/archive"
    assert s.cleanup_interval == 24 * 3600
    assert s.memory_cap_bytes == 0  # unlimited
    assert s.journal_enabled and s.journal_fsync
    assert str(s.journal_dir) == "/var/lib/cc-metric-store/checkpoints-journal"


def test_guide_nats_object_form():
    s = load_settings(CONFIGS / "guide-nats.json")
    assert s.nats.address == "nats://0.0.0.0:4222"
    assert s.nats.subscriptions == [("metrics.store", "mycluster")]


def test_legacy_nats_array_form(tmp_path):
    cfg = json.loads((CONFIGS / "guide-nats.json").read_text())
    cfg["nats"] = [
        {
            "address": "nats://a:4222",
            "username": "u",
            "password": "p",
            "subscriptions": [{"subscribe-to": "x"}],
        },
        {"address": "nats://b:4222", "subscriptions": [{"subscribe-to": "y", "cluster-tag": "c"}]},
    ]
    p = tmp_path / "c.json"
    p.write_text(json.dumps(cfg))
    s = load_settings(p)
    assert (s.nats.address, s.nats.username, s.nats.password) == ("nats://a:4222", "u", "p")
    assert s.nats.subscriptions == [("x", ""), ("y", "c")]


def test_current_format():
    s = load_settings(CONFIGS / "current.json")
    assert not s.legacy
    assert (s.host, s.port) == ("127.0.0.1", 8082)
    assert s.checkpoint_format == "wal"
    assert s.memory_cap_bytes == 100 * 10**9
    assert s.cleanup_mode == "archive" and str(s.cleanup_dir) == "var/archive"
    assert s.cleanup_interval == s.retention == s.restore_window == 48 * 3600
    assert s.nats.subscriptions == [("hpc-nats", "fritz"), ("hpc-nats", "alex")]
    assert (s.nats.username, s.nats.password) == ("root", "root")
    assert s.num_workers >= 1


@pytest.mark.parametrize("name", ["config.json", "config-nats.json"])
def test_upstream_example_configs(name):
    s = load_settings(upstream_fixture(f"cc-metric-store/configs/{name}"))
    assert len(s.metrics) == 41
    assert s.metrics["cpu_load"].aggregation is None


def test_metrics_file_is_inlined(tmp_path):
    (tmp_path / "metrics.json").write_text('{"m": {"frequency": 5, "aggregation": "sum"}}')
    cfg = {
        "main": {},
        "metrics-file": str(tmp_path / "metrics.json"),
        "metric-store": {"retention-in-memory": "1h"},
    }
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    s = load_settings(p)
    assert s.metrics["m"].frequency == 5
    assert (s.host, s.port) == ("0.0.0.0", 8082)


def test_unknown_keys_warn(tmp_path, caplog):
    cfg = json.loads((CONFIGS / "current.json").read_text())
    cfg["metric-store"]["surprise"] = 1
    p = tmp_path / "c.json"
    p.write_text(json.dumps(cfg))
    with caplog.at_level(logging.WARNING):
        load_settings(p)
    assert "unknown key 'metric-store.surprise' ignored" in caplog.text


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"metrics": {"x": {"frequency": 0, "aggregation": None}}}, "metrics.x.frequency"),
        ({"metrics": {"x": {"frequency": "ten", "aggregation": None}}}, "metrics.x.frequency"),
        ({"retention-in-memory": "2d"}, "retention-in-memory"),
        ({"http-api": {"address": "nowhere"}}, "http-api.address"),
        ({"jwt-public-key": "not base64!"}, "jwt-public-key"),
        ({"checkpoints": {"interval": "soon"}}, "checkpoints.interval"),
    ],
)
def test_bad_legacy_values_name_the_field(tmp_path, patch, field):
    cfg = json.loads((CONFIGS / "guide-legacy.json").read_text())
    cfg.update(patch)
    p = tmp_path / "c.json"
    p.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError) as ei:
        load_settings(p)
    assert ei.value.field == field
    assert str(p) in str(ei.value)


def test_current_requires_retention(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"main": {}, "metrics": {}, "metric-store": {}}))
    with pytest.raises(ConfigError) as ei:
        load_settings(p)
    assert ei.value.field == "metric-store.retention-in-memory"


def test_archive_mode_requires_directory(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(
        json.dumps(
            {
                "main": {},
                "metrics": {},
                "metric-store": {"retention-in-memory": "1h", "cleanup": {"mode": "archive"}},
            }
        )
    )
    with pytest.raises(ConfigError) as ei:
        load_settings(p)
    assert ei.value.field == "metric-store.cleanup.directory"


def test_cli_exits_2_naming_file_and_field(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"metrics": {"x": {"frequency": -1, "aggregation": null}}}')
    r = subprocess.run(
        [sys.executable, "-m", "ccmetricstore.cli", "-config", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert str(p) in r.stderr and "metrics.x.frequency" in r.stderr


def test_cli_bad_json_names_line(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"metrics": {\n  "x": }')
    r = subprocess.run(
        [sys.executable, "-m", "ccmetricstore.cli", "-config", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "line 2" in r.stderr


def test_cli_missing_file(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "ccmetricstore.cli", "-config", str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "file not found" in r.stderr


def test_version_flag():
    r = subprocess.run(
        [sys.executable, "-m", "ccmetricstore.cli", "-version"], capture_output=True, text=True
    )
    assert r.returncode == 0 and "cc-metric-store" in r.stdout


def test_relative_paths_resolve_against_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(CONFIGS / "current.json")
    assert not s.checkpoint_dir.is_absolute()
    assert Path.cwd() / s.checkpoint_dir == tmp_path / "var" / "checkpoints"
