"""The interface every job-archive backend implements (file, S3, SQLite), with the shared logic.

A backend only provides a handful of byte-level primitives (read/write meta.json, data, cluster.json,
list and remove jobs, the compression marker); encoding (Go-JSON via `gojson`), the 2000-byte gzip
rule, tag/metaData updates, iteration, retention (clean/copy/move) and compression live here once.

All methods are synchronous and may block on disk or network I/O: the server calls them through
``asyncio.to_thread``, never directly on the event loop.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel, ValidationError

from cccommon.config import ConfigError, parse_config
from cccommon.schema import Cluster, JobData, JobMeta, check_cluster

from .gojson import dumps_data, dumps_meta, meta_object

__all__ = [
    "ARCHIVE_VERSION",
    "COMPRESS_THRESHOLD",
    "ArchiveBackend",
    "ArchiveError",
    "JobExistsError",
    "JobKey",
    "JobNotFoundError",
    "Progress",
    "check_name",
    "decode_cluster",
    "decode_data",
    "decode_meta",
    "encode_data",
    "job_key",
    "report_skipped",
]

log = logging.getLogger("ccbackend.archive")

ARCHIVE_VERSION = 3
"""The only archive version this implementation reads and writes (cc-backend 1.5)."""

COMPRESS_THRESHOLD = 2000
"""Encoded data.json larger than this many bytes is stored gzip-compressed (upstream rule)."""

Progress = Callable[[int, int], None]
"""Progress callback: called with (done, total) as jobs are processed."""


class ArchiveError(Exception):
    """A problem with the archive; `path` names the file, object or row concerned, `problem` what is wrong."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class JobNotFoundError(ArchiveError):
    """The requested job has no (complete) entry in the archive."""


class JobExistsError(ArchiveError):
    """`store_job` would overwrite a job that is already archived."""


class JobKey(NamedTuple):
    """What identifies an archived job: cluster, batch job id and start time (epoch seconds)."""

    cluster: str
    job_id: int
    start_time: int

    def rel_dir(self) -> str:
        """The job's directory / key prefix relative to the archive root, e.g. ``emmy/1403/244/1608923076``."""
        return f"{self.cluster}/{self.job_id // 1000}/{self.job_id % 1000:03d}/{self.start_time}"


def check_name(name: str, what: str = "cluster") -> None:
    """Refuse names that could escape the archive layout (``..``, slashes, hidden names, NUL)."""
    if not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise ArchiveError(repr(name) if isinstance(name, str) and name else "''", f"invalid {what} name")


def job_key(cluster: str, job_id: int, start_time: int) -> JobKey:
    """A validated JobKey (safe cluster name, non-negative numbers)."""
    check_name(cluster)
    if int(job_id) < 0 or int(start_time) < 0:
        raise ArchiveError(cluster, f"invalid job id {job_id} / start time {start_time}")
    return JobKey(cluster, int(job_id), int(start_time))


# ----------------------------------------------------------------------------------- codecs


