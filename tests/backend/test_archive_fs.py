"""Tests of the file-backend job archive (ccbackend.archive.fs)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from ccbackend.archive import (
    COMPRESS_THRESHOLD,
    ArchiveConfig,
    ArchiveError,
    FsArchive,
    JobExistsError,
    JobNotFoundError,
    dumps_meta,
    open_archive,
    parse_archive_config,
)
from cccommon.config import ConfigError
from cccommon.schema import JobData
from tests.conftest import DATA, upstream_fixture

OWN = DATA / "backend" / "archive"
OWN_JOBS = [("testcl", 5, 1700007200), ("testcl", 4711, 1700000000)]
UPSTREAM_REL = "cc-backend/pkg/archive/testdata/archive"


@pytest.fixture
def arch(tmp_path: Path) -> FsArchive:
    """A writable copy of our own fixture archive."""
    root = tmp_path / "archive"
    shutil.copytree(OWN, root)
    return FsArchive(root)


def _big_data(arch: FsArchive) -> JobData:
    """Job data whose encoding is well above the compression threshold."""
    data = arch.load_data("testcl", 4711, 1700000000)
    for scopes in data.root.values():
        for metric in scopes.values():
            for s in metric.series:
                s.data = [float(i) for i in range(300)]
    return data


# ---------------------------------------------------------------- upstream fixture


def test_upstream_archive_loads() -> None:
    root = upstream_fixture(UPSTREAM_REL)
    a = FsArchive(root)
    assert a.version() == 3
    assert a.clusters() == ["alex", "emmy", "fritz"]
    for name in a.clusters():
        assert a.cluster(name).name == name
        assert a.cluster(name) is a.cluster(name)  # cached
    jobs = list(a.iter_jobs())
    assert [(m.cluster, m.job_id, m.start_time) for m in jobs] == [
        ("emmy", 1403244, 1608923076),
        ("emmy", 1404397, 1609300556),
    ]
    assert a.job_keys() == [(m.cluster, m.job_id, m.start_time) for m in jobs]
    for meta in jobs:
        path = a.job_dir(meta.cluster, meta.job_id, meta.start_time)
        assert a.load_meta(meta.cluster, meta.job_id, meta.start_time).job_id == meta.job_id
        data = a.load_data(meta.cluster, meta.job_id, meta.start_time)
        assert len(data) > 0
        assert a.data_path(path).name == "data.json.gz"


def test_upstream_job_dir_paths() -> None:
    root = upstream_fixture(UPSTREAM_REL)
    a = FsArchive(root)
    on_disk = sorted(p.parent for p in root.rglob("meta.json"))
    assert a.job_dirs() == on_disk
    assert a.job_dir("emmy", 1403244, 1608923076) == root / "emmy" / "1403" / "244" / "1608923076"
    assert a.job_dir("emmy", 1404397, 1609300556) == root / "emmy" / "1404" / "397" / "1609300556"


def test_job_dir_padding(tmp_path: Path) -> None:
    a = FsArchive(tmp_path)
    assert a.job_dir("c", 123, 7) == tmp_path / "c" / "0" / "123" / "7"
    assert a.job_dir("c", 5, 7) == tmp_path / "c" / "0" / "005" / "7"
    assert a.job_dir("c", 1000, 7) == tmp_path / "c" / "1" / "000" / "7"
    for bad in ("", "..", ".hidden", "a/b"):
        with pytest.raises(ArchiveError):
            a.job_dir(bad, 1, 1)


# ---------------------------------------------------------------- own fixture, reading


def test_own_fixture_loads() -> None:
    a = FsArchive(OWN)
    assert a.version() == 3
    assert a.clusters() == ["testcl"]
    jobs = list(a.iter_jobs("testcl"))
    assert [(m.cluster, m.job_id, m.start_time) for m in jobs] == OWN_JOBS
    assert a.data_path(a.job_dir(*OWN_JOBS[0])).name == "data.json.gz"
    assert a.data_path(a.job_dir(*OWN_JOBS[1])).name == "data.json"
    for job in OWN_JOBS:
        assert "cpu_load" in a.load_data(*job)
        assert a.exists(*job)


def test_progress_callback() -> None:
    calls: list[tuple[int, int]] = []
    jobs = list(FsArchive(OWN).iter_jobs(progress=lambda done, total: calls.append((done, total))))
    assert len(jobs) == 2
    assert calls == [(1, 2), (2, 2)]


def test_version_errors(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(ArchiveError, match="version.txt: archive version file missing"):
        FsArchive(tmp_path).version()
    with pytest.raises(ArchiveError, match="not empty"):
        FsArchive(tmp_path).version(bootstrap=True)
    (tmp_path / "version.txt").write_text("2\n")
    with pytest.raises(ArchiveError, match="unsupported version 2, need 3"):
        FsArchive(tmp_path).version()
    (tmp_path / "version.txt").write_text("three")
    with pytest.raises(ArchiveError, match="invalid archive version"):
        FsArchive(tmp_path).version()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".keep").touch()
    assert FsArchive(empty).version(bootstrap=True) == 3
    assert (empty / "version.txt").read_text() == "3\n"


def test_missing_job_and_cluster(arch: FsArchive) -> None:
    with pytest.raises(JobNotFoundError, match="meta.json"):
        arch.load_meta("testcl", 1, 1)
    with pytest.raises(JobNotFoundError):
        arch.load_data("testcl", 1, 1)
    with pytest.raises(ArchiveError, match="unknown cluster 'nope'"):
        arch.cluster("nope")


# ---------------------------------------------------------------- writing


def test_round_trip(arch: FsArchive) -> None:
    meta = arch.load_meta("testcl", 4711, 1700000000)
    data = arch.load_data("testcl", 4711, 1700000000)
    meta.job_id, meta.start_time = 1234567, 1710000000
    key = arch.store_job(meta, data)
    assert key == ("testcl", 1234567, 1710000000)
    d = arch.job_dir(*key)
    assert d == arch.root / "testcl" / "1234" / "567" / "1710000000"
    back = arch.load_meta("testcl", 1234567, 1710000000)
    assert (d / "meta.json").read_bytes() == dumps_meta(meta)
    same = ("user", "project", "sub_cluster", "resources", "statistics", "meta_data", "footprint", "duration")
    assert {k: getattr(back, k) for k in same} == {k: getattr(meta, k) for k in same}
    assert back.tags is not None and back.tags[0].name == "a.out"
    assert not back.model_extra  # keys Go's schema.Job lacks are dropped, as a Go round trip does
    assert arch.load_data("testcl", 1234567, 1710000000).model_dump() == data.model_dump()
    raw = (d / "meta.json").read_bytes()
    assert raw.endswith(b"\n") and b"\n" not in raw[:-1]  # compact, one line
    assert json.loads(raw)["jobId"] == 1234567
    assert not [p for p in d.iterdir() if p.name.startswith(".")]  # no temp files left
    assert [m.job_id for m in arch.iter_jobs()] == [5, 4711, 1234567]


def test_modes(arch: FsArchive) -> None:
    old = os.umask(0o077)
    try:
        meta = arch.load_meta("testcl", 4711, 1700000000)
        meta.job_id = 98001
        d = arch.job_dir(*arch.store_job(meta, arch.load_data("testcl", 4711, 1700000000)))
    finally:
        os.umask(old)
    for p in (d, d.parent, d.parent.parent):
        assert stat.S_IMODE(p.stat().st_mode) == 0o755
    for p in d.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_compression_choice(arch: FsArchive) -> None:
    meta = arch.load_meta("testcl", 4711, 1700000000)
    small = arch.load_data("testcl", 4711, 1700000000)
    big = _big_data(arch)

    meta.job_id = 1
    d = arch.job_dir(*arch.store_job(meta, small, compress=True))  # small data stays plain
    assert sorted(p.name for p in d.iterdir()) == ["data.json", "meta.json"]
    assert (d / "data.json").stat().st_size <= COMPRESS_THRESHOLD

    meta.job_id = 2
    d = arch.job_dir(*arch.store_job(meta, big, compress=True))
    assert sorted(p.name for p in d.iterdir()) == ["data.json.gz", "meta.json"]
    assert len(gzip.decompress((d / "data.json.gz").read_bytes())) > COMPRESS_THRESHOLD
    assert arch.load_data("testcl", 2, meta.start_time).model_dump() == big.model_dump()

    meta.job_id = 3
    d = arch.job_dir(*arch.store_job(meta, big, compress=False))
    assert sorted(p.name for p in d.iterdir()) == ["data.json", "meta.json"]

    # replacing plain by compressed data leaves exactly one data file
    d = arch.job_dir(*arch.store_job(meta, big, compress=True, overwrite=True))
    assert sorted(p.name for p in d.iterdir()) == ["data.json.gz", "meta.json"]


def test_refuse_overwrite(arch: FsArchive) -> None:
    meta = arch.load_meta("testcl", 4711, 1700000000)
    data = arch.load_data("testcl", 4711, 1700000000)
    before = (arch.job_dir("testcl", 4711, 1700000000) / "meta.json").read_bytes()
    with pytest.raises(JobExistsError, match="already archived"):
        arch.store_job(meta, data)
    assert (arch.job_dir("testcl", 4711, 1700000000) / "meta.json").read_bytes() == before
    meta.user = "carol"
    arch.store_job(meta, data, overwrite=True)
    assert arch.load_meta("testcl", 4711, 1700000000).user == "carol"


def test_store_unknown_cluster(arch: FsArchive) -> None:
    meta = arch.load_meta("testcl", 4711, 1700000000)
    meta.cluster = "other"
    with pytest.raises(ArchiveError, match="unknown cluster"):
        arch.store_job(meta, arch.load_data("testcl", 4711, 1700000000))
    assert not (arch.root / "other").exists()


def test_update_meta(arch: FsArchive) -> None:
    meta = arch.update_meta(
        "testcl",
        4711,
        1700000000,
        tags=[{"type": "app", "name": "vasp", "scope": "global", "id": 17}],
        meta_data={"message": "hello", "jobName": "renamed"},
    )
    raw = json.loads((arch.job_dir("testcl", 4711, 1700000000) / "meta.json").read_bytes())
    assert raw["tags"] == [{"type": "app", "name": "vasp", "scope": "global", "id": 0}]
    assert raw["metaData"]["message"] == "hello"
    assert raw["metaData"]["jobName"] == "renamed"
    assert raw["metaData"]["jobScript"].startswith("#!/bin/sh")
    assert meta.meta_data is not None and meta.meta_data["message"] == "hello"
    with pytest.raises(JobNotFoundError):
        arch.update_meta("testcl", 999, 1, tags=[])


# ---------------------------------------------------------------- removal and retention


def test_delete_job(arch: FsArchive) -> None:
    arch.delete_job("testcl", 5, 1700007200)
    assert not (arch.root / "testcl" / "0").exists()  # empty L2 and L1 removed
    assert (arch.root / "testcl" / "cluster.json").is_file()
    assert [m.job_id for m in arch.iter_jobs()] == [4711]
    with pytest.raises(JobNotFoundError):
        arch.delete_job("testcl", 5, 1700007200)


def test_delete_keeps_shared_parents(arch: FsArchive) -> None:
    meta = arch.load_meta("testcl", 5, 1700007200)
    meta.start_time = 1700009999
    arch.store_job(meta, arch.load_data("testcl", 5, 1700007200))
    arch.delete_job("testcl", 5, 1700007200)
    assert (arch.root / "testcl" / "0" / "005" / "1700009999" / "meta.json").is_file()


def test_clean(arch: FsArchive) -> None:
    assert arch.clean(1700000000) == 0
    assert arch.clean(1700000001) == 1
    assert [m.job_id for m in arch.iter_jobs()] == [5]
    assert not (arch.root / "testcl" / "4").exists()
    assert arch.clean(2_000_000_000) == 1
    assert list(arch.iter_jobs()) == []
    assert arch.clusters() == ["testcl"]


def test_move(arch: FsArchive, tmp_path: Path) -> None:
    target = tmp_path / "target"
    src_dir = arch.job_dir("testcl", 4711, 1700000000)
    files = {p.name: p.read_bytes() for p in src_dir.iterdir()}
    assert arch.move(1700000001, target) == 1
    t = FsArchive(target)
    assert t.version() == 3
    assert t.clusters() == ["testcl"]
    assert t.cluster("testcl").name == "testcl"
    moved = t.job_dir("testcl", 4711, 1700000000)
    assert {p.name: p.read_bytes() for p in moved.iterdir()} == files  # byte-for-byte
    assert not arch.exists("testcl", 4711, 1700000000)
    assert [m.job_id for m in arch.iter_jobs()] == [5]
    # a second move into the same (now version-3) target adds the remaining job
    assert arch.move(2_000_000_000, t) == 1
    assert [m.job_id for m in t.iter_jobs()] == [5, 4711]
    assert list(arch.iter_jobs()) == []


def test_copy_keeps_source(arch: FsArchive, tmp_path: Path) -> None:
    assert arch.copy(2_000_000_000, tmp_path / "copy") == 2
    assert len(list(arch.iter_jobs())) == 2
    assert len(list(FsArchive(tmp_path / "copy").iter_jobs())) == 2


def test_move_target_checks(arch: FsArchive, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="overlap"):
        arch.move(2_000_000_000, arch.root / "retention")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "version.txt").write_text("2\n")
    with pytest.raises(ArchiveError, match="unsupported version 2"):
        arch.move(2_000_000_000, bad)
    assert len(list(arch.iter_jobs())) == 2


# ---------------------------------------------------------------- corrupt files


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'{"jobId": "x"}', b"\xff\xfe", b""],
    ids=["syntax", "wrong-type", "invalid-field", "binary", "empty"],
)
def test_corrupt_meta(arch: FsArchive, content: bytes) -> None:
    bad = arch.job_dir("testcl", 5, 1700007200) / "meta.json"
    bad.write_bytes(content)
    with pytest.raises(ArchiveError) as ei:
        arch.load_meta("testcl", 5, 1700007200)
    assert ei.value.path == str(bad)
    assert str(bad) in str(ei.value)
    errors: list[ArchiveError] = []
    jobs = list(arch.iter_jobs(on_error=errors.append))
    assert [m.job_id for m in jobs] == [4711]
    assert [e.path for e in errors] == [str(bad)]
    # default: logged and skipped
    assert [m.job_id for m in arch.iter_jobs()] == [4711]
    # the healthy job is untouched and cleaning still works by directory name
    assert arch.load_data("testcl", 4711, 1700000000)
    assert arch.clean(1700007201) == 2


def test_corrupt_data(arch: FsArchive) -> None:
    gz = arch.job_dir("testcl", 5, 1700007200) / "data.json.gz"
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(ArchiveError, match="data.json.gz"):
        arch.load_data("testcl", 5, 1700007200)
    gz.write_bytes(gzip.compress(b'{"cpu_load": 5}'))
    with pytest.raises(ArchiveError, match="corrupt job data"):
        arch.load_data("testcl", 5, 1700007200)
    assert "cpu_load" in arch.load_data("testcl", 4711, 1700000000)


def test_incomplete_job_dir_reported(arch: FsArchive) -> None:
    partial = arch.root / "testcl" / "9" / "999" / "1700000500"
    partial.mkdir(parents=True)
    (arch.root / "testcl" / "9" / "notanumber").mkdir()
    errors: list[ArchiveError] = []
    assert [m.job_id for m in arch.iter_jobs(on_error=errors.append)] == [5, 4711]
    assert len(errors) == 1 and isinstance(errors[0], JobNotFoundError)
    assert errors[0].path == str(partial / "meta.json")


def test_corrupt_cluster_json(arch: FsArchive) -> None:
    (arch.root / "testcl" / "cluster.json").write_text('{"name": "testcl"}')
    with pytest.raises(ArchiveError, match="cluster.json"):
        arch.cluster("testcl")


# ---------------------------------------------------------------- config and factory


def test_archive_config_spellings(caplog: pytest.LogCaptureFixture) -> None:
    upstream = parse_archive_config(
        {
            "kind": "file",
            "path": "./var/job-archive",
            "compression": 14,
            "retention": {"policy": "move", "age": 30, "include-db": False, "target-path": "/srv/old"},
        }
    )
    guide = parse_archive_config(
        {"kind": "file", "retention": {"policy": "move", "includeDB": False, "location": "/srv/old"}, "x-site": 1}
    )
    for cfg in (upstream, guide):
        assert cfg.retention is not None
        assert cfg.retention.include_db is False and cfg.retention.target_path == "/srv/old"
        assert cfg.target_config() == ArchiveConfig(kind="file", path="/srv/old")
    assert upstream.compression == 14 and upstream.retention is not None and upstream.retention.age == 30
    assert guide.compression == 7 and guide.retention is not None and guide.retention.age == 7  # guide default
    assert "unknown key 'x-site' ignored" in caplog.text
    defaults = parse_archive_config({})
    assert (defaults.kind, defaults.path, defaults.retention) == ("file", "./var/job-archive", None)
    s3 = parse_archive_config(
        {"kind": "s3", "bucket": "b", "accessKey": "k", "secret-key": "s", "usePathStyle": True, "region": ""}
    )
    assert (s3.access_key, s3.secret_key, s3.use_path_style, s3.region) == ("k", "s", True, "us-east-1")
    assert parse_archive_config({"kind": "sqlite", "dbPath": "a.db"}).db_path == "a.db"


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"kind": "tape"}, "field 'kind'"),
        ({"kind": "sqlite"}, "needs 'db-path'"),
        ({"kind": "s3"}, "needs 'bucket'"),
        ({"retention": {"policy": "copy"}}, "needs 'target-path'"),
        ({"retention": {"policy": "move", "target-kind": "s3"}}, "needs 'target-bucket'"),
        ({"retention": {"policy": "sometimes"}}, "field 'retention.policy'"),
        ({"retention": {"policy": "delete", "age": -1}}, "field 'retention.age'"),
        ({"retention": {"policy": "delete", "interval": "daily"}}, "invalid duration 'daily'"),
        ({"compression": "weekly"}, "field 'compression'"),
    ],
)
def test_archive_config_errors(cfg: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as ei:
        parse_archive_config(cfg, file="/etc/cc/config.json")
    assert "/etc/cc/config.json" in str(ei.value)


def test_open_archive_file(tmp_path: Path) -> None:
    a = open_archive(ArchiveConfig(kind="file", path=str(tmp_path / "new")))
    assert isinstance(a, FsArchive)
    assert (tmp_path / "new" / "version.txt").read_text() == "3\n"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "version.txt").write_text("1\n")
    with pytest.raises(ArchiveError, match="unsupported version 1"):
        open_archive(ArchiveConfig(kind="file", path=str(bad)))
