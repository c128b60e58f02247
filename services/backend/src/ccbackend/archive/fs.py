"""File-backend job archive (spec backend-data.md §1.1-1.5, §1.9).

Layout: ``<root>/version.txt``, ``<root>/<cluster>/cluster.json`` and one directory per job,
``<root>/<cluster>/<jobId // 1000>/<jobId % 1000 as 3 digits>/<startTime>/`` holding ``meta.json``
and exactly one of ``data.json`` / ``data.json.gz``; ``compress.txt`` holds the compression marker.

Every write goes to a temporary file in the target directory, is fsync'ed and renamed into place, so
readers never see half-written files; ``meta.json`` is written last, so its presence marks a complete
job. Directories are created with mode 0755 and files with 0644 regardless of the umask. Encoding,
updates, iteration and retention are the shared ones of `ArchiveBackend`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from cccommon.schema import JobData, JobMeta

from .base import (
    ARCHIVE_VERSION,
    COMPRESS_THRESHOLD,
    ArchiveBackend,
    ArchiveError,
    JobExistsError,
    JobKey,
    JobNotFoundError,
    Progress,
    check_name,
    decode_data,
    decode_meta,
    job_key,
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

log = logging.getLogger("ccbackend.archive")

DIR_MODE = 0o755
FILE_MODE = 0o644
META = "meta.json"
DATA = "data.json"
DATA_GZ = "data.json.gz"
MARKER = "compress.txt"


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except OSError as e:  # pragma: no cover - e.g. foreign-owned directory
        raise ArchiveError(path, f"cannot set mode {mode:o}: {e.strerror or e}") from None


def _makedirs(path: Path, stop: Path) -> None:
    """Create `path` and missing parents below `stop`, each with mode 0755 (umask-independent)."""
    missing: list[Path] = []
    p = path
    while not p.exists() and p != stop and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        except OSError as e:
            raise ArchiveError(d, f"cannot create directory: {e.strerror or e}") from None
        _chmod(d, DIR_MODE)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same directory, fsync and rename; mode 0644."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise ArchiveError(path, f"cannot create temporary file: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), FILE_MODE)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ArchiveError(path, f"cannot write file: {e.strerror or e}") from None
    _fsync_dir(path.parent)


def _int_name(name: str) -> int | None:
    """The integer a layout directory is named after, or None for anything else."""
    return int(name) if name.isdecimal() else None


def _sorted_dirs(path: Path) -> list[Path]:
    """Sub-directories of `path` that are integers, in numeric order; others are logged and skipped."""
    out: list[tuple[int, Path]] = []
    try:
        entries = list(os.scandir(path))
    except OSError as e:
        raise ArchiveError(path, f"cannot list directory: {e.strerror or e}") from None
    for e in entries:
        if e.name.startswith(".") or not e.is_dir(follow_symlinks=False):
            continue
        n = _int_name(e.name)
        if n is None:
            log.warning("%s: ignoring directory with a non-numeric name", e.path)
            continue
        out.append((n, Path(e.path)))
    out.sort()
    return [p for _, p in out]


class FsArchive(ArchiveBackend):
    """A job archive on the local file system (``archive.kind: "file"``)."""

    kind = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(path)

    def __repr__(self) -> str:
        return f"FsArchive({str(self.root)!r})"

    # ------------------------------------------------------------------ version and clusters

    def version(self, *, bootstrap: bool = False) -> int:
        """Read version.txt and check it is the supported version (3).

        A missing version.txt is an error, except with `bootstrap=True` on an empty (or absent) root,
        which is initialised with ``3\\n`` as upstream does at start-up.
        """
        vfile = self.root / "version.txt"
        try:
            text = vfile.read_text(encoding="utf-8")
        except FileNotFoundError:
            if bootstrap and self._is_empty():
                _makedirs(self.root, self.root.parent)
                _atomic_write(vfile, f"{ARCHIVE_VERSION}\n".encode())
                log.info("%s: new job archive initialised (version %d)", self.root, ARCHIVE_VERSION)
                return ARCHIVE_VERSION
            why = "missing (archive directory is not empty)" if self.root.is_dir() else "missing"
            raise ArchiveError(vfile, f"archive version file {why}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ArchiveError(vfile, f"cannot read version file: {e}") from None
        value = text.strip()
        if not value.isdecimal():
            raise ArchiveError(vfile, f"invalid archive version {value!r}, need {ARCHIVE_VERSION}")
        version = int(value)
        if version != ARCHIVE_VERSION:
            raise ArchiveError(vfile, f"unsupported version {version}, need {ARCHIVE_VERSION}")
        return version

    def _is_empty(self) -> bool:
        if not self.root.exists():
            return True
        try:
            return not any(not n.startswith(".") for n in os.listdir(self.root))
        except OSError as e:
            raise ArchiveError(self.root, f"cannot list directory: {e.strerror or e}") from None

    def clusters(self) -> list[str]:
        """Names of the cluster directories (every non-hidden sub-directory of the root), sorted."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise ArchiveError(self.root, f"cannot list archive root: {e.strerror or e}") from None
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())

    def _where(self, name: str, file: str = "cluster.json") -> str:
        return str(self.root / name / file)

    def _get_cluster(self, name: str) -> bytes:
        path = self.root / name / "cluster.json"
        if not path.is_file():
            raise ArchiveError(path, f"unknown cluster {name!r}: no cluster.json")
        return _read_bytes(path)

    def _put_cluster(self, name: str, raw: bytes) -> None:
        check_name(name)
        path = self.root / name / "cluster.json"
        _makedirs(path.parent, self.root)
        _atomic_write(path, raw)

    # ------------------------------------------------------------------ layout

    def job_dir(self, cluster: str, job_id: int, start_time: int) -> Path:
        """Directory of a job: ``<root>/<cluster>/<jobId/1000>/<jobId%1000:03>/<startTime>``."""
        key = job_key(cluster, job_id, start_time)
        return self.root / key.rel_dir()

    def job_dirs(self, cluster: str | None = None) -> list[Path]:
        """All job directories (of one cluster or all), in stable order: cluster, L1, L2, start time."""
        out: list[Path] = []
        for c in [cluster] if cluster is not None else self.clusters():
            check_name(c)
            cdir = self.root / c
            if not cdir.is_dir():
                raise ArchiveError(cdir, f"unknown cluster {c!r}")
            for l1 in _sorted_dirs(cdir):
                for l2 in _sorted_dirs(l1):
                    out.extend(_sorted_dirs(l2))
        return out

    def job_keys(self, cluster: str | None = None) -> list[JobKey]:
        """Keys of all job directories, taken from the directory names (meta.json is not read)."""
        keys = []
        for d in self.job_dirs(cluster):
            l2, l1, c = d.parent, d.parent.parent, d.parent.parent.parent
            keys.append(JobKey(c.name, int(l1.name) * 1000 + int(l2.name), int(d.name)))
        return keys

    def _where_job(self, key: JobKey, file: str) -> str:
        return str(self.root / key.rel_dir() / file)

    # ------------------------------------------------------------------ reading

    def read_meta(self, job_dir: str | os.PathLike[str]) -> JobMeta:
        """Load meta.json from a job directory."""
        path = Path(job_dir) / META
        if not path.is_file():
            raise JobNotFoundError(path, "job not found (no meta.json)")
        return decode_meta(_read_bytes(path), str(path))

    def data_path(self, job_dir: str | os.PathLike[str]) -> Path:
        """The data file of a job directory: data.json.gz if present, else data.json."""
        d = Path(job_dir)
        for name in (DATA_GZ, DATA):
            if (d / name).is_file():
                return d / name
        raise JobNotFoundError(d, "no data.json or data.json.gz")

    def read_data(self, job_dir: str | os.PathLike[str]) -> JobData:
        """Load the metric data of a job directory (gzip-compressed or plain, transparently)."""
        path = self.data_path(job_dir)
        return decode_data(_read_bytes(path), str(path), gz=path.name == DATA_GZ)

    def _get_meta(self, key: JobKey) -> bytes:
        path = self.root / key.rel_dir() / META
        if not path.is_file():
            raise JobNotFoundError(path, "job not found (no meta.json)")
        return _read_bytes(path)

    def _get_data(self, key: JobKey) -> tuple[bytes, bool]:
        path = self.data_path(self.root / key.rel_dir())
        return _read_bytes(path), path.name == DATA_GZ

    def exists(self, cluster: str, job_id: int, start_time: int) -> bool:
        """Whether the job is archived (its meta.json exists)."""
        return (self.job_dir(cluster, job_id, start_time) / META).is_file()

    # ------------------------------------------------------------------ writing

    def _put_job(self, key: JobKey, meta: bytes, data: bytes, gz: bool) -> None:
        d = self.root / key.rel_dir()
        name, stale = (DATA_GZ, DATA) if gz else (DATA, DATA_GZ)
        _makedirs(d, self.root)
        _atomic_write(d / name, data)
        try:
            (d / stale).unlink(missing_ok=True)
        except OSError as e:
            raise ArchiveError(d / stale, f"cannot remove stale data file: {e.strerror or e}") from None
        _atomic_write(d / META, meta)

    def _put_meta(self, key: JobKey, meta: bytes) -> None:
        path = self.root / key.rel_dir() / META
        if not path.is_file():
            raise JobNotFoundError(path, "job not found (no meta.json)")
        _atomic_write(path, meta)

    # ------------------------------------------------------------------ removal and retention

    def _remove(self, key: JobKey) -> None:
        d = self.root / key.rel_dir()
        if not d.is_dir():
            raise JobNotFoundError(d, "job not found")
        self._remove_dir(d)

    def _remove_dir(self, d: Path) -> None:
        """Remove a job directory and its emptied L2/L1 parents (never the cluster directory)."""
        try:
            shutil.rmtree(d)
        except OSError as e:
            raise ArchiveError(d, f"cannot remove job directory: {e.strerror or e}") from None
        cluster_dir = d.parent.parent.parent
        for parent in (d.parent, d.parent.parent):
            if parent == cluster_dir:
                break
            try:
                parent.rmdir()
            except OSError:  # not empty (or already gone): keep it
                break

    def move(
        self,
        before_ts: int,
        target: ArchiveBackend | str | os.PathLike[str],
        *,
        cluster: str | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Move jobs that started before `before_ts` into `target` (a backend or a directory)."""
        dst = target if isinstance(target, ArchiveBackend) else FsArchive(target)
        return super().move(before_ts, dst, cluster=cluster, progress=progress)

    def copy(
        self,
        before_ts: int,
        target: ArchiveBackend | str | os.PathLike[str],
        *,
        cluster: str | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Copy jobs that started before `before_ts` into `target`, keeping them here."""
        dst = target if isinstance(target, ArchiveBackend) else FsArchive(target)
        return super().copy(before_ts, dst, cluster=cluster, progress=progress)

    def _check_target(self, target: ArchiveBackend) -> None:
        super()._check_target(target)
        if isinstance(target, FsArchive):
            src, dst = self.root.resolve(), target.root.resolve()
            if dst == src or dst.is_relative_to(src) or src.is_relative_to(dst):
                raise ArchiveError(target.root, "retention target must not overlap the archive")

    # ------------------------------------------------------------------ compression marker

    def _get_marker(self) -> int | None:
        path = self.root / MARKER
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise ArchiveError(path, f"cannot read compression marker: {e}") from None
        if not text.lstrip("-").isdecimal():
            log.warning("%s: ignoring invalid compression marker %r", path, text)
            return None
        return int(text)

    def _put_marker(self, ts: int) -> None:
        _atomic_write(self.root / MARKER, str(ts).encode())


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ArchiveError(path, f"cannot read file: {e.strerror or e}") from None
