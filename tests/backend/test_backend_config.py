"""Backend config.json (sectioned, flat guide keys, 1.4 layout, includes) and the `.env` file."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from ccbackend.config import SESSION_COOKIE_DEFAULT_AGE, load_backend_config, parse_backend_config
from ccbackend.env import DEMO_PUBLIC_KEY, EnvError, load_env, parse_env_text
from cccommon.config import ConfigError
from tests.conftest import DATA, upstream_fixture

CFG = DATA / "backend" / "config"
GUIDE = CFG / "guide"


# ------------------------------------------------------------------------------ upstream files


def test_upstream_config_json(caplog: pytest.LogCaptureFixture) -> None:
    path = upstream_fixture("cc-backend/configs/config.json")
    with caplog.at_level(logging.WARNING, logger="ccbackend.config"):
        cfg = load_backend_config(path)
    m = cfg.main
    assert m.addr == "0.0.0.0:443"
    assert m.https_cert_file.endswith("fullchain.pem") and m.https_key_file.endswith("privkey.pem")
    assert (m.user, m.group) == ("clustercockpit", "clustercockpit")
    assert m.api_allowed_ips == ["*"] and m.enable_job_taggers and m.short_running_jobs_duration == 300
    assert m.resampling is not None and (m.resampling.minimum_points, m.resampling.trigger) == (600, 180)
    assert m.resampling.resolutions == [240, 60]
    assert m.api_subjects is not None and m.api_subjects.subject_job_event == "cc.job.event"
    assert m.nodestate_retention is not None and m.nodestate_retention.policy == "move"
    assert m.db_driver == "sqlite3" and m.db == "./var/job.db"
    assert cfg.nats is not None and cfg.nats.address == "nats://0.0.0.0:4222" and cfg.nats.password == "root"
    assert cfg.auth is not None and cfg.auth.jwts is not None and cfg.auth.jwts.max_age == "2000h"
    assert (cfg.cron.commit_job_seconds, cfg.cron.duration_seconds, cfg.cron.footprint_seconds) == (60, 300, 600)
    assert cfg.archive.kind == "s3" and cfg.archive.bucket == "jobarchive"
    assert cfg.archive.retention is not None and cfg.archive.retention.target_path == "./var/archive"
    assert [s.scope for s in cfg.metric_store_external] == ["*", "fritz", "fritz-spr1tb", "alex"]
    assert cfg.metric_store is not None and cfg.metric_store["memory-cap"] == 100
    # upstream's own sample names an include that is not shipped: a warning, not a failure
    assert cfg.ui is None
    assert any("ui-file" in r.getMessage() and "ui-config.json" in r.getMessage() for r in caplog.records)


def test_upstream_config_demo() -> None:
    cfg = load_backend_config(upstream_fixture("cc-backend/configs/config-demo.json"))
    assert cfg.main.addr == "127.0.0.1:8080"
    assert cfg.cron.duration_worker == "3m" and cfg.cron.footprint_worker == "5m"
    assert [(s.scope, s.url) for s in cfg.metric_store_external] == [("fritz", "http://0.0.0.0:8082")]
    assert cfg.archive.kind == "file" and cfg.archive.path == "./var/job-archive"


def test_upstream_importer_test_config_with_14_keys(caplog: pytest.LogCaptureFixture) -> None:
    """The config of upstream's importer test: `apiAllowedIPs` inside main, 1.4 `clusters` of kind test."""
    data = {
        "main": {"addr": "0.0.0.0:8080", "validate": False, "apiAllowedIPs": ["*"]},
        "archive": {"kind": "file", "path": "./var/job-archive"},
        "clusters": [
            {"name": "fritz", "metricDataRepository": {"kind": "test", "url": "bla:8081"},
             "filterRanges": {"numNodes": {"from": 1, "to": 944}}},
        ],
    }  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="ccbackend.config"):
        cfg = parse_backend_config(data, "importer-test.json")
    assert cfg.main.api_allowed_ips == ["*"] and cfg.main.validate_json is False
    assert cfg.metric_store_external == []
    assert any("kind 'test' is not supported" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------ own files


def test_sectioned_config_with_includes_resolved_beside_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # includes are found next to the config file, not in the cwd
    cfg = load_backend_config(CFG / "sectioned.json")
    assert cfg.file.endswith("sectioned.json")
    assert cfg.main.addr == "127.0.0.1:18080" and cfg.main.validate_json is True
    assert cfg.main.db_config.cache_size_mb == 512 and cfg.main.db_config.busy_timeout_ms == 60000
    assert cfg.main.session_max_age_seconds == 86400
    assert cfg.main.nodestate_retention is not None and cfg.main.nodestate_retention.age == 48
    assert cfg.auth is not None and cfg.auth.jwts is not None and cfg.auth.jwts.validate_user is True
    assert cfg.auth.ldap is not None and cfg.auth.ldap.user_base == "ou=people,dc=example,dc=org"
    assert cfg.ui == {"job-list": {"use-paging": True}, "plot-configuration": {"plots-per-row": 2}}
    assert cfg.archive.compression == 14 and cfg.archive.retention is not None
    assert cfg.archive.retention.include_db is False
    assert [s.url for s in cfg.metric_store_external] == ["http://127.0.0.1:8082", "http://127.0.0.1:8083"]
    assert cfg.nats is not None and cfg.nats.username == "cc"
    # relative paths stay relative: they resolve against the working directory at use
    assert cfg.main.db == "./var/job.db" and cfg.archive.path == "./var/job-archive"
    assert cfg.raw["auth"]["jwts"]["max-age"] == "2000h"


def test_include_falls_back_to_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.json").write_text('{"main": {"addr": ":8080"}, "ui-file": "ui-cwd.json"}')
    (tmp_path / "ui-cwd.json").write_text('{"job-list": {"use-paging": true}}')
    monkeypatch.chdir(tmp_path)
    cfg = load_backend_config("conf/config.json")
    assert cfg.ui == {"job-list": {"use-paging": True}}


def test_flat_14_config(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ccbackend.config"):
        cfg = load_backend_config(CFG / "flat-1.4.json")
    assert cfg.main.addr == "0.0.0.0:8080" and cfg.main.api_allowed_ips == ["*"]
    assert cfg.main.short_running_jobs_duration == 600
    assert cfg.main.resampling is not None and cfg.main.resampling.resolutions == [600, 300, 120, 60]
    assert cfg.main.resampling.minimum_points == 1000  # upstream default when unset
    jw = cfg.auth.jwts if cfg.auth else None
    assert jw is not None and jw.max_age == "2000h" and jw.cookie_name == "cc-jwt"
    assert jw.validate_user and jw.trusted_issuer == "sso" and jw.sync_user_on_login
    ldap = cfg.auth.ldap if cfg.auth else None
    assert ldap is not None and ldap.user_base == "ou=people" and ldap.sync_del_old_users is True
    assert cfg.cron.duration_worker == "10m" and cfg.cron.footprint_worker == "20m"
    assert cfg.cron.commit_job_worker == "2m"
    assert [(s.scope, s.url, s.token) for s in cfg.metric_store_external] == [
        ("fritz", "http://localhost:8082", "abc")
    ]
    msgs = " | ".join(r.getMessage() for r in caplog.records)
    assert "'disable-archive' (cc-backend 1.4) ignored" in msgs
    assert "'ui-defaults' (cc-backend 1.4) ignored" in msgs
    assert "clusters[1].metricDataRepository: kind 'test' is not supported" in msgs


@pytest.mark.parametrize("name", sorted(p.name for p in GUIDE.glob("*.json")))
def test_every_guide_snippet_starts_on_defaults(name: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ccbackend.config"):
        cfg = load_backend_config(GUIDE / name)
    assert cfg.main.addr == "localhost:8080"  # everything else on defaults
    assert not any("unknown key" in r.getMessage() for r in caplog.records)


def test_guide_snippets_mean_what_the_guide_says() -> None:
    r = load_backend_config(GUIDE / "retention-delete.json").archive.retention
    assert r is not None and (r.policy, r.age, r.include_db) == ("delete", 365, True)
    r = load_backend_config(GUIDE / "retention-two-tier.json").archive.retention
    assert r is not None and (r.policy, r.age, r.target_path) == ("move", 180, "/mnt/slow-storage/archive")
    s3 = load_backend_config(GUIDE / "retention-s3.json").archive
    assert (s3.kind, s3.bucket, s3.access_key) == ("s3", "clustercockpit-jobs", "your-access-key")
    assert load_backend_config(GUIDE / "retention-none.json").archive.retention is None
    assert load_backend_config(GUIDE / "taggers.json").main.enable_job_taggers is True
    res = load_backend_config(GUIDE / "resampling.json").main.resampling
    assert res is not None and (res.minimum_points, res.trigger, res.resolutions) == (300, 30, [600, 300, 120, 60])
    for name, age in (("jwts-max-age.json", "2000h"), ("auth-jwt-max-age.json", "168h"), ("jwt-max-age.json", "24h")):
        auth = load_backend_config(GUIDE / name).auth
        assert auth is not None and auth.jwts is not None and auth.jwts.max_age == age, name
    assert load_backend_config(GUIDE / "api-allowed-ips.json").main.api_allowed_ips == ["10.0.0.1", "*"]


def test_defaults_and_durations() -> None:
    cfg = parse_backend_config({}, "empty.json")
    assert cfg.main.addr == "localhost:8080" and cfg.main.db == "./var/job.db" and cfg.main.db_driver == "sqlite3"
    assert cfg.main.session_max_age_seconds == 168 * 3600
    assert cfg.archive.kind == "file" and cfg.archive.path == "./var/job-archive"
    assert (cfg.cron.commit_job_worker, cfg.cron.duration_worker, cfg.cron.footprint_worker) == ("2m", "5m", "10m")
    assert cfg.metric_store_external == [] and cfg.auth is None and cfg.nats is None
    for value in ("0", "", "forever"):
        c = parse_backend_config({"main": {"session-max-age": value}}, "c.json")
        assert c.main.session_max_age_seconds == SESSION_COOKIE_DEFAULT_AGE
    pg = parse_backend_config({"main": {"db-driver": "postgresql", "db": "postgresql://cc@db/cc"}}, "c.json")
    assert pg.main.db_driver == "postgres"


def test_main_wins_over_flat_duplicate(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ccbackend.config"):
        cfg = parse_backend_config({"main": {"addr": ":9000"}, "addr": ":9001"}, "dup.json")
    assert cfg.main.addr == ":9000"
    assert any("'addr' is also set as 'main.addr'" in r.getMessage() for r in caplog.records)


def test_newer_resampling_without_trigger_turns_it_off(caplog: pytest.LogCaptureFixture) -> None:
    data = {"main": {"resampling": {"default-policy": "medium", "default-algo": "lttb"}}}
    with caplog.at_level(logging.WARNING, logger="ccbackend.config"):
        cfg = parse_backend_config(data, "new.json")
    assert cfg.main.resampling is None
    assert any("resampling is off" in r.getMessage() for r in caplog.records)


def test_unknown_keys_warn_once_each(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = load_backend_config(CFG / "unknown-keys.json")
    assert cfg.main.addr == "127.0.0.1:8080"
    unknown = [r.getMessage() for r in caplog.records if "unknown key" in r.getMessage()]
    assert len(unknown) == 2
    assert any("'main.adress'" in m for m in unknown) and any("'colour'" in m for m in unknown)
    assert all("unknown-keys.json" in m for m in unknown)


# ------------------------------------------------------------------------------ errors


def test_error_names_file_and_field() -> None:
    with pytest.raises(ConfigError) as ei:
        load_backend_config(CFG / "bad-field.json")
    assert ei.value.file.endswith("bad-field.json") and ei.value.field == "main.short-running-jobs-duration"


def test_error_in_include_names_the_included_file() -> None:
    with pytest.raises(ConfigError) as ei:
        load_backend_config(CFG / "bad-include.json")
    assert ei.value.file.endswith("auth-broken.json") and ei.value.field == "jwts.max-age"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"addr": "no-port"}, "addr"),
        ({"apiAllowedIPs": "x"}, "apiAllowedIPs"),
        ({"enable-resampling": {"resolutions": [60]}}, "enable-resampling.trigger"),
        ({"resampling": {"trigger": 30, "resolutions": [0]}}, "resampling.resolutions"),
        ({"cron": {"duration-worker": "5x"}}, "cron.duration-worker"),
        ({"cron-frequency": {"footprint-worker": "-1m"}}, "cron-frequency.footprint-worker"),
        ({"main": {"db-driver": "mysql"}}, "main.db-driver"),
        ({"main": {"api-subjects": {"subject-job-event": "a"}}}, "main.api-subjects.subject-node-state"),
        ({"nats": {"username": "x"}}, "nats.address"),
        ({"metric-store-external": [{"scope": "*", "url": "localhost:8082", "token": ""}]}, "metric-store-external[0].url"),
        ({"clusters": [{"name": "a", "metricDataRepository": {"url": "bla:1", "token": ""}}]},
         "clusters[0].metricDataRepository.url"),
        ({"archive": {"kind": "tape"}}, "archive.kind"),
    ],
)  # fmt: skip
def test_errors_name_the_key_the_user_wrote(data: dict, field: str) -> None:
    with pytest.raises(ConfigError) as ei:
        parse_backend_config(data, "user.json")
    assert ei.value.file == "user.json"
    assert ei.value.field == field, str(ei.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_backend_config(tmp_path / "nope.json")
    bad = tmp_path / "broken.json"
    bad.write_text('{"main": {"addr": ":8080",}}')
    with pytest.raises(ConfigError) as ei:
        load_backend_config(bad)
    assert ei.value.line == 1 and "broken.json" in str(ei.value)
    with pytest.raises(ConfigError, match="JSON object"):
        parse_backend_config([1, 2], "list.json")


# ------------------------------------------------------------------------------ .env


def test_env_template_of_upstream(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = upstream_fixture("cc-backend/configs/env-template.txt")
    shutil.copy(src, tmp_path / ".env")
    with caplog.at_level(logging.WARNING, logger="ccbackend.env"):
        env = load_env(tmp_path / ".env", environ={})
    assert env.jwt_public_key == DEMO_PUBLIC_KEY and env.demo_keys
    assert env.jwt_private_key.startswith("dtPC/6dWJFKZK7KZ78") and env.jwt_private_key.endswith("==")
    assert env.session_key == "67d829bf61dc5f87a73fd814e2c9f629"
    assert env.ldap_admin_password == "mashup" and env.cross_login_jwt_public_key == ""
    assert any("demo key" in r.getMessage() for r in caplog.records)


def test_env_syntax() -> None:
    text = (
        "# comment\n"
        "\n"
        "export JWT_PUBLIC_KEY=abc=\n"
        "SESSION_KEY='single $quoted # not a comment'\n"
        'LDAP_ADMIN_PASSWORD="line1\\nline2 \\"q\\""\n'
        "OID_CLIENT_ID=client # trailing comment\n"
        "OID_CLIENT_SECRET: yaml-style\n"
        'MULTI="a\n'
        'b"\n'
        "EMPTY=\n"
    )
    v = parse_env_text(text, "t.env")
    assert v["JWT_PUBLIC_KEY"] == "abc="
    assert v["SESSION_KEY"] == "single $quoted # not a comment"
    assert v["LDAP_ADMIN_PASSWORD"] == 'line1\nline2 "q"'
    assert v["OID_CLIENT_ID"] == "client" and v["OID_CLIENT_SECRET"] == "yaml-style"
    assert v["MULTI"] == "a\nb" and v["EMPTY"] == ""


@pytest.mark.parametrize(
    ("text", "msg"),
    [("JUST_A_WORD\n", "line 1: expected KEY=value"), ("A=1\n1BAD=2\n", "line 2: invalid variable name"),
     ('A="open\n', "line 1: unterminated"), ("A='x' y\n", "line 1: unexpected text")],
)  # fmt: skip
def test_env_errors_name_file_and_line(text: str, msg: str) -> None:
    with pytest.raises(EnvError, match=msg) as ei:
        parse_env_text(text, "/srv/cc/.env")
    assert "/srv/cc/.env" in str(ei.value)


def test_real_environment_wins_and_missing_file_is_fatal(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text('JWT_PUBLIC_KEY="fromfile"\nSESSION_KEY=s\n')
    env = load_env(tmp_path / ".env", environ={"JWT_PUBLIC_KEY": "fromenv", "OID_CLIENT_ID": "cid"})
    assert env.jwt_public_key == "fromenv" and env.session_key == "s" and env.oid_client_id == "cid"
    assert env.values["JWT_PUBLIC_KEY"] == "fromenv" and not env.demo_keys
    with pytest.raises(EnvError, match="file not found"):
        load_env(tmp_path / "missing.env", environ={})
