"""File-backend job archive (spec backend-data.md §1.1-1.5, §1.9).

Layout: ``<root>/version.txt``, ``<root>/<cluster>/cluster.json`` and one directory per job,
``<root>/<cluster>/<jobId // 1000>/<jobId % 1000 as 3 digits>/<startTime>/`` holding ``meta.json``
and exactly one of ``data.json`` / ``data.json.gz``.

Every write goes to a temporary file in the target directory, is fsync'ed and renamed into place, so
readers never see half-written files; ``meta.json`` is written last, so its presence marks a complete
job. Directories are created with mode 0755 and files with 0644 regardless of the umask.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from cccommon.config import ConfigError
from cccommon.schema import Cluster, JobData, JobMeta, Tag, dumps, load_cluster, load_job_data, load_job_meta

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

ARCHIVE_VERSION = 3
"""The only archive version this implementation reads and writes (cc-backend 1.5)."""

COMPRESS_THRESHOLD = 2000
"""Encoded data.json larger than this many bytes is stored gzip-compressed (upstream rule)."""

DIR_MODE = 0o755
FILE_MODE = 0o644
META = "meta.json"
DATA = "data.json"
DATA_GZ = "data.json.gz"

Progress = Callable[[int, int], None]
"""Progress callback: called with (done, total) as jobs are processed."""


class ArchiveError(Exception):
    """A problem with the archive; `path` names the file or directory concerned, `problem` what is wrong."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class JobNotFoundError(ArchiveError):
    """The requested job has no (complete) directory in the archive."""


class JobExistsError(ArchiveError):
    """`store_job` would overwrite a job that is already archived."""


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


