"""Tests of the SQLite archive backend, and the contract every archive backend must meet.

`BackendContract` is reused by the S3 tests (and runs against the file backend here too); each
subclass provides a `backend` fixture yielding an empty, not yet bootstrapped archive.
"""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from ccbackend.archive import (
    COMPRESS_THRESHOLD,
    ArchiveBackend,
    ArchiveConfig,
    ArchiveError,
    FsArchive,
    JobExistsError,
    JobNotFoundError,
    dumps_data,
    dumps_meta,
    open_archive,
)
from ccbackend.archive.sqlite import SqliteArchive
from tests.conftest import DATA, upstream_fixture

OWN = DATA / "backend" / "archive"
UPSTREAM_REL = "cc-backend/pkg/archive/testdata/archive"
EMMY_KEYS = [("emmy", 1403244, 1608923076), ("emmy", 1404397, 1609300556)]


def _own() -> FsArchive:
    return FsArchive(OWN)


def _fill_own(a: ArchiveBackend) -> None:
    """Copy our own small fixture archive (cluster testcl, jobs 5 and 4711) into `a`."""
    src = _own()
    a.version(bootstrap=True)
    a.store_cluster(src._get_cluster("testcl"))
    for key in src.job_keys():
        a.store_job(src.load_meta_dict(*key), src.load_data(*key))


def _big(data: dict) -> dict:
    for scopes in data.values():
        for jm in scopes.values():
            for s in jm["series"]:
                s["data"] = [float(i) for i in range(300)]
    return data


