"""The backend's `config.json`: the sectioned 1.5 format, the guides' flat keys and the 1.4 layout.

`load_backend_config(path)` reads the file, replaces `<name>-file` includes by the included JSON
(spec §5.1), moves flat keys into their sections (`addr` → `main.addr`, `jwts` → `auth.jwts`,
`enable-resampling` → `main.resampling`, the 1.4 `clusters[].metricDataRepository` →
`metric-store-external`, ...) and validates the result into a `BackendConfig`.  Unknown keys give
one warning each; errors are `ConfigError`s naming the file and the key the user wrote.

Relative paths (`db`, the archive path, `./var`) are kept as written: they resolve against the
working directory, so a versioned install started through a symlink works (decisions.md).
Includes are looked up next to the config file first, then in the working directory (upstream).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from cccommon.config import CCModel, ConfigError, load_json, parse_config
from cccommon.durations import parse_duration

from .archive.config import ArchiveConfig
from .auth.config import AuthConfig
from .metricdata.config import MetricStoreExternal

__all__ = [
    "ApiSubjects",
    "BackendConfig",
    "CronConfig",
    "DbConfig",
    "MainConfig",
    "NatsConfig",
    "NodeStateRetention",
    "Resampling",
    "SECTIONS",
    "load_backend_config",
    "normalize_config",
    "parse_backend_config",
]

log = logging.getLogger("ccbackend.config")

SESSION_COOKIE_DEFAULT_AGE = 30 * 24 * 3600
"""Cookie lifetime when `session-max-age` is 0, empty or unparsable (spec §5.2)."""


def _duration(value: str, what: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise ValueError(f"invalid {what} duration {value!r}: {e}") from None


# --------------------------------------------------------------------------------------------- main


class DbConfig(CCModel):
    """`main.db-config`: SQLite tuning; values <= 0 keep the default."""

    cache_size_mb: int = 2048
    soft_heap_limit_mb: int = 16384
    max_open_connections: int = 4
    max_idle_connections: int = 4
    max_idle_time_minutes: int = 10
    busy_timeout_ms: int = 60000

    @model_validator(mode="after")
    def _defaults_for_nonpositive(self) -> DbConfig:
        for name, f in type(self).model_fields.items():
            if getattr(self, name) <= 0:
                setattr(self, name, f.default)
        return self


class ApiSubjects(CCModel):
    """`main.api-subjects`: NATS subjects of the job and node-state API (disables REST start/stop)."""

    subject_job_event: str
    subject_node_state: str
    job_concurrency: int = 8
    node_concurrency: int = 2


class Resampling(CCModel):
    """LTTB downsampling of series (`main.resampling`, the guide's top-level `resampling`)."""

    minimum_points: int = 1000
    trigger: int
    resolutions: list[int] = Field(min_length=1)

    @field_validator("minimum_points")
    @classmethod
    def _min_points(cls, v: int) -> int:
        return v if v > 0 else 1000

    @field_validator("resolutions")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(r <= 0 for r in v):
            raise ValueError("resolutions must be positive numbers of seconds")
        return v


class NodeStateRetention(CCModel):
    """`main.nodestate-retention`: delete or move old node_state rows."""

    policy: str
    age: int = 24
    target_kind: str = "file"
    target_path: str = ""
    target_endpoint: str = ""
    target_bucket: str = ""
    target_access_key: str = ""
    target_secret_key: str = ""
    target_region: str = ""
    target_use_path_style: bool = False
    max_file_size_mb: int = 128

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        if v not in ("delete", "move"):
            raise ValueError(f"policy must be 'delete' or 'move', got {v!r}")
        return v


_DB_DRIVERS = {"sqlite3": "sqlite3", "sqlite": "sqlite3", "postgres": "postgres", "postgresql": "postgres"}


class MainConfig(CCModel):
    """The `main` section (spec §5.2) plus `db-driver` (sqlite3 | postgres)."""

    addr: str = "localhost:8080"
    https_cert_file: str = ""
    https_key_file: str = ""
    redirect_http_to: str = ""
    user: str = ""
    group: str = ""
    api_allowed_ips: list[str] = Field(default_factory=list)
    api_subjects: ApiSubjects | None = None
    disable_authentication: bool = False
    embed_static_files: bool = True
    static_files: str = ""
    db_driver: str = "sqlite3"
    db: str = "./var/job.db"
    db_config: DbConfig = Field(default_factory=DbConfig)
    enable_job_taggers: bool = False
    validate_: bool = Field(default=False, alias="validate")
    session_max_age: str = "168h"
    machine_state_dir: str = ""
    stop_jobs_exceeding_walltime: int = 0
    short_running_jobs_duration: int = 300
    emission_constant: int = 0
    resampling: Resampling | None = None
    systemd_unit: str = ""
    nodestate_retention: NodeStateRetention | None = None

    @field_validator("resampling", mode="before")
    @classmethod
    def _newer_resampling(cls, v: Any) -> Any:
        if isinstance(v, dict) and "trigger" not in v and "resolutions" not in v:
            log.warning(
                "main.resampling without 'trigger' and 'resolutions' (keys %s) is not supported: resampling is off",
                ", ".join(sorted(v)) or "none",
            )
            return None
        return v

    @field_validator("db_driver")
    @classmethod
    def _driver(cls, v: str) -> str:
        d = _DB_DRIVERS.get(v.strip().lower())
        if d is None:
            if v.strip().lower() == "mysql":
                raise ValueError("MySQL/MariaDB is not supported (dropped in cc-backend 1.5); use sqlite3 or postgres")
            raise ValueError(f"unknown database driver {v!r}: use sqlite3 or postgres")
        return d

    @field_validator("addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        if ":" not in v:
            raise ValueError(f"listen address {v!r} must have the form host:port (e.g. 127.0.0.1:8080 or :8080)")
        return v

    @property
    def validate_json(self) -> bool:
        """`validate`: check meta.json/data.json/cluster.json against the schemas."""
        return self.validate_

    @property
    def session_max_age_seconds(self) -> int:
        """Session cookie lifetime; 0, empty or unparsable fall back to 30 days as upstream."""
        try:
            secs = int(parse_duration(self.session_max_age)) if self.session_max_age else 0
        except ValueError:
            secs = 0
        return secs if secs > 0 else SESSION_COOKIE_DEFAULT_AGE

    @property
    def unit_name(self) -> str:
        """systemd unit for the log viewer."""
        return self.systemd_unit or "clustercockpit.service"


# ---------------------------------------------------------------------------------- other sections


class CronConfig(CCModel):
    """`cron`: worker intervals as Go durations (spec §5.5)."""

    commit_job_worker: str = "2m"
    duration_worker: str = "5m"
    footprint_worker: str = "10m"

    @field_validator("commit_job_worker", "duration_worker", "footprint_worker")
    @classmethod
    def _check(cls, v: str) -> str:
        secs = _duration(v, "worker interval")
        if secs <= 0:
            raise ValueError(f"must be a positive duration, got {v!r}")
        return v

    @property
    def commit_job_seconds(self) -> float:
        return parse_duration(self.commit_job_worker)

    @property
    def duration_seconds(self) -> float:
        return parse_duration(self.duration_worker)

    @property
    def footprint_seconds(self) -> float:
        return parse_duration(self.footprint_worker)


class NatsConfig(CCModel):
    """`nats`: the NATS client of the backend (spec §5.6)."""

    address: str
    username: str = ""
    password: str = ""
    creds_file_path: str = ""


def _default_archive() -> ArchiveConfig:
    return ArchiveConfig.model_validate({"kind": "file", "path": "./var/job-archive"})


class BackendConfig(CCModel):
    """The whole configuration, one typed section per key (spec §5.1)."""

    main: MainConfig = Field(default_factory=MainConfig)
    auth: AuthConfig | None = None
    archive: ArchiveConfig = Field(default_factory=_default_archive)
    cron: CronConfig = Field(default_factory=CronConfig)
    nats: NatsConfig | None = None
    metric_store_external: list[MetricStoreExternal] = Field(default_factory=list)
    metric_store: dict[str, Any] | None = None
    ui: dict[str, Any] | None = None

    _file: str = PrivateAttr(default="")
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def file(self) -> str:
        """The config file this was loaded from ("" if built in memory)."""
        return self._file

    @property
    def raw(self) -> dict[str, Any]:
        """The sectioned JSON (includes resolved, flat keys moved) the model was built from."""
        return self._raw


SECTIONS = ("main", "auth", "archive", "cron", "nats", "metric-store-external", "metric-store", "ui")

# --------------------------------------------------------------------------------- normalisation

_MAIN_KEYS = {
    (f.alias or n) for n, f in MainConfig.model_fields.items()
}
# 1.4 and guide spellings of main keys → the 1.5 key
_MAIN_ALIASES = {
    "apiAllowedIPs": "api-allowed-ips",
    "api-allowed-ips": "api-allowed-ips",
    "enable-resampling": "resampling",
    "enableResampling": "resampling",
    "apiSubjects": "api-subjects",
    "disableAuthentication": "disable-authentication",
    "embedStaticFiles": "embed-static-files",
    "staticFiles": "static-files",
    "sessionMaxAge": "session-max-age",
    "machineStateDir": "machine-state-dir",
    "stopJobsExceedingWalltime": "stop-jobs-exceeding-walltime",
    "shortRunningJobsDuration": "short-running-jobs-duration",
    "emissionConstant": "emission-constant",
    "enableJobTaggers": "enable-job-taggers",
    "db-driver": "db-driver",
    "dbDriver": "db-driver",
}
# 1.4 camelCase / snake_case keys inside jwts, ldap, oidc
_AUTH_ALIASES = {
    "cookieName": "cookie-name",
    "validateUser": "validate-user",
    "trustedIssuer": "trusted-issuer",
    "syncUserOnLogin": "sync-user-on-login",
    "updateUserOnLogin": "update-user-on-login",
    "maxAge": "max-age",
    "max_age": "max-age",
    "user_base": "user-base",
    "search_dn": "search-dn",
    "user_bind": "user-bind",
    "user_filter": "user-filter",
    "username_attr": "username-attr",
    "uid_attr": "uid-attr",
    "sync_interval": "sync-interval",
    "sync_del_old_users": "sync-del-old-users",
    "sync_user_on_login": "sync-user-on-login",
    "update_user_on_login": "update-user-on-login",
}
_IGNORED_14 = {
    "disable-archive": "the archive can no longer be disabled",
    "ui-defaults": "use the 'ui' section (or 'ui-file') instead",
    "filterRanges": "filter ranges are computed from the data",
}


class _Normalizer:
    """Turns the user's JSON into the sectioned layout, remembering where each key came from."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.origins: dict[str, str] = {}
        """Model path (`main.addr`) → the path the user wrote (`addr`)."""
        self.section_files: dict[str, str] = {}
        """Section → include file it was read from."""

    def warn(self, msg: str, *args: Any) -> None:
        log.warning("%s: " + msg, self.file, *args)

    # includes ----------------------------------------------------------------------------------
    def _include_path(self, value: str) -> Path | None:
        p = Path(os.path.expanduser(value))
        if p.is_absolute():
            return p if p.exists() else None
        beside = Path(self.file).parent / p
        if beside.exists():
            return beside
        return p if p.exists() else None

    def includes(self, data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            parts = key.split("-")
            if len(parts) != 2 or parts[1] != "file" or not parts[0]:
                if key in out:
                    self.warn("section '%s' given twice (inline and as '%s-file'); the included file wins", key, key)
                    continue
                out[key] = value
                continue
            name = parts[0]
            if not isinstance(value, str):
                raise ConfigError(self.file, key, f"must be a file name (string), got {value!r}")
            path = self._include_path(value)
            if path is None:
                self.warn(
                    "%s: included file %r not found (looked beside the config file and in the working "
                    "directory); section '%s' uses its defaults",
                    key,
                    value,
                    name,
                )
                continue
            if name in out:
                self.warn("section '%s' given twice (inline and as '%s'); the included file wins", name, key)
            out[name] = load_json(path)
            self.section_files[name] = os.fspath(path)
        return out

    # flat keys ---------------------------------------------------------------------------------
    @staticmethod
    def _rename(obj: Any, aliases: dict[str, str]) -> Any:
        if not isinstance(obj, dict):
            return obj
        return {aliases.get(k, k): v for k, v in obj.items()}

    def _put(self, data: dict[str, Any], section: str, key: str, value: Any, origin: str) -> None:
        sec = data.setdefault(section, {})
        if not isinstance(sec, dict):
            return  # the section itself is malformed; validation reports it
        if key in sec:
            self.warn("'%s' is also set as '%s.%s'; the value in '%s' wins", origin, section, key, section)
            return
        sec[key] = value
        self.origins[f"{section}.{key}"] = origin

    def _clusters_14(self, data: dict[str, Any], clusters: Any) -> None:
        if not isinstance(clusters, list):
            raise ConfigError(self.file, "clusters", "must be a list of clusters (cc-backend 1.4 format)")
        entries: list[dict[str, Any]] = []
        for i, c in enumerate(clusters):
            if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                raise ConfigError(self.file, f"clusters[{i}].name", "every cluster needs a name")
            repo = c.get("metricDataRepository")
            if repo is None:
                continue
            if not isinstance(repo, dict):
                raise ConfigError(self.file, f"clusters[{i}].metricDataRepository", "must be an object")
            kind = repo.get("kind", "cc-metric-store")
            if kind != "cc-metric-store":
                self.warn(
                    "clusters[%d].metricDataRepository: kind %r is not supported (only cc-metric-store); "
                    "cluster %s has no metric store",
                    i,
                    kind,
                    c["name"],
                )
                continue
            entries.append({"scope": c["name"], "url": repo.get("url", ""), "token": repo.get("token", "")})
            self.origins[f"metric-store-external[{len(entries) - 1}]"] = f"clusters[{i}].metricDataRepository"
        if not entries:
            return
        existing = data.get("metric-store-external")
        if existing is None:
            data["metric-store-external"] = entries
        elif isinstance(existing, list):
            scopes = {e.get("scope") for e in existing if isinstance(e, dict)}
            for e in entries:
                if e["scope"] in scopes:
                    self.warn("clusters: metric store of %s also in 'metric-store-external'; that one wins", e["scope"])
                else:
                    existing.append(e)

    def _auth_part(self, data: dict[str, Any], part: str, value: Any, origin: str) -> None:
        self._put(data, "auth", part, self._rename(value, _AUTH_ALIASES), origin)

    def flat(self, data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        moved: list[tuple[str, Any]] = []
        for key, value in data.items():
            if key in SECTIONS:
                out[key] = value
            else:
                moved.append((key, value))
        main = out.get("main")
        if isinstance(main, dict):
            renamed: dict[str, Any] = {}
            for k, v in main.items():
                new = _MAIN_ALIASES.get(k, k)
                if new != k:
                    self.origins[f"main.{new}"] = f"main.{k}"
                if new in renamed:
                    self.warn("main: '%s' given twice (as '%s'); the first one wins", new, k)
                    continue
                renamed[new] = v
            out["main"] = renamed
        auth = out.get("auth")
        if isinstance(auth, dict):
            auth = dict(auth)
            if "jwt" in auth and "jwts" not in auth:
                auth["jwts"] = auth.pop("jwt")
                self.origins["auth.jwts"] = "auth.jwt"
            for part in ("jwts", "ldap", "oidc"):
                if isinstance(auth.get(part), dict):
                    auth[part] = self._rename(auth[part], _AUTH_ALIASES)
            out["auth"] = auth
        for key, value in moved:
            if key in _MAIN_ALIASES or key in _MAIN_KEYS:
                self._put(out, "main", _MAIN_ALIASES.get(key, key), value, key)
            elif key in ("jwts", "jwt"):
                self._auth_part(out, "jwts", value, key)
            elif key in ("ldap", "oidc"):
                self._auth_part(out, key, value, key)
            elif key in ("cron-frequency", "cronFrequency"):
                if isinstance(value, dict) and isinstance(out.get("cron"), dict):
                    for k, v in value.items():
                        self._put(out, "cron", k, v, f"{key}.{k}")
                elif "cron" in out:
                    self.warn("'%s' ignored: 'cron' is set", key)
                else:
                    out["cron"] = value
                    self.origins["cron"] = key
            elif key == "clusters":
                self._clusters_14(out, value)
            elif key in _IGNORED_14:
                self.warn("'%s' (cc-backend 1.4) ignored: %s", key, _IGNORED_14[key])
            else:
                out[key] = value  # unknown: parse_config warns about it
        return out

    # error messages ----------------------------------------------------------------------------
    def translate(self, err: ConfigError) -> ConfigError:
        field = err.field or ""
        if not field:
            return err
        top = field.split(".", 1)[0].split("[", 1)[0]
        if top in self.section_files:
            rest = field[len(top) :].lstrip(".")
            return ConfigError(self.section_files[top], rest or None, err.message)
        best = ""
        for model_path in self.origins:
            if (field == model_path or field.startswith(model_path + ".") or field.startswith(model_path + "[")) and len(
                model_path
            ) > len(best):
                best = model_path
        if best:
            field = self.origins[best] + field[len(best) :]
        return ConfigError(self.file, field, err.message)


def normalize_config(data: Any, file: str) -> tuple[dict[str, Any], _Normalizer]:
    """Resolve includes and flat keys; returns the sectioned dict and the origin map."""
    if not isinstance(data, dict):
        raise ConfigError(file, None, "the configuration must be a JSON object")
    norm = _Normalizer(file)
    sectioned = norm.flat(norm.includes(data))
    if "main" not in sectioned:
        if data:
            log.warning("%s: no 'main' section: the server starts on defaults (listening at localhost:8080)", file)
        else:
            log.warning("%s: empty configuration: the server starts on defaults", file)
    return sectioned, norm


def parse_backend_config(data: Any, file: str = "config.json") -> BackendConfig:
    """Validate already loaded JSON (after includes relative to `file`) into a BackendConfig."""
    sectioned, norm = normalize_config(data, file)
    try:
        cfg = parse_config(sectioned, BackendConfig, file=file, log=log)
    except ConfigError as e:
        raise norm.translate(e) from None
    cfg._file = file
    cfg._raw = sectioned
    return cfg


def load_backend_config(path: str | os.PathLike[str] = "./config.json") -> BackendConfig:
    """Load `config.json` (or the `-config` file); a missing file is a ConfigError naming it."""
    name = os.fspath(path)
    return parse_backend_config(load_json(name), name)
