"""Tests of the S3 archive backend against a real S3-compatible HTTP server (moto_server on a free port)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from ccbackend.archive import ArchiveBackend, ArchiveConfig, ArchiveError, open_archive
from tests.backend.test_archive_sqlite import BackendContract, _fill_own
from tests.conftest import VENV_BIN, free_port, missing_service, wait_port

_names = itertools.count()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server started for this module."""
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError as e:
        missing_service(f"boto3 / moto[server] not installed: {e}")
    exe = VENV_BIN / "moto_server"
    if not exe.exists():
        found = shutil.which("moto_server")
        if found is None:
            missing_service("moto_server not found (pip install 'moto[server]')")
        exe = type(exe)(str(found))
    port = free_port()
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if not wait_port("127.0.0.1", port, timeout=30):
            missing_service("moto_server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _config(endpoint: str, bucket: str) -> ArchiveConfig:
    return ArchiveConfig.model_validate(
        {
            "kind": "s3",
            "endpoint": endpoint,
            "bucket": bucket,
            "access-key": "testing",
            "secret-key": "testing",
            "region": "us-east-1",
            "use-path-style": True,
        }
    )


def _new_bucket(endpoint: str) -> str:
    import boto3

    name = f"cc-archive-{next(_names)}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    client.create_bucket(Bucket=name)
    client.close()
    return name


class TestS3Contract(BackendContract):
    @pytest.fixture
    def backend(self, s3_endpoint: str) -> Iterator[ArchiveBackend]:
        from ccbackend.archive.s3 import S3Archive

        a = S3Archive.from_config(_config(s3_endpoint, _new_bucket(s3_endpoint)))
        yield a
        a.close()


def _keys(a: ArchiveBackend) -> list[str]:
    from ccbackend.archive.s3 import S3Archive

    assert isinstance(a, S3Archive)
    return sorted(a._list("")[0])


def test_s3_object_layout(s3_endpoint: str) -> None:
    a = open_archive(_config(s3_endpoint, _new_bucket(s3_endpoint)))
    _fill_own(a)
    assert _keys(a) == [
        "testcl/0/005/1700007200/data.json",
        "testcl/0/005/1700007200/meta.json",
        "testcl/4/711/1700000000/data.json",
        "testcl/4/711/1700000000/meta.json",
        "testcl/cluster.json",
        "version.txt",
    ]
    assert a._get("version.txt") == b"3\n"  # type: ignore[attr-defined]
    a.delete_job("testcl", 5, 1700007200)
    assert not [k for k in _keys(a) if k.startswith("testcl/0/")]
    a.swap_compress_marker(1700000000)
    assert a._get("compress.txt") == b"1700000000"  # type: ignore[attr-defined]
    assert a.clusters() == ["testcl"]  # compress.txt and version.txt are not clusters
    a.close()


def test_s3_version_and_bucket_errors(s3_endpoint: str) -> None:
    with pytest.raises(ArchiveError, match="cannot access S3 bucket 'no-such-bucket'"):
        open_archive(_config(s3_endpoint, "no-such-bucket"))
    bucket = _new_bucket(s3_endpoint)
    a = open_archive(_config(s3_endpoint, bucket))
    a._put("version.txt", b"2\n")  # type: ignore[attr-defined]
    with pytest.raises(ArchiveError, match="unsupported version 2, need 3"):
        open_archive(_config(s3_endpoint, bucket))
    a.close()


def test_s3_move_between_buckets(s3_endpoint: str) -> None:
    src = open_archive(_config(s3_endpoint, _new_bucket(s3_endpoint)))
    dst = open_archive(_config(s3_endpoint, _new_bucket(s3_endpoint)))
    _fill_own(src)
    assert src.move(2_000_000_000, dst) == 2
    assert [m.job_id for m in dst.iter_jobs()] == [5, 4711]
    assert list(src.iter_jobs()) == []
    assert dst.cluster("testcl").name == "testcl"
    src.close()
    dst.close()


def test_s3_iter_skips_corrupt_meta(s3_endpoint: str) -> None:
    a = open_archive(_config(s3_endpoint, _new_bucket(s3_endpoint)))
    _fill_own(a)
    a._put("testcl/0/005/1700007200/meta.json", b"{not json")  # type: ignore[attr-defined]
    a._put("testcl/junk/x/y/meta.json", b"{}")  # type: ignore[attr-defined] - outside the layout: ignored
    errors: list[ArchiveError] = []
    assert [m.job_id for m in a.iter_jobs(on_error=errors.append)] == [4711]
    assert [e.path for e in errors] == [f"s3://{a.bucket}/testcl/0/005/1700007200/meta.json"]  # type: ignore[attr-defined]
    with pytest.raises(ArchiveError, match="corrupt meta.json"):
        a.load_meta("testcl", 5, 1700007200)
    a.close()
