"""Collector configuration files (spec collector §3): file references, inline sections, errors."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from cccollector.config import load_config
from cccommon.config import ConfigError

GUIDE_SINKS = {
    "nats_aggregator": {"type": "nats", "host": "127.0.0.1", "port": "4222", "subject": "metrics.rack1"}
}
GUIDE_COLLECTORS = {
    "cpustat": {},
    "memstat": {},
    "diskstat": {},
    "netstat": {},
    "loadavg": {},
    "tempstat": {},
}
GUIDE_ROUTER = {
    "interval_timestamp": True,
    "process_messages": {
        "manipulate_messages": [{"add_base_tags": {"cluster": "mycluster", "rack": "rack1"}}]
    },
}


def write(path: Path, obj: object) -> str:
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return str(path)


def guide_tree(tmp_path: Path) -> Path:
    """The guide's compute-node files, with the main file referencing the others by absolute path."""
    files = {
        "sinks": GUIDE_SINKS,
        "collectors": GUIDE_COLLECTORS,
        "receivers": {},
        "router": GUIDE_ROUTER,
    }
    main: dict[str, object] = {f"{k}-file": write(tmp_path / f"{k}.json", v) for k, v in files.items()}
    main["main"] = {"interval": "10s", "duration": "1s"}
    return Path(write(tmp_path / "config.json", main))


def test_guide_files(tmp_path):
    cfg = load_config(str(guide_tree(tmp_path)))
    assert (cfg.interval, cfg.duration) == (10.0, 1.0)
    assert cfg.sinks == GUIDE_SINKS and cfg.collectors == GUIDE_COLLECTORS and cfg.router == GUIDE_ROUTER
    assert cfg.receivers == {}
    assert cfg.origin["sinks"].endswith("sinks.json")


def test_inline_sections_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "s.json", GUIDE_SINKS)
    main = {"main": {"interval": "1s"}, "sinks-file": "s.json", "collectors": {}, "router": {}}
    cfg = load_config(write(tmp_path / "config.json", main))
    assert cfg.duration == 0.0 and cfg.sinks == GUIDE_SINKS and cfg.collectors == {}


def test_file_wins_over_inline(tmp_path, caplog):
    main = {
        "main": {"Interval": "2s"},
        "sinks": {"inline": {"type": "stdout"}},
        "sinks-file": write(tmp_path / "s.json", GUIDE_SINKS),
        "collectors": {},
        "router": {},
    }
    with caplog.at_level(logging.WARNING):
        cfg = load_config(write(tmp_path / "config.json", main))
    assert cfg.sinks == GUIDE_SINKS and cfg.interval == 2.0
    assert "the file wins" in caplog.text


def test_three_part_key_is_not_a_reference(tmp_path):
    main = {
        "main": {"interval": "1s"},
        "my-sinks-file": "nope.json",
        "sinks": {"a": {"type": "stdout"}},
        "collectors": {},
        "router": {},
    }
    cfg = load_config(write(tmp_path / "config.json", main))
    assert cfg.sinks == {"a": {"type": "stdout"}}


@pytest.mark.parametrize(
    "main,field,words",
    [
        (None, "main", "missing"),
        ({"interval": "10s", "sinks": {}}, "main.sinks", "unknown key"),
        ({}, "main.interval", "required"),
        ({"interval": "10"}, "main.interval", "unit"),
        ({"interval": "0s"}, "main.interval", "greater than zero"),
        ({"interval": "1s", "duration": "2s"}, "main.duration", "greater than duration"),
        ({"interval": 10}, "main.interval", "duration string"),
    ],
)
def test_main_errors_name_the_field(tmp_path, main, field, words):
    doc: dict[str, object] = {"sinks": GUIDE_SINKS, "collectors": {}, "router": {}}
    if main is not None:
        doc["main"] = main
    path = write(tmp_path / "config.json", doc)
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    assert ei.value.field == field
    assert words in str(ei.value)
    assert str(ei.value).startswith(path)


def test_missing_sections_and_bad_json(tmp_path):
    base = {"main": {"interval": "1s"}, "sinks": GUIDE_SINKS, "collectors": {}, "router": {}}
    for missing in ("sinks", "collectors", "router"):
        doc = {k: v for k, v in base.items() if k != missing}
        with pytest.raises(ConfigError, match=missing):
            load_config(write(tmp_path / "c.json", doc))
    empty = write(tmp_path / "empty.json", "")
    with pytest.raises(ConfigError, match="router"):
        load_config(write(tmp_path / "c.json", {**base, "router": None} | {"router-file": empty}))
    bad = write(tmp_path / "bad.json", '{"a": ')
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path / "c.json", {**base, "sinks-file": bad}))
    assert ei.value.file == bad and ei.value.line == 1
    with pytest.raises(ConfigError, match="no sink"):
        load_config(write(tmp_path / "c.json", {**base, "sinks": {}}))
    with pytest.raises(ConfigError, match="JSON object"):
        load_config(write(tmp_path / "c.json", {**base, "receivers": []}))


def test_missing_main_file_reports_main(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_config(os.fspath(tmp_path / "nope.json"))
    assert ei.value.field == "main"
