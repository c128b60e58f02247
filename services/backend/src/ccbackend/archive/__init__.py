"""Job archive of cc-backend: one interface (`ArchiveBackend`), three backends, and the factory.

``open_archive(cfg)`` is the one place that maps ``archive.kind`` to a backend class. All backend
methods are synchronous; async code calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

from .base import (
    ARCHIVE_VERSION,
    COMPRESS_THRESHOLD,
    ArchiveBackend,
    ArchiveError,
    JobExistsError,
    JobKey,
    JobNotFoundError,
    Progress,
)
from .config import ArchiveConfig, RetentionConfig, parse_archive_config
from .fs import FsArchive
from .gojson import dumps_data, dumps_meta

__all__ = [
    "ARCHIVE_VERSION",
    "COMPRESS_THRESHOLD",
    "ArchiveBackend",
    "ArchiveConfig",
    "ArchiveError",
    "FsArchive",
    "JobExistsError",
    "JobKey",
    "JobNotFoundError",
    "Progress",
    "RetentionConfig",
    "dumps_data",
    "dumps_meta",
    "open_archive",
    "parse_archive_config",
]


def open_archive(cfg: ArchiveConfig, *, bootstrap: bool = True) -> ArchiveBackend:
    """Open the configured backend and check its version (an empty archive is initialised to 3).

    Blocking (file, database or network access): call it through ``asyncio.to_thread`` in async code.
    """
    backend: ArchiveBackend
    if cfg.kind == "file":
        backend = FsArchive(cfg.path)
    elif cfg.kind == "sqlite":
        from .sqlite import SqliteArchive

        assert cfg.db_path is not None  # enforced by ArchiveConfig
        backend = SqliteArchive(cfg.db_path)
    elif cfg.kind == "s3":
        from .s3 import S3Archive

        backend = S3Archive.from_config(cfg)
    else:  # pragma: no cover - ArchiveConfig restricts kind
        raise ArchiveError("archive.kind", f"unknown archive kind {cfg.kind!r}")
    try:
        backend.version(bootstrap=bootstrap)
    except BaseException:
        backend.close()
        raise
    return backend
