"""The ``archive`` section of the backend's config.json (spec backend-data.md §5.4, decisions.md).

Keys are kebab-case as upstream 1.5 writes them; the spellings of the how-to guides and of upstream's
code comments are accepted as well (``includeDB``, ``location``, ``dbPath``, ``accessKey``,
``secretKey``, ``usePathStyle``). Unknown keys are kept and reported as warnings by `parse_config`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from cccommon.config import CCModel, parse_config
from cccommon.durations import parse_duration

__all__ = ["ArchiveConfig", "RetentionConfig", "parse_archive_config"]


def _aliases(*names: str) -> Any:
    return Field(validation_alias=AliasChoices(*names))


class RetentionConfig(CCModel):
    """``archive.retention``: what happens to old jobs (delete, copy or move them)."""

    policy: Literal["none", "delete", "copy", "move"]
    age: int = Field(default=7, ge=0)
    """Act on jobs that started more than this many days ago (guide default 7; 0 means all jobs)."""
    include_db: bool = Field(default=True, validation_alias=AliasChoices("include-db", "includeDB", "include_db"))
    omit_tagged: Literal["none", "all", "user"] = "none"
    format: Literal["json", "parquet"] = "json"
    target_kind: Literal["file", "s3"] = "file"
    target_path: str | None = Field(
        default=None, validation_alias=AliasChoices("target-path", "location", "target_path")
    )
    target_endpoint: str | None = None
    target_bucket: str | None = None
    target_access_key: str | None = None
    target_secret_key: str | None = None
    target_region: str = "us-east-1"
    target_use_path_style: bool = False
    max_file_size_mb: int = Field(default=512, gt=0)
    interval: str | None = None
    """Optional run interval (Go duration, e.g. ``24h``); unset means upstream's fixed daily times."""

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                if parse_duration(v) <= 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"invalid duration {v!r} (use e.g. '24h')") from None
        return v

    @model_validator(mode="after")
    def _targets(self) -> RetentionConfig:
        if self.policy in ("copy", "move"):
            if self.target_kind == "file" and not self.target_path:
                raise ValueError(f"retention policy {self.policy!r} needs 'target-path' (or 'location')")
            if self.target_kind == "s3" and not self.target_bucket:
                raise ValueError(f"retention policy {self.policy!r} with target-kind s3 needs 'target-bucket'")
        return self

    def interval_seconds(self) -> float | None:
        """The run interval in seconds, or None for the fixed daily schedule."""
        return parse_duration(self.interval) if self.interval else None


class ArchiveConfig(CCModel):
    """``archive``: which backend holds the job archive, and the compression/retention tasks."""

    kind: Literal["file", "s3", "sqlite"] = "file"
    path: str = "./var/job-archive"
    db_path: str | None = Field(default=None, validation_alias=AliasChoices("db-path", "dbPath", "db_path"))
    endpoint: str | None = None
    bucket: str | None = None
    access_key: str | None = Field(
        default=None, validation_alias=AliasChoices("access-key", "accessKey", "access_key")
    )
    secret_key: str | None = Field(
        default=None, validation_alias=AliasChoices("secret-key", "secretKey", "secret_key")
    )
    region: str = "us-east-1"
    use_path_style: bool = Field(
        default=False, validation_alias=AliasChoices("use-path-style", "usePathStyle", "use_path_style")
    )
    compression: int = Field(default=7, ge=0)
    """Compress data files of jobs older than this many days."""
    retention: RetentionConfig | None = None

    @model_validator(mode="after")
    def _backend_keys(self) -> ArchiveConfig:
        if self.kind == "sqlite" and not self.db_path:
            raise ValueError("archive kind 'sqlite' needs 'db-path'")
        if self.kind == "s3" and not self.bucket:
            raise ValueError("archive kind 's3' needs 'bucket'")
        if not self.region:
            self.region = "us-east-1"
        return self

    def target_config(self) -> ArchiveConfig | None:
        """The backend config of the retention target (json format), or None without copy/move."""
        r = self.retention
        if r is None or r.policy not in ("copy", "move") or r.format != "json":
            return None
        if r.target_kind == "s3":
            return ArchiveConfig.model_validate(
                {
                    "kind": "s3",
                    "endpoint": r.target_endpoint,
                    "bucket": r.target_bucket,
                    "access-key": r.target_access_key,
                    "secret-key": r.target_secret_key,
                    "region": r.target_region,
                    "use-path-style": r.target_use_path_style,
                }
            )
        return ArchiveConfig.model_validate({"kind": "file", "path": r.target_path})


def parse_archive_config(data: Any, *, file: str = "config.json") -> ArchiveConfig:
    """Validate the ``archive`` object; errors raise ConfigError naming the file and key."""
    return parse_config(data if data is not None else {}, ArchiveConfig, file=file)