def decode_meta(raw: bytes, where: str) -> JobMeta:
    """Parse meta.json bytes; unknown (legacy) keys are kept silently, errors name `where` and the field."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ArchiveError(where, f"corrupt meta.json: invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ArchiveError(where, "corrupt meta.json: not a JSON object")
    try:
        return JobMeta.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ArchiveError(where, f"corrupt meta.json: field '{loc}': {err['msg']}") from None


def decode_data(raw: bytes, where: str, *, gz: bool | None = None) -> JobData:
    """Parse data.json bytes (gzip detected by magic number unless `gz` says); errors name `where`."""
    if gz is None:
        gz = raw[:2] == b"\x1f\x8b"
    if gz:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ArchiveError(where, f"corrupt job data: cannot gunzip: {e}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ArchiveError(where, f"corrupt job data: invalid JSON: {e}") from None
    try:
        return JobData.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ArchiveError(where, f"corrupt job data: field '{loc}': {err['msg']}") from None


def decode_cluster(raw: bytes, where: str) -> Cluster:
    """Parse cluster.json bytes; inconsistencies are logged as warnings, bad input raises ArchiveError."""
    try:
        cluster = parse_config(orjson.loads(raw), Cluster, file=where, log=log)
    except orjson.JSONDecodeError as e:
        raise ArchiveError(where, f"cannot load cluster.json: invalid JSON: {e}") from None
    except ConfigError as e:
        raise ArchiveError(where, f"cannot load cluster.json: {e}") from None
    for p in check_cluster(cluster):
        log.warning("%s: %s", where, p)
    return cluster


def encode_data(data: Any, *, compress: bool = True) -> tuple[bytes, bool]:
    """data.json bytes as upstream writes them, gzip-compressed when larger than 2000 bytes.

    Returns ``(payload, gzipped)``.
    """
    raw = dumps_data(data)
    if compress and len(raw) > COMPRESS_THRESHOLD:
        return gzip.compress(raw, mtime=0), True
    return raw, False


def _encode_cluster(cluster: Cluster | Mapping[str, Any] | bytes) -> tuple[str, bytes]:
    if isinstance(cluster, bytes):
        obj = orjson.loads(cluster)
        name, raw = obj.get("name"), cluster
    elif isinstance(cluster, BaseModel):
        name = getattr(cluster, "name", None)
        raw = orjson.dumps(cluster.model_dump(mode="json", by_alias=True, exclude_unset=True)) + b"\n"
    else:
        name, raw = cluster.get("name"), orjson.dumps(dict(cluster)) + b"\n"
    if not isinstance(name, str):
        raise ArchiveError("cluster.json", "cluster has no name")
    check_name(name)
    return name, raw


class ArchiveBackend(ABC):
    """A job archive (``archive.kind`` file, s3 or sqlite).

    Methods are synchronous and may block; call them through ``asyncio.to_thread`` from async code.
    """

    kind: str = ""

    def __init__(self) -> None:
        self._clusters: dict[str, Cluster] = {}

    # ----------------------------------------------------------- primitives of a backend

    @abstractmethod
    def version(self, *, bootstrap: bool = False) -> int:
        """Check the archive version (3); with `bootstrap` an empty archive is initialised to it."""

    @abstractmethod
    def clusters(self) -> list[str]:
        """Names of the clusters in the archive, sorted."""

    @abstractmethod
    def _get_cluster(self, name: str) -> bytes:
        """cluster.json bytes; ArchiveError if the cluster is unknown."""

    @abstractmethod
    def _put_cluster(self, name: str, raw: bytes) -> None: ...

    @abstractmethod
    def _get_meta(self, key: JobKey) -> bytes:
        """meta.json bytes; JobNotFoundError if the job is not archived."""

    @abstractmethod
    def _get_data(self, key: JobKey) -> tuple[bytes, bool]:
        """``(payload, gzipped)`` of the job's data; JobNotFoundError if absent."""

    @abstractmethod
    def _put_job(self, key: JobKey, meta: bytes, data: bytes, gz: bool) -> None:
        """Store a job: data first (replacing the other data variant), meta.json last."""

    @abstractmethod
    def _put_meta(self, key: JobKey, meta: bytes) -> None:
        """Replace meta.json of an existing job."""

    @abstractmethod
    def _remove(self, key: JobKey) -> None:
        """Delete a job; JobNotFoundError if it does not exist."""

    @abstractmethod
    def job_keys(self, cluster: str | None = None) -> list[JobKey]:
        """Every archived job (of one cluster or all), in stable order: cluster, job id, start time."""

    @abstractmethod
    def exists(self, cluster: str, job_id: int, start_time: int) -> bool:
        """Whether the job is archived (its meta.json exists)."""

    @abstractmethod
    def _get_marker(self) -> int | None:
        """The compression marker (last run) or None."""

    @abstractmethod
    def _put_marker(self, ts: int) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold no connection
        """Release connections (no-op for backends without any)."""

    def __enter__(self) -> ArchiveBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- clusters

    def cluster(self, name: str) -> Cluster:
        """The cluster.json of cluster `name` (loaded once, then cached)."""
        check_name(name)
        cached = self._clusters.get(name)
        if cached is None:
            cached = self._clusters[name] = decode_cluster(self._get_cluster(name), self._where(name))
        return cached

    def store_cluster(self, cluster: Cluster | Mapping[str, Any] | bytes) -> None:
        """Write (or replace) a cluster's cluster.json."""
        name, raw = _encode_cluster(cluster)
        self._put_cluster(name, raw)
        self._clusters.pop(name, None)

    def _where(self, name: str, file: str = "cluster.json") -> str:
        return f"{name}/{file}"

    # ----------------------------------------------------------- reading jobs

    def load_meta(self, cluster: str, job_id: int, start_time: int) -> JobMeta:
        """meta.json of a job; JobNotFoundError if it is not archived, ArchiveError if unreadable."""
        key = job_key(cluster, job_id, start_time)
        return decode_meta(self._get_meta(key), self._where_job(key, "meta.json"))

    def load_meta_dict(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        """meta.json of a job as the plain JSON object (all keys as written)."""
        key = job_key(cluster, job_id, start_time)
        where = self._where_job(key, "meta.json")
        try:
            obj = orjson.loads(self._get_meta(key))
        except orjson.JSONDecodeError as e:
            raise ArchiveError(where, f"corrupt meta.json: invalid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise ArchiveError(where, "corrupt meta.json: not a JSON object")
        return obj

    def load_data(self, cluster: str, job_id: int, start_time: int) -> JobData:
        """data.json(.gz) of a job; JobNotFoundError if absent, ArchiveError if unreadable."""
        key = job_key(cluster, job_id, start_time)
        raw, gz = self._get_data(key)
        return decode_data(raw, self._where_job(key, "data.json.gz" if gz else "data.json"), gz=gz)

    def _where_job(self, key: JobKey, file: str) -> str:
        return f"{key.rel_dir()}/{file}"

    def iter_jobs(
        self,
        cluster: str | None = None,
        *,
        progress: Progress | None = None,
        on_error: Callable[[ArchiveError], None] | None = None,
    ) -> Iterator[JobMeta]:
        """Yield the meta.json of every job, in the order of `job_keys`.

        A job whose meta.json is missing or unreadable is reported to `on_error` (default: logged as a
        warning) and skipped. `progress(done, total)` is called after each job.
        """
        keys = self.job_keys(cluster)
        total = len(keys)
        for i, key in enumerate(keys, 1):
            meta: JobMeta | None
            try:
                meta = decode_meta(self._get_meta(key), self._where_job(key, "meta.json"))
            except ArchiveError as e:
                report_skipped(e, on_error)
                meta = None
            if progress is not None:
                progress(i, total)
            if meta is not None:
                yield meta

    # ----------------------------------------------------------- writing jobs

    def store_job(
        self,
        meta: Mapping[str, Any] | BaseModel,
        data: Any,
        *,
        compress: bool = True,
        overwrite: bool = False,
    ) -> JobKey:
        """Archive a job (meta as dict, JobMeta or Job; data as JobData or dict); returns its key.

        The data is gzip-compressed when its encoding exceeds 2000 bytes (unless `compress` is off).
        The cluster must exist in the archive. An archived job raises JobExistsError unless `overwrite`.
        """
        obj = meta_object(meta)
        try:
            key = job_key(obj["cluster"], obj["jobId"], obj["startTime"])
        except KeyError as e:
            raise ArchiveError("meta.json", f"missing field {e.args[0]!r}") from None
        self.cluster(key.cluster)
        if not overwrite and self.exists(*key):
            raise JobExistsError(self._where_job(key, "meta.json"), "job already archived (use overwrite=True)")
        payload, gz = encode_data(data, compress=compress)
        self._put_job(key, dumps_meta(obj), payload, gz)
        return key

    def write_meta(self, meta: Mapping[str, Any] | BaseModel) -> JobKey:
        """Replace meta.json of an archived job; JobNotFoundError if the job is not archived."""
        obj = meta_object(meta)
        key = job_key(obj["cluster"], obj["jobId"], obj["startTime"])
        if not self.exists(*key):
            raise JobNotFoundError(self._where_job(key, "meta.json"), "job not found (no meta.json)")
        self._put_meta(key, dumps_meta(obj))
        return key

    def update_meta(
        self,
        cluster: str,
        job_id: int,
        start_time: int,
        *,
        tags: Iterable[BaseModel | Mapping[str, Any]] | None = None,
        meta_data: Mapping[str, str] | None = None,
    ) -> JobMeta:
        """Rewrite meta.json as upstream does on tag changes and ``edit_meta`` (spec §1.5).

        `tags` replaces the tag list (each written with ``id`` 0); `meta_data` is merged into
        ``metaData`` (new values win). Returns the updated metadata.
        """
        obj = self.load_meta_dict(cluster, job_id, start_time)
        if tags is not None:
            new = []
            for t in tags:
                d = t.model_dump(mode="json", by_alias=True) if isinstance(t, BaseModel) else dict(t)
                new.append({"type": d.get("type"), "name": d.get("name"), "scope": d.get("scope"), "id": 0})
            obj["tags"] = new
        if meta_data is not None:
            obj["metaData"] = {**(obj.get("metaData") or {}), **meta_data}
        raw = dumps_meta(obj)
        key = job_key(cluster, job_id, start_time)
        self._put_meta(key, raw)
        return decode_meta(raw, self._where_job(key, "meta.json"))

    def delete_job(self, cluster: str, job_id: int, start_time: int) -> None:
        """Delete a job (JobNotFoundError if it is not archived)."""
        self._remove(job_key(cluster, job_id, start_time))

    # ----------------------------------------------------------- retention

    def _before(self, before_ts: int, cluster: str | None) -> list[JobKey]:
        return [k for k in self.job_keys(cluster) if k.start_time < before_ts]

    def clean(self, before_ts: int, *, cluster: str | None = None, progress: Progress | None = None) -> int:
        """Delete every job that started before `before_ts`; returns the count (works on keys only)."""
        keys = self._before(before_ts, cluster)
        for i, key in enumerate(keys, 1):
            self._remove(key)
            if progress is not None:
                progress(i, len(keys))
        if keys:
            log.info("retention: removed %d jobs from the %s archive", len(keys), self.kind)
        return len(keys)

    def copy(
        self,
        before_ts: int,
        target: ArchiveBackend,
        *,
        cluster: str | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Copy jobs that started before `before_ts` into `target` byte for byte, keeping them here."""
        return self._transfer(before_ts, target, cluster=cluster, progress=progress, remove=False)

    def move(
        self,
        before_ts: int,
        target: ArchiveBackend,
        *,
        cluster: str | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Move jobs that started before `before_ts` into `target`; returns the count."""
        return self._transfer(before_ts, target, cluster=cluster, progress=progress, remove=True)

    def _check_target(self, target: ArchiveBackend) -> None:
        if target is self:
            raise ArchiveError(repr(target), "retention target must not be the archive itself")

    def _transfer(
        self,
        before_ts: int,
        target: ArchiveBackend,
        *,
        cluster: str | None,
        progress: Progress | None,
        remove: bool,
    ) -> int:
        self._check_target(target)
        target.version(bootstrap=True)  # target must be empty or a version-3 archive
        keys = self._before(before_ts, cluster)
        have = set(target.clusters())
        for i, key in enumerate(keys, 1):
            if key.cluster not in have:
                target._put_cluster(key.cluster, self._get_cluster(key.cluster))
                have.add(key.cluster)
            raw, gz = self._get_data(key)
            target._put_job(key, self._get_meta(key), raw, gz)
            if remove:
                self._remove(key)
            if progress is not None:
                progress(i, len(keys))
        if keys:
            log.info("retention: %s %d jobs to %r", "moved" if remove else "copied", len(keys), target)
        return len(keys)

    # ----------------------------------------------------------- compression

    def compress(self, start_after: int, start_before: int) -> int:
        """Gzip plain data of jobs that started in [start_after, start_before) and exceed 2000 bytes."""
        count = 0
        for key in self.job_keys():
            if not start_after <= key.start_time < start_before:
                continue
            try:
                raw, gz = self._get_data(key)
            except ArchiveError as e:
                report_skipped(e, None)
                continue
            if gz or len(raw) <= COMPRESS_THRESHOLD:
                continue
            self._put_job(key, self._get_meta(key), gzip.compress(raw, mtime=0), True)
            count += 1
        if count:
            log.info("compression: %d jobs of the %s archive compressed", count, self.kind)
        return count

    def swap_compress_marker(self, ts: int) -> int:
        """Store `ts` as the last compression run; returns the previous marker (or `ts` if none)."""
        last = self._get_marker()
        self._put_marker(int(ts))
        return int(ts) if last is None else last


def report_skipped(e: ArchiveError, on_error: Callable[[ArchiveError], None] | None) -> None:
    if on_error is None:
        log.warning("skipping job: %s", e)
    else:
        on_error(e)
