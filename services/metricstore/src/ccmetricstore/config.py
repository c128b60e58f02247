"""cc-metric-store configuration: the current upstream format and the guide's legacy format.

Both are read into pydantic models (errors name file and field, unknown keys warn) and then
mapped onto one `Settings` object that the rest of the daemon uses (spec §11.3).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from cccommon.config import CCModel, ConfigError, load_json, parse_config
from cccommon.durations import parse_duration
from cccommon.jwt import load_public_key
from cccommon.logging import get_logger

from .store import MetricConfig

log = get_logger("metricstore")

DEFAULT_ADDR = "0.0.0.0:8082"
DEFAULT_BODY_LIMIT = 64 * 1024 * 1024


# --------------------------------------------------------------------------- models


class MetricModel(CCModel):
    frequency: int
    aggregation: str | None = None

    @field_validator("frequency")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("frequency must be a positive number of seconds")
        return v


class Subscription(CCModel):
    subscribe_to: str
    cluster_tag: str = ""


class NatsServer(CCModel):
    address: str = ""
    username: str = ""
    password: str = ""
    creds_file_path: str = ""
    subscriptions: list[Subscription] | None = None


class Debug(CCModel):
    dump_to_file: str = ""
    gops: bool = False


class Main(CCModel):
    addr: str = DEFAULT_ADDR
    https_cert_file: str | None = ""
    https_key_file: str | None = ""
    jwt_public_key: str = ""
    user: str = ""
    group: str = ""
    backend_url: str = ""
    max_body_size: int = DEFAULT_BODY_LIMIT
    debug: Debug | None = None


class Checkpoints(CCModel):
    file_format: str = "wal"
    directory: str = "./var/checkpoints"
    max_wal_size: int = Field(default=0, ge=0)


class Cleanup(CCModel):
    mode: Literal["delete", "archive"] = "delete"
    directory: str = ""


class JournalModel(CCModel):
    enabled: bool = True
    fsync: bool = True
    directory: str = ""


class MetricStoreSection(CCModel):
    retention_in_memory: str
    memory_cap: int = Field(default=0, ge=0)
    checkpoint_interval: str = "12h"
    checkpoints: Checkpoints = Checkpoints()
    num_workers: int = Field(default=0, ge=0)
    cleanup: Cleanup | None = None
    nats_subscriptions: list[Subscription] | None = None
    journal: JournalModel = JournalModel()
    debug: dict[str, Any] | None = None


class CurrentConfig(CCModel):
    main: Main
    metrics: dict[str, MetricModel]
    metric_store: MetricStoreSection
    nats: NatsServer | None = None


class HttpApi(CCModel):
    address: str = DEFAULT_ADDR
    https_cert_file: str | None = None
    https_key_file: str | None = None


class LegacyCheckpoints(CCModel):
    interval: str = "12h"
    directory: str = "./var/checkpoints"
    restore: str = "48h"


class LegacyArchive(CCModel):
    interval: str = "24h"
    directory: str = ""
    delete_instead: bool = False


class LegacyConfig(CCModel):
    metrics: dict[str, MetricModel]
    http_api: HttpApi = HttpApi()
    jwt_public_key: str = ""
    retention_in_memory: str = "48h"
    checkpoints: LegacyCheckpoints = LegacyCheckpoints()
    archive: LegacyArchive | None = None
    nats: NatsServer | list[NatsServer] | None = None
    debug: Debug | None = None
    # our additions, also accepted in legacy files
    journal: JournalModel = JournalModel()
    max_body_size: int = DEFAULT_BODY_LIMIT
    memory_cap: int = Field(default=0, ge=0)
    user: str = ""
    group: str = ""


# --------------------------------------------------------------------------- settings


@dataclass
class NatsSettings:
    address: str = ""
    username: str = ""
    password: str = ""
    creds_file: str = ""
    subscriptions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Settings:
    """Everything the daemon needs, independent of the config format it came from."""

    file: str
    legacy: bool
    metrics: dict[str, MetricConfig]
    host: str = "0.0.0.0"
    port: int = 8082
    https_cert_file: str = ""
    https_key_file: str = ""
    jwt_public_key: str = ""
    user: str = ""
    group: str = ""
    backend_url: str = ""
    max_body_size: int = DEFAULT_BODY_LIMIT
    retention: float = 48 * 3600.0  # seconds; <= 0 disables retention
    restore_window: float = 48 * 3600.0
    memory_cap_bytes: int = 0  # 0 = unlimited
    checkpoint_interval: float = 12 * 3600.0
    checkpoint_format: str = "json"  # "json" | "wal"
    checkpoint_dir: Path = Path("./var/checkpoints")
    max_wal_size: int = 0
    num_workers: int = 1
    cleanup_mode: str = "delete"  # "delete" | "archive" (Parquet) | "zip" (legacy)
    cleanup_dir: Path | None = None
    cleanup_interval: float = 48 * 3600.0
    journal_enabled: bool = True
    journal_fsync: bool = True
    journal_dir: Path = Path("./var/checkpoints-journal")
    nats: NatsSettings = field(default_factory=NatsSettings)

    @property
    def tls(self) -> bool:
        return bool(self.https_cert_file and self.https_key_file)


def split_addr(addr: str, file: str, fieldname: str) -> tuple[str, int]:
    """`host:port`, `:port` or `[v6]:port` → (host, port); empty host means all interfaces."""
    m = re.fullmatch(r"\[?([^\]]*?)\]?:(\d{1,5})", addr.strip())
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ConfigError(file, fieldname, f"not a listen address of the form host:port: {addr!r}")
    host = m.group(1) or "0.0.0.0"
    return host, int(m.group(2))


def _duration(value: str, file: str, fieldname: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise ConfigError(file, fieldname, str(e)) from None


def _metrics(models: dict[str, MetricModel], file: str) -> dict[str, MetricConfig]:
    out: dict[str, MetricConfig] = {}
    for name, m in models.items():
        agg = m.aggregation or None
        if agg not in ("sum", "avg", None):
            log.warning("%s: metrics.%s.aggregation %r is unknown, treated as null", file, name, agg)
            agg = None
        out[name] = MetricConfig(name, m.frequency, agg)
    if not out:
        log.warning("%s: no metrics configured; every line will be skipped", file)
    return out


def _check_key(key: str, file: str, fieldname: str) -> None:
    if not key:
        return
    try:
        load_public_key(key)
    except ValueError as e:
        raise ConfigError(file, fieldname, str(e)) from None


def _default_workers() -> int:
    return min((os.cpu_count() or 2) // 2 + 1, 10)


def _inline_files(data: dict[str, Any], file: str) -> dict[str, Any]:
    """Upstream: a top-level `<name>-file` key is replaced by the JSON of that file under `<name>`."""
    out = dict(data)
    for key in list(data):
        m = re.fullmatch(r"([^-]+)-file", key)
        if not m or not isinstance(data[key], str):
            continue
        path = Path(data[key])
        if not path.is_absolute() and not path.exists():
            path = Path(file).parent / path
        out[m.group(1)] = load_json(path)
        del out[key]
    return out


def is_legacy(data: dict[str, Any]) -> bool:
    return "main" not in data and "metric-store" not in data


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a config file of either format; raises ConfigError."""
    file = os.fspath(path)
    data = load_json(file)
    if not isinstance(data, dict):
        raise ConfigError(file, None, "the configuration must be a JSON object")
    data = _inline_files(data, file)
    if is_legacy(data):
        return _from_legacy(parse_config(data, LegacyConfig, file=file, log=log), file)
    return _from_current(parse_config(data, CurrentConfig, file=file, log=log), file)


