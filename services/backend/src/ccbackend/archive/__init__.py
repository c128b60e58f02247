"""Job archive of cc-backend: the file backend (`FsArchive`) and its error types."""

from .fs import (
    ARCHIVE_VERSION,
    COMPRESS_THRESHOLD,
    ArchiveError,
    FsArchive,
    JobExistsError,
    JobNotFoundError,
    Progress,
)

__all__ = [
    "ARCHIVE_VERSION",
    "COMPRESS_THRESHOLD",
    "ArchiveError",
    "FsArchive",
    "JobExistsError",
    "JobNotFoundError",
    "Progress",
]
