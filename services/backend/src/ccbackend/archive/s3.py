"""S3 job-archive backend (``archive.kind: "s3"``, spec backend-data.md §1.6), through boto3.

Object keys mirror the file layout without a root directory: ``version.txt``, ``compress.txt``,
``<cluster>/cluster.json`` and ``<cluster>/<L1>/<L2>/<start>/{meta.json,data.json[.gz]}``. Clusters
are the top-level common prefixes (delimiter ``/``); a job exists when its ``meta.json`` does. Data
is written before meta.json, so a listed meta.json marks a complete job.

boto3 clients are thread-safe, so the (blocking) methods can run in worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cccommon.schema import JobMeta

from .base import (
    ARCHIVE_VERSION,
    ArchiveBackend,
    ArchiveError,
    JobKey,
    JobNotFoundError,
    Progress,
    check_name,
    decode_meta,
    job_key,
    report_skipped,
)

if TYPE_CHECKING:
    from .config import ArchiveConfig

__all__ = ["S3Archive"]

log = logging.getLogger("ccbackend.archive.s3")

META = "meta.json"
DATA = "data.json"
DATA_GZ = "data.json.gz"


_S3Error = (BotoCoreError, ClientError)


def _missing(e: Exception) -> bool:
    if not isinstance(e, ClientError):
        return False
    code = str(e.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3Archive(ArchiveBackend):
    """A job archive in an S3 bucket (AWS, MinIO, Ceph, ...)."""

    kind = "s3"

    def __init__(self, client: Any, bucket: str) -> None:
        super().__init__()
        self.client = client
        self.bucket = bucket
        self._checked = False

    @classmethod
    def from_config(cls, cfg: ArchiveConfig) -> S3Archive:
        """Client from the ``archive`` keys: static keys if given, else the default AWS credential chain."""
        import boto3
        from botocore.config import Config

        if not cfg.bucket:
            raise ArchiveError("archive.bucket", "S3 archive needs a bucket name")
        client = boto3.client(
            "s3",
            endpoint_url=cfg.endpoint or None,
            region_name=cfg.region or "us-east-1",
            aws_access_key_id=cfg.access_key or None,
            aws_secret_access_key=cfg.secret_key or None,
            config=Config(s3={"addressing_style": "path" if cfg.use_path_style else "auto"}),
        )
        return cls(client, cfg.bucket)

    def __repr__(self) -> str:
        return f"S3Archive(bucket={self.bucket!r})"

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------------ object primitives

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _get(self, key: str) -> bytes | None:
        """Object content, or None if the key does not exist."""
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except _S3Error as e:
            if _missing(e):
                return None
            raise ArchiveError(self._url(key), f"cannot read object: {e}") from None

    def _put(self, key: str, body: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        except _S3Error as e:
            raise ArchiveError(self._url(key), f"cannot write object: {e}") from None

    def _head(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except _S3Error as e:
            if _missing(e):
                return False
            raise ArchiveError(self._url(key), f"cannot stat object: {e}") from None

    def _delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            chunk = keys[i : i + 1000]
            try:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
            except _S3Error as e:
                raise ArchiveError(self._url(chunk[0]), f"cannot delete objects: {e}") from None

    def _list(self, prefix: str, delimiter: str | None = None) -> tuple[list[str], list[str]]:
        """(object keys, common prefixes) below `prefix`."""
        keys: list[str] = []
        prefixes: list[str] = []
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**args):
                keys.extend(o["Key"] for o in page.get("Contents", ()))
                prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
        except _S3Error as e:
            raise ArchiveError(self._url(prefix), f"cannot list objects: {e}") from None
        return keys, prefixes

    # ------------------------------------------------------------------ version and clusters

    def version(self, *, bootstrap: bool = False) -> int:
        """Check bucket access and version.txt (3); with `bootstrap` a missing version.txt is created."""
        if not self._checked:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except _S3Error as e:
                raise ArchiveError(self._url(""), f"cannot access S3 bucket {self.bucket!r}: {e}") from None
            self._checked = True
        raw = self._get("version.txt")
        if raw is None:
            if not bootstrap:
                raise ArchiveError(self._url("version.txt"), "archive version file missing")
            self._put("version.txt", f"{ARCHIVE_VERSION}\n".encode())
            log.info("%s: new job archive initialised (version %d)", self._url(""), ARCHIVE_VERSION)
            return ARCHIVE_VERSION
        value = raw.decode("utf-8", "replace").strip()
        if not value.isdecimal():
            raise ArchiveError(self._url("version.txt"), f"invalid archive version {value!r}, need 3")
        if int(value) != ARCHIVE_VERSION:
            raise ArchiveError(self._url("version.txt"), f"unsupported version {value}, need {ARCHIVE_VERSION}")
        return ARCHIVE_VERSION

    def clusters(self) -> list[str]:
        """Top-level prefixes of the bucket, sorted."""
        _, prefixes = self._list("", "/")
        return sorted(p.rstrip("/") for p in prefixes if p.rstrip("/") and not p.startswith("."))

    def _where(self, name: str, file: str = "cluster.json") -> str:
        return self._url(f"{name}/{file}")

    def _get_cluster(self, name: str) -> bytes:
        raw = self._get(f"{name}/cluster.json")
        if raw is None:
            raise ArchiveError(self._where(name), f"unknown cluster {name!r}: no cluster.json")
        return raw

    def _put_cluster(self, name: str, raw: bytes) -> None:
        check_name(name)
        self._put(f"{name}/cluster.json", raw)

    # ------------------------------------------------------------------ jobs

    def _where_job(self, key: JobKey, file: str) -> str:
        return self._url(f"{key.rel_dir()}/{file}")

    def job_keys(self, cluster: str | None = None) -> list[JobKey]:
        """Jobs found by listing ``meta.json`` objects (one paginated listing per cluster)."""
        out: list[JobKey] = []
        for c in [cluster] if cluster is not None else self.clusters():
            check_name(c)
            keys, _ = self._list(f"{c}/")
            for k in keys:
                parts = k.split("/")
                if len(parts) != 5 or parts[4] != META:
                    continue
                _, l1, l2, start, _ = parts
                if not (l1.isdecimal() and l2.isdecimal() and start.isdecimal()):
                    log.warning("%s: ignoring object outside the job layout", self._url(k))
                    continue
                out.append(JobKey(c, int(l1) * 1000 + int(l2), int(start)))
        out.sort()
        return out

    def iter_jobs(
        self,
        cluster: str | None = None,
        *,
        progress: Progress | None = None,
        on_error: Callable[[ArchiveError], None] | None = None,
    ) -> Iterator[JobMeta]:
        """Yield every job's meta in `job_keys` order, fetching up to 16 objects concurrently."""
        keys = self.job_keys(cluster)

        def fetch(key: JobKey) -> JobMeta | ArchiveError:
            try:
                return decode_meta(self._get_meta(key), self._where_job(key, META))
            except ArchiveError as e:
                return e

        with ThreadPoolExecutor(max_workers=16, thread_name_prefix="s3-iter") as pool:
            for i, result in enumerate(pool.map(fetch, keys), 1):
                if isinstance(result, ArchiveError):
                    report_skipped(result, on_error)
                if progress is not None:
                    progress(i, len(keys))
                if isinstance(result, JobMeta):
                    yield result

    def exists(self, cluster: str, job_id: int, start_time: int) -> bool:
        return self._head(f"{job_key(cluster, job_id, start_time).rel_dir()}/{META}")

    def _get_meta(self, key: JobKey) -> bytes:
        raw = self._get(f"{key.rel_dir()}/{META}")
        if raw is None:
            raise JobNotFoundError(self._where_job(key, META), "job not found (no meta.json)")
        return raw

    def _get_data(self, key: JobKey) -> tuple[bytes, bool]:
        raw = self._get(f"{key.rel_dir()}/{DATA_GZ}")
        if raw is not None:
            return raw, True
        raw = self._get(f"{key.rel_dir()}/{DATA}")
        if raw is None:
            raise JobNotFoundError(self._where_job(key, DATA), "no data.json or data.json.gz")
        return raw, False

    def _put_job(self, key: JobKey, meta: bytes, data: bytes, gz: bool) -> None:
        d = key.rel_dir()
        name, stale = (DATA_GZ, DATA) if gz else (DATA, DATA_GZ)
        self._put(f"{d}/{name}", data)
        if self._head(f"{d}/{stale}"):
            self._delete([f"{d}/{stale}"])
        self._put(f"{d}/{META}", meta)

    def _put_meta(self, key: JobKey, meta: bytes) -> None:
        if not self._head(f"{key.rel_dir()}/{META}"):
            raise JobNotFoundError(self._where_job(key, META), "job not found (no meta.json)")
        self._put(f"{key.rel_dir()}/{META}", meta)

    def _remove(self, key: JobKey) -> None:
        keys, _ = self._list(f"{key.rel_dir()}/")
        if not keys:
            raise JobNotFoundError(self._where_job(key, ""), "job not found")
        # meta.json first: a job without it no longer counts as archived
        keys.sort(key=lambda k: not k.endswith("/" + META))
        self._delete(keys)

    # ------------------------------------------------------------------ compression marker

    def _get_marker(self) -> int | None:
        raw = self._get("compress.txt")
        if raw is None:
            return None
        text = raw.decode("utf-8", "replace").strip()
        if not text.lstrip("-").isdecimal():
            log.warning("%s: ignoring invalid compression marker %r", self._url("compress.txt"), text)
            return None
        return int(text)

    def _put_marker(self, ts: int) -> None:
        self._put("compress.txt", str(ts).encode())