class BackendContract:
    """Behaviour shared by the file, SQLite and S3 backends."""

    def test_version_bootstrap(self, backend: ArchiveBackend) -> None:
        with pytest.raises(ArchiveError, match="version"):
            backend.version()
        assert backend.version(bootstrap=True) == 3
        assert backend.version() == 3
        assert backend.clusters() == []

    def test_clusters(self, backend: ArchiveBackend) -> None:
        backend.version(bootstrap=True)
        src = _own()
        backend.store_cluster(src.cluster("testcl"))
        assert backend.clusters() == ["testcl"]
        c = backend.cluster("testcl")
        assert c.name == "testcl" and c is backend.cluster("testcl")
        assert c.model_dump() == src.cluster("testcl").model_dump()
        with pytest.raises(ArchiveError, match="unknown cluster 'nope'"):
            backend.cluster("nope")

    @pytest.mark.parametrize("bad", ["..", "../x", "a/b", ".hidden", "", "a\\b", "x\0y"])
    def test_path_traversal_refused(self, backend: ArchiveBackend, bad: str) -> None:
        backend.version(bootstrap=True)
        with pytest.raises(ArchiveError, match="invalid cluster name"):
            backend.cluster(bad)
        with pytest.raises(ArchiveError, match="invalid cluster name"):
            backend.store_cluster({"name": bad, "metricConfig": [], "subClusters": []})
        with pytest.raises(ArchiveError, match="invalid cluster name"):
            backend.load_meta(bad, 1, 1)
        with pytest.raises(ArchiveError, match="invalid cluster name"):
            backend.exists(bad, 1, 1)
        meta = _own().load_meta_dict("testcl", 4711, 1700000000) | {"cluster": bad}
        with pytest.raises(ArchiveError, match="invalid cluster name"):
            backend.store_job(meta, {})
        assert backend.clusters() == []

    def test_upstream_round_trip(self, backend: ArchiveBackend) -> None:
        src = FsArchive(upstream_fixture(UPSTREAM_REL))
        backend.version(bootstrap=True)
        backend.store_cluster(src._get_cluster("emmy"))
        for key in EMMY_KEYS:
            meta, data = src.load_meta_dict(*key), src.load_data(*key)
            assert backend.store_job(meta, data) == key
            assert backend.exists(*key)
            assert backend.load_meta_dict(*key) == orjson.loads(dumps_meta(meta))
            assert dumps_meta(backend.load_meta(*key)) == dumps_meta(meta)
            payload, gz = backend._get_data(backend_key(key))
            assert gz  # megabytes of data: compressed
            assert gzip.decompress(payload) == dumps_data(data)
            assert dumps_data(backend.load_data(*key)) == dumps_data(data)
        assert [(m.cluster, m.job_id, m.start_time) for m in backend.iter_jobs()] == EMMY_KEYS
        assert backend.job_keys("emmy") == EMMY_KEYS

    def test_compression_rule(self, backend: ArchiveBackend) -> None:
        _fill_own(backend)
        meta = backend.load_meta_dict("testcl", 4711, 1700000000)
        small = orjson.loads(dumps_data(backend.load_data("testcl", 4711, 1700000000)))
        assert len(dumps_data(small)) <= COMPRESS_THRESHOLD
        big = _big(orjson.loads(dumps_data(small)))
        for job_id, data, compress, want_gz in ((1, small, True, False), (2, big, True, True), (3, big, False, False)):
            key = backend.store_job(meta | {"jobId": job_id}, data, compress=compress)
            payload, gz = backend._get_data(key)
            assert gz is want_gz
            assert (gzip.decompress(payload) if gz else payload) == dumps_data(data)
            assert dumps_data(backend.load_data(*key)) == dumps_data(data)
        # replacing plain by compressed data leaves the compressed variant only
        key = backend.store_job(meta | {"jobId": 3}, big, overwrite=True)
        assert backend._get_data(key)[1] is True
        # compression task: plain data > 2000 bytes in the window gets gzipped, small data stays
        backend.store_job(meta | {"jobId": 3}, big, compress=False, overwrite=True)
        assert backend.compress(0, 1700000001) == 1
        assert backend._get_data(key)[1] is True
        assert backend._get_data(backend_key(("testcl", 1, 1700000000)))[1] is False
        assert backend.compress(0, 1700000001) == 0
        assert backend.swap_compress_marker(1800000000) == 1800000000  # no marker yet: the new one
        assert backend.swap_compress_marker(1900000000) == 1800000000

    def test_refuse_overwrite(self, backend: ArchiveBackend) -> None:
        _fill_own(backend)
        meta = backend.load_meta_dict("testcl", 4711, 1700000000)
        data = backend.load_data("testcl", 4711, 1700000000)
        with pytest.raises(JobExistsError, match="already archived"):
            backend.store_job(meta | {"user": "mallory"}, data)
        assert backend.load_meta("testcl", 4711, 1700000000).user == "alice"
        backend.store_job(meta | {"user": "carol"}, data, overwrite=True)
        assert backend.load_meta("testcl", 4711, 1700000000).user == "carol"

    def test_store_unknown_cluster(self, backend: ArchiveBackend) -> None:
        _fill_own(backend)
        meta = backend.load_meta_dict("testcl", 4711, 1700000000) | {"cluster": "other"}
        with pytest.raises(ArchiveError, match="unknown cluster"):
            backend.store_job(meta, {})
        assert backend.clusters() == ["testcl"]

    def test_iter_jobs(self, backend: ArchiveBackend) -> None:
        _fill_own(backend)
        calls: list[tuple[int, int]] = []
        jobs = list(backend.iter_jobs(progress=lambda d, t: calls.append((d, t))))
        assert [(m.cluster, m.job_id, m.start_time) for m in jobs] == [
            ("testcl", 5, 1700007200),
            ("testcl", 4711, 1700000000),
        ]
        assert calls == [(1, 2), (2, 2)]
        assert [m.job_id for m in backend.iter_jobs("testcl")] == [5, 4711]
        assert jobs[1].meta_data is not None and jobs[1].meta_data["jobName"] == "test"

    def test_update_meta(self, backend: ArchiveBackend) -> None:
        _fill_own(backend)
        meta = backend.update_meta(
            "testcl",
            4711,
            1700000000,
            tags=[{"type": "app", "name": "vasp", "scope": "global", "id": 17}],
            meta_data={"message": "hello", "jobName": "renamed"},
        )
        raw = backend.load_meta_dict("testcl", 4711, 1700000000)
        assert raw["tags"] == [{"type": "app", "name": "vasp", "scope": "global", "id": 0}]
        assert raw["metaData"] == {"jobName": "renamed", "jobScript": "#!/bin/sh\nsrun ./a.out\n", "message": "hello"}
        assert meta.meta_data == raw["metaData"]
        backend.update_meta("testcl", 4711, 1700000000, tags=[])
        assert "tags" not in backend.load_meta_dict("testcl", 4711, 1700000000)  # omitempty
        with pytest.raises(JobNotFoundError):
            backend.update_meta("testcl", 999, 1, tags=[])

    def test_delete_job(self, backend: ArchiveBackend) -> None:
        _fill_own(backend)
        backend.delete_job("testcl", 5, 1700007200)
        assert not backend.exists("testcl", 5, 1700007200)
        assert [m.job_id for m in backend.iter_jobs()] == [4711]
        assert backend.clusters() == ["testcl"]
        with pytest.raises(JobNotFoundError):
            backend.delete_job("testcl", 5, 1700007200)
        with pytest.raises(JobNotFoundError):
            backend.load_meta("testcl", 5, 1700007200)
        with pytest.raises(JobNotFoundError):
            backend.load_data("testcl", 5, 1700007200)

    def test_clean(self, backend: ArchiveBackend) -> None:
        _fill_own(backend)
        assert backend.clean(1700000000) == 0
        assert backend.clean(1700000001) == 1
        assert [m.job_id for m in backend.iter_jobs()] == [5]
        assert backend.clean(2_000_000_000, cluster="testcl") == 1
        assert list(backend.iter_jobs()) == []

    def test_move_and_copy_to_file_archive(self, backend: ArchiveBackend, tmp_path: Path) -> None:
        _fill_own(backend)
        target = FsArchive(tmp_path / "target")
        raw_meta = backend._get_meta(backend_key(("testcl", 4711, 1700000000)))
        assert backend.move(1700000001, target) == 1
        assert not backend.exists("testcl", 4711, 1700000000)
        assert target.clusters() == ["testcl"] and target.version() == 3
        assert target._get_meta(backend_key(("testcl", 4711, 1700000000))) == raw_meta  # byte for byte
        assert backend.copy(2_000_000_000, target) == 1
        assert [m.job_id for m in backend.iter_jobs()] == [5]
        assert [m.job_id for m in target.iter_jobs()] == [5, 4711]
        with pytest.raises(ArchiveError, match="must not be the archive itself"):
            backend.move(2_000_000_000, backend)