def _from_current(c: CurrentConfig, file: str) -> Settings:
    ms = c.metric_store
    host, port = split_addr(c.main.addr, file, "main.addr")
    _check_key(c.main.jwt_public_key, file, "main.jwt-public-key")
    retention = _duration(ms.retention_in_memory, file, "metric-store.retention-in-memory")
    interval = _duration(ms.checkpoint_interval, file, "metric-store.checkpoint-interval")
    if interval <= 0:
        raise ConfigError(file, "metric-store.checkpoint-interval", "must be a positive duration")
    fmt = ms.checkpoints.file_format
    if fmt not in ("wal", "json"):
        log.warning("%s: metric-store.checkpoints.file-format %r is unknown, using json", file, fmt)
        fmt = "json"
    cleanup = ms.cleanup or Cleanup()
    if cleanup.mode == "archive" and not cleanup.directory:
        raise ConfigError(file, "metric-store.cleanup.directory", "required when mode is 'archive'")
    subs = [(s.subscribe_to, s.cluster_tag) for s in ms.nats_subscriptions or []]
    nats = c.nats or NatsServer()
    if nats.subscriptions:
        subs += [(s.subscribe_to, s.cluster_tag) for s in nats.subscriptions]
    ckdir = Path(ms.checkpoints.directory)
    return Settings(
        file=file,
        legacy=False,
        metrics=_metrics(c.metrics, file),
        host=host,
        port=port,
        https_cert_file=c.main.https_cert_file or "",
        https_key_file=c.main.https_key_file or "",
        jwt_public_key=c.main.jwt_public_key,
        user=c.main.user,
        group=c.main.group,
        backend_url=c.main.backend_url,
        max_body_size=c.main.max_body_size,
        retention=retention,
        restore_window=retention,
        memory_cap_bytes=ms.memory_cap * 10**9,
        checkpoint_interval=interval,
        checkpoint_format=fmt,
        checkpoint_dir=ckdir,
        max_wal_size=ms.checkpoints.max_wal_size,
        num_workers=ms.num_workers or _default_workers(),
        cleanup_mode=cleanup.mode,
        cleanup_dir=Path(cleanup.directory) if cleanup.directory else None,
        cleanup_interval=retention,
        journal_enabled=ms.journal.enabled,
        journal_fsync=ms.journal.fsync,
        journal_dir=Path(ms.journal.directory) if ms.journal.directory else _journal_dir(ckdir),
        nats=NatsSettings(nats.address, nats.username, nats.password, nats.creds_file_path, subs),
    )


