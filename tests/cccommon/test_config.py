"""Config errors must point the admin at the file, the JSON key path and, for syntax, the position."""

import logging
from pathlib import Path

import pytest
from pydantic import Field, field_validator

from cccommon.config import CCModel, ConfigError, load_config, load_json, parse_config, resolve_path
from cccommon.durations import parse_duration


class Checkpoints(CCModel):
    interval: str = "1h"
    directory: str = "./var/checkpoints"
    file_format: str = "json"


class Nats(CCModel):
    address: str
    username: str = ""


class MetricStore(CCModel):
    retention_in_memory: str = "48h"
    memory_cap: int = 0
    checkpoints: Checkpoints = Checkpoints()

    @field_validator("retention_in_memory")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v


class Cluster(CCModel):
    name: str
    metric_data_repository: dict = Field(default_factory=dict, alias="metricDataRepository")


class Root(CCModel):
    metric_store: MetricStore = MetricStore()
    nats: Nats | list[Nats] | None = None
    clusters: list[Cluster] = []


def test_aliases_and_names():
    cfg = parse_config(
        {"metric-store": {"retention-in-memory": "12h", "checkpoints": {"file-format": "wal"}}},
        Root,
        file="c.json",
    )
    assert cfg.metric_store.retention_in_memory == "12h"
    assert cfg.metric_store.checkpoints.file_format == "wal"
    cfg = parse_config({"metric_store": {"memory_cap": 3}}, Root, file="c.json")
    assert cfg.metric_store.memory_cap == 3


def test_error_names_file_and_dotted_alias_path():
    with pytest.raises(ConfigError) as e:
        parse_config({"metric-store": {"retention-in-memory": "2d"}}, Root, file="config.json")
    err = e.value
    assert err.file == "config.json" and err.field == "metric-store.retention-in-memory"
    assert str(err).startswith("config.json: field 'metric-store.retention-in-memory': ")
    assert "unknown unit" in err.message


def test_error_type_mismatch_shows_value():
    with pytest.raises(ConfigError) as e:
        parse_config({"metric-store": {"memory-cap": "lots"}}, Root, file="config.json")
    assert e.value.field == "metric-store.memory-cap"
    assert "'lots'" in e.value.message


def test_error_in_list_and_missing_field():
    with pytest.raises(ConfigError) as e:
        parse_config({"clusters": [{"name": "a"}, {"metricDataRepository": {}}]}, Root, file="x.json")
    assert e.value.field == "clusters[1].name"
    assert "required" in e.value.message.lower()


def test_error_path_through_union():
    with pytest.raises(ConfigError) as e:
        parse_config({"nats": {"username": "u"}}, Root, file="x.json")
    assert e.value.field == "nats.address"
    with pytest.raises(ConfigError) as e:
        parse_config({"nats": [{"address": "a"}, {"address": 5}]}, Root, file="x.json")
    assert e.value.field in ("nats", "nats[1].address")


def test_unknown_keys_warn_once_each(caplog):
    data = {
        "metric-store": {"bogus": 1, "checkpoints": {"typo-interval": "1h"}},
        "clusters": [{"name": "c", "extra": True}],
        "top": {},
    }
    with caplog.at_level(logging.WARNING):
        cfg = parse_config(data, Root, file="config.json")
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted(msgs) == sorted(
        [
            "config.json: unknown key 'top' ignored",
            "config.json: unknown key 'metric-store.bogus' ignored",
            "config.json: unknown key 'metric-store.checkpoints.typo-interval' ignored",
            "config.json: unknown key 'clusters[0].extra' ignored",
        ]
    )
    assert cfg.clusters[0].name == "c"


def test_custom_logger(caplog):
    log = logging.getLogger("test.custom")
    with caplog.at_level(logging.WARNING, logger="test.custom"):
        parse_config({"zzz": 1}, Root, file="f.json", log=log)
    assert [r.name for r in caplog.records] == ["test.custom"]


def test_load_json_errors(tmp_path: Path):
    p = tmp_path / "bad.json"
    p.write_text('{\n  "a": 1,\n  "b": ,\n}\n')
    with pytest.raises(ConfigError) as e:
        load_json(p)
    assert e.value.file == str(p) and e.value.line == 3 and e.value.column is not None
    assert str(e.value).startswith(f"{p}: line 3, column ")
    with pytest.raises(ConfigError, match="file not found"):
        load_json(tmp_path / "missing.json")


def test_load_config(tmp_path: Path):
    p = tmp_path / "config.json"
    p.write_text('{"metric-store": {"retention-in-memory": "48h"}, "clusters": [{"name": "fritz"}]}')
    cfg = load_config(p, Root)
    assert cfg.clusters[0].name == "fritz"
    p.write_text('{"metric-store": {"retention-in-memory": ""}}')
    with pytest.raises(ConfigError, match=r"config.json: field 'metric-store.retention-in-memory'"):
        load_config(p, Root)


def test_resolve_path(tmp_path: Path):
    base = tmp_path / "etc" / "config.json"
    assert resolve_path(base, "var/job.db") == tmp_path / "etc" / "var" / "job.db"
    assert resolve_path(base, "/abs/x") == Path("/abs/x")
    assert resolve_path("config.json", "var") == Path("var")


def test_error_path_when_field_names_used():
    with pytest.raises(ConfigError) as e:
        parse_config({"metric_store": {"memory_cap": "x"}}, Root, file="c.json")
    assert e.value.field == "metric_store.memory_cap"