def backend_key(key: tuple[str, int, int]):  # noqa: ANN201 - tiny helper for the private primitives
    from ccbackend.archive.base import job_key

    return job_key(*key)


# ---------------------------------------------------------------- the backends here


class TestFsContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[ArchiveBackend]:
        yield FsArchive(tmp_path / "archive")


class TestSqliteContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[ArchiveBackend]:
        a = SqliteArchive(tmp_path / "archive.db")
        yield a
        a.close()


# ---------------------------------------------------------------- SQLite specifics


def test_sqlite_tables_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "archive.db"
    a = open_archive(ArchiveConfig.model_validate({"kind": "sqlite", "db-path": str(path)}))
    assert isinstance(a, SqliteArchive)
    _fill_own(a)
    assert a._one("PRAGMA journal_mode") == ("wal",)
    assert a._one("PRAGMA busy_timeout") == (60000,)
    a.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT value FROM metadata WHERE key = 'version'").fetchone() == ("3",)
        rows = db.execute(
            "SELECT job_id, cluster, start_time, data_compressed, length(meta_json) > 0 FROM jobs ORDER BY job_id"
        ).fetchall()
        assert rows == [(5, "testcl", 1700007200, 0, 1), (4711, "testcl", 1700000000, 0, 1)]
        cols = [r[1] for r in db.execute("PRAGMA table_info(jobs)")]
        assert cols == [
            "id", "job_id", "cluster", "start_time", "meta_json", "data_json", "data_compressed",
            "created_at", "updated_at",
        ]  # fmt: skip
        meta = db.execute("SELECT meta_json FROM jobs WHERE job_id = 4711").fetchone()[0]
        assert meta == dumps_meta(FsArchive(OWN).load_meta_dict("testcl", 4711, 1700000000))
        assert db.execute("SELECT name FROM clusters").fetchall() == [("testcl",)]
        indexes = {r[1] for r in db.execute("PRAGMA index_list(jobs)")}
        assert {"idx_jobs_cluster", "idx_jobs_start_time", "idx_jobs_cluster_start", "idx_jobs_lookup"} <= indexes
    finally:
        db.close()
    # reopen: the data is still there, the version check passes
    b = SqliteArchive(path)
    assert b.version() == 3 and [m.job_id for m in b.iter_jobs()] == [5, 4711]
    b.close()


def test_sqlite_wrong_version(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    SqliteArchive(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO metadata (key, value) VALUES ('version', '2')")
    db.commit()
    db.close()
    a = SqliteArchive(path)
    with pytest.raises(ArchiveError, match="unsupported version 2, need 3"):
        a.version(bootstrap=True)
    a.close()


def test_sqlite_iter_batches_and_corrupt_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ccbackend.archive.sqlite as mod

    monkeypatch.setattr(mod, "_ITER_BATCH", 2)  # exercise the keyset pagination
    a = SqliteArchive(tmp_path / "a.db")
    _fill_own(a)
    meta = a.load_meta_dict("testcl", 4711, 1700000000)
    data = a.load_data("testcl", 4711, 1700000000)
    for j in range(6, 11):
        a.store_job(meta | {"jobId": j}, data)
    a._exec("UPDATE jobs SET meta_json = ? WHERE job_id = 8", (b"{broken",))
    errors: list[ArchiveError] = []
    ids = [m.job_id for m in a.iter_jobs(on_error=errors.append)]
    assert ids == [5, 6, 7, 9, 10, 4711]
    assert len(errors) == 1 and "testcl/0/008/1700000000/meta.json" in errors[0].path
    assert "corrupt meta.json" in str(errors[0])
    a.close()


def test_sqlite_open_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(ArchiveError, match="cannot open SQLite archive"):
        SqliteArchive(tmp_path / "dir.db")