def _journal_dir(ckdir: Path) -> Path:
    return ckdir.parent / (ckdir.name + "-journal")


def _from_legacy(c: LegacyConfig, file: str) -> Settings:
    host, port = split_addr(c.http_api.address, file, "http-api.address")
    _check_key(c.jwt_public_key, file, "jwt-public-key")
    retention = _duration(c.retention_in_memory, file, "retention-in-memory")
    interval = _duration(c.checkpoints.interval, file, "checkpoints.interval")
    restore = _duration(c.checkpoints.restore, file, "checkpoints.restore")
    archive = c.archive or LegacyArchive()
    archive_interval = _duration(archive.interval, file, "archive.interval")
    if archive.delete_instead:
        mode, cdir = "delete", None
    elif archive.directory:
        mode, cdir = "zip", Path(archive.directory)
    else:
        mode, cdir = "delete", None
        if c.archive is not None:
            log.warning("%s: archive.directory is empty; old checkpoint files will be deleted", file)
    servers = c.nats if isinstance(c.nats, list) else [c.nats] if c.nats else []
    nats = NatsSettings()
    if servers:
        first = servers[0]
        nats = NatsSettings(first.address, first.username, first.password, first.creds_file_path)
        if len(servers) > 1:
            log.warning(
                "%s: nats lists %d servers; only the first (%s) is used", file, len(servers), first.address
            )
        for s in servers:
            nats.subscriptions += [(x.subscribe_to, x.cluster_tag) for x in s.subscriptions or []]
    ckdir = Path(c.checkpoints.directory)
    return Settings(
        file=file,
        legacy=True,
        metrics=_metrics(c.metrics, file),
        host=host,
        port=port,
        https_cert_file=c.http_api.https_cert_file or "",
        https_key_file=c.http_api.https_key_file or "",
        jwt_public_key=c.jwt_public_key,
        user=c.user,
        group=c.group,
        max_body_size=c.max_body_size,
        retention=retention,
        restore_window=restore,
        memory_cap_bytes=c.memory_cap * 10**9,
        checkpoint_interval=interval if interval > 0 else 0.0,
        checkpoint_format="json",
        checkpoint_dir=ckdir,
        num_workers=_default_workers(),
        cleanup_mode=mode,
        cleanup_dir=cdir,
        cleanup_interval=archive_interval,
        journal_enabled=c.journal.enabled,
        journal_fsync=c.journal.fsync,
        journal_dir=Path(c.journal.directory) if c.journal.directory else _journal_dir(ckdir),
        nats=nats,
    )