def _check_name(name: str, what: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise ArchiveError(name or "''", f"invalid {what} name")


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


def _encode(model: BaseModel) -> bytes:
    """Compact JSON with the upstream key spelling and a trailing newline (as Go's json.Encoder)."""
    return dumps(model, indent=False) + b"\n"


class FsArchive:
    """A job archive on the local file system (``archive.kind: "file"``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path)
        self._clusters: dict[str, Cluster] = {}

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
        except OSError as e:
            raise ArchiveError(self.root, f"cannot list archive root: {e.strerror or e}") from None
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())

    def cluster(self, name: str) -> Cluster:
        """The cluster.json of cluster `name` (loaded once, then cached)."""
        _check_name(name, "cluster")
        cached = self._clusters.get(name)
        if cached is not None:
            return cached
        path = self.root / name / "cluster.json"
        if not path.is_file():
            raise ArchiveError(path, f"unknown cluster {name!r}: no cluster.json")
        try:
            cluster = load_cluster(path)
        except (ConfigError, ValidationError, OSError, ValueError) as e:
            raise ArchiveError(path, f"cannot load cluster.json: {e}") from None
        self._clusters[name] = cluster
        return cluster

    def store_cluster(self, cluster: Cluster) -> Path:
        """Write (or replace) ``<cluster>/cluster.json``; returns its path."""
        _check_name(cluster.name, "cluster")
        path = self.root / cluster.name / "cluster.json"
        _makedirs(path.parent, self.root)
        _atomic_write(path, dumps(cluster, indent=True) + b"\n")
        self._clusters.pop(cluster.name, None)
        return path

    # ------------------------------------------------------------------ layout

    def job_dir(self, cluster: str, job_id: int, start_time: int) -> Path:
        """Directory of a job: ``<root>/<cluster>/<jobId/1000>/<jobId%1000:03>/<startTime>``."""
        _check_name(cluster, "cluster")
        if job_id < 0 or start_time < 0:
            raise ArchiveError(self.root / cluster, f"invalid job id {job_id} / start time {start_time}")
        return self.root / cluster / str(job_id // 1000) / f"{job_id % 1000:03d}" / str(start_time)

    def job_dirs(self, cluster: str | None = None) -> list[Path]:
        """All job directories (of one cluster or all), in stable order: cluster, L1, L2, start time."""
        out: list[Path] = []
        for c in [cluster] if cluster is not None else self.clusters():
            _check_name(c, "cluster")
            cdir = self.root / c
            if not cdir.is_dir():
                raise ArchiveError(cdir, f"unknown cluster {c!r}")
            for l1 in _sorted_dirs(cdir):
                for l2 in _sorted_dirs(l1):
                    out.extend(_sorted_dirs(l2))
        return out

    # ------------------------------------------------------------------ reading

    def iter_jobs(
        self,
        cluster: str | None = None,
        *,
        progress: Progress | None = None,
        on_error: Callable[[ArchiveError], None] | None = None,
    ) -> Iterator[tuple[JobMeta, Path]]:
        """Yield ``(meta, job directory)`` for every job, in the stable order of `job_dirs`.

        A job whose meta.json is missing or unreadable is reported to `on_error` (default: logged as a
        warning) and skipped; iteration continues with the other jobs. `progress(done, total)` is called
        after each job directory.
        """
        dirs = self.job_dirs(cluster)
        total = len(dirs)
        for i, d in enumerate(dirs, 1):
            try:
                meta = self.read_meta(d)
            except ArchiveError as e:
                if on_error is None:
                    log.warning("skipping job: %s", e)
                else:
                    on_error(e)
                meta = None
            if progress is not None:
                progress(i, total)
            if meta is not None:
                yield meta, d

    def read_meta(self, job_dir: str | os.PathLike[str]) -> JobMeta:
        """Load meta.json from a job directory."""
        path = Path(job_dir) / META
        if not path.is_file():
            raise JobNotFoundError(path, "job not found (no meta.json)")
        try:
            return load_job_meta(path)
        except (ConfigError, ValidationError, OSError, ValueError) as e:
            raise ArchiveError(path, f"corrupt meta.json: {e}") from None

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
        try:
            return load_job_data(path)
        except (ConfigError, ValidationError, OSError, ValueError, EOFError) as e:
            raise ArchiveError(path, f"corrupt job data: {e}") from None

    def load_meta(self, cluster: str, job_id: int, start_time: int) -> JobMeta:
        """meta.json of a job; JobNotFoundError if it is not archived, ArchiveError if unreadable."""
        return self.read_meta(self.job_dir(cluster, job_id, start_time))

    def load_data(self, cluster: str, job_id: int, start_time: int) -> JobData:
        """data.json(.gz) of a job; JobNotFoundError if absent, ArchiveError if unreadable."""
        return self.read_data(self.job_dir(cluster, job_id, start_time))

    def exists(self, cluster: str, job_id: int, start_time: int) -> bool:
        """Whether the job is archived (its meta.json exists)."""
        return (self.job_dir(cluster, job_id, start_time) / META).is_file()

    # ------------------------------------------------------------------ writing

    def store_job(
        self, meta: JobMeta, data: JobData, *, compress: bool = True, overwrite: bool = False
    ) -> Path:
        """Archive a job: data file first, then meta.json (both atomic); returns the job directory.

        With `compress` the data is gzip-compressed when its encoding exceeds 2000 bytes (upstream
        rule); without it it is always plain data.json. The cluster must exist in the archive. An
        already archived job raises JobExistsError unless `overwrite` is set.
        """
        self.cluster(meta.cluster)
        d = self.job_dir(meta.cluster, meta.job_id, meta.start_time)
        if (d / META).exists() and not overwrite:
            raise JobExistsError(d, "job already archived (use overwrite=True to replace it)")
        raw = _encode(data)
        if compress and len(raw) > COMPRESS_THRESHOLD:
            name, payload, stale = DATA_GZ, gzip.compress(raw, mtime=0), DATA
        else:
            name, payload, stale = DATA, raw, DATA_GZ
        _makedirs(d, self.root)
        _atomic_write(d / name, payload)
        try:
            (d / stale).unlink(missing_ok=True)
        except OSError as e:
            raise ArchiveError(d / stale, f"cannot remove stale data file: {e.strerror or e}") from None
        _atomic_write(d / META, _encode(meta))
        return d

    def write_meta(self, meta: JobMeta) -> Path:
        """Replace meta.json of an archived job (atomic); JobNotFoundError if the job is not archived."""
        d = self.job_dir(meta.cluster, meta.job_id, meta.start_time)
        if not (d / META).is_file():
            raise JobNotFoundError(d / META, "job not found (no meta.json)")
        _atomic_write(d / META, _encode(meta))
        return d / META

    def update_meta(
        self,
        cluster: str,
        job_id: int,
        start_time: int,
        *,
        tags: Iterable[Tag | Mapping[str, Any]] | None = None,
        meta_data: Mapping[str, str] | None = None,
    ) -> JobMeta:
        """Rewrite meta.json of an archived job as upstream does on tag changes and ``edit_meta``.

        `tags` replaces the tag list (each written with ``id`` 0); `meta_data` is merged into
        ``metaData`` (new values win). Returns the updated metadata.
        """
        meta = self.load_meta(cluster, job_id, start_time).model_copy(deep=True)
        if tags is not None:
            new_tags = []
            for t in tags:
                fields = t.model_dump(by_alias=True, exclude_none=True) if isinstance(t, Tag) else dict(t)
                fields["id"] = 0
                new_tags.append(Tag.model_validate(fields))
            meta.tags = new_tags
        if meta_data is not None:
            meta.meta_data = {**(meta.meta_data or {}), **meta_data}
        self.write_meta(meta)
        return meta

    # ------------------------------------------------------------------ removal and retention

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

    def delete_job(self, cluster: str, job_id: int, start_time: int) -> None:
        """Delete a job directory and its parents when they become empty."""
        d = self.job_dir(cluster, job_id, start_time)
        if not d.is_dir():
            raise JobNotFoundError(d, "job not found")
        self._remove_dir(d)

    def _before(self, before_ts: int, cluster: str | None) -> list[Path]:
        return [d for d in self.job_dirs(cluster) if int(d.name) < before_ts]

    def clean(self, before_ts: int, *, cluster: str | None = None, progress: Progress | None = None) -> int:
        """Delete every job whose start time (directory name) is before `before_ts`; returns the count.

        Works on directory names only, so jobs with a corrupt meta.json are cleaned as well.
        """
        dirs = self._before(before_ts, cluster)
        for i, d in enumerate(dirs, 1):
            self._remove_dir(d)
            if progress is not None:
                progress(i, len(dirs))
        return len(dirs)

    def move(
        self,
        before_ts: int,
        target: FsArchive | str | os.PathLike[str],
        *,
        cluster: str | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Move jobs that started before `before_ts` into the `target` archive; returns the count."""
        return self._transfer(before_ts, target, cluster=cluster, progress=progress, remove=True)

    def copy(
        self,
        before_ts: int,
        target: FsArchive | str | os.PathLike[str],
        *,
        cluster: str | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Copy jobs that started before `before_ts` into the `target` archive, keeping them here."""
        return self._transfer(before_ts, target, cluster=cluster, progress=progress, remove=False)

    def _transfer(
        self,
        before_ts: int,
        target: FsArchive | str | os.PathLike[str],
        *,
        cluster: str | None,
        progress: Progress | None,
        remove: bool,
    ) -> int:
        dst = target if isinstance(target, FsArchive) else FsArchive(target)
        src_root, dst_root = self.root.resolve(), dst.root.resolve()
        if dst_root == src_root or dst_root.is_relative_to(src_root) or src_root.is_relative_to(dst_root):
            raise ArchiveError(dst.root, "retention target must not overlap the archive")
        dst.version(bootstrap=True)  # target must be empty or a version-3 archive
        dirs = self._before(before_ts, cluster)
        for i, d in enumerate(dirs, 1):
            rel = d.relative_to(self.root)
            cname = rel.parts[0]
            dst_cluster = dst.root / cname / "cluster.json"
            if not dst_cluster.exists():
                _makedirs(dst_cluster.parent, dst.root)
                _atomic_write(dst_cluster, self._read_bytes(self.root / cname / "cluster.json"))
            out = dst.root / rel
            _makedirs(out, dst.root)
            try:
                files = sorted(
                    (p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")),
                    key=lambda p: p.name == META,  # meta.json last: its presence marks a complete job
                )
                names = {p.name for p in files}
                for stale in ({DATA, DATA_GZ} - names) & {p.name for p in out.iterdir()}:
                    (out / stale).unlink()
            except OSError as e:
                raise ArchiveError(d, f"cannot transfer job: {e.strerror or e}") from None
            for p in files:
                _atomic_write(out / p.name, self._read_bytes(p))
            if remove:
                self._remove_dir(d)
            if progress is not None:
                progress(i, len(dirs))
        return len(dirs)

    @staticmethod
    def _read_bytes(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as e:
            raise ArchiveError(path, f"cannot read file: {e.strerror or e}") from None
