"""Cleanup of old checkpoint files (spec metricstore §12.7, §14 item 14): delete, Parquet, zip."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ccmetricstore import archive, files
from ccmetricstore.archive import PARQUET_SCHEMA, cleanup_delete, cleanup_parquet, cleanup_zip, parse_scope
from ccmetricstore.checkpoint_json import encode_json
from ccmetricstore.snapshot import SeriesSnapshot, Snapshot

NAN = float("nan")


def series(values, start: int = 1000, frequency: int = 60) -> SeriesSnapshot:
    return SeriesSnapshot(frequency=frequency, start=start, data=np.array(values, dtype=np.float64))


def roundtrip_snapshot() -> Snapshot:
    """Upstream's TestParquetArchiveRoundtrip content: 3 + 3 + 3 values."""
    return Snapshot(
        metrics={"cpu_load": series([0.5, 0.7, 0.9]), "mem_used": series([45.0, 46.0, 47.0])},
        children={"socket0": Snapshot(metrics={"mem_bw": series([100.0, 110.0, 120.0])})},
        from_=1000,
        to=1180,
    )


def write(root: Path, cluster: str, host: str, ts: int, snap: Snapshot, fmt: str = "json") -> Path:
    return files.write_snapshot_file(root, cluster, host, ts, snap, fmt)  # type: ignore[arg-type]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("name", "scope", "scope_id"),
    [
        ("socket0", "socket", "0"),
        ("socket12", "socket", "12"),
        ("core0", "core", "0"),
        ("core127", "core", "127"),
        ("cpu0", "hwthread", "0"),
        ("hwthread5", "hwthread", "5"),
        ("memoryDomain0", "memoryDomain", "0"),
        ("accelerator0", "accelerator", "0"),
        ("accelerator00000000:49:00.0", "accelerator", "00000000:49:00.0"),
        ("acceleratorGPU-6f2a", "acceleratorGPU-6f2a", ""),
        ("unknown", "unknown", ""),
        ("socketX", "socketX", ""),
        ("socket", "socket", ""),
        ("", "", ""),
    ],
)
def test_parse_scope(name: str, scope: str, scope_id: str) -> None:
    assert parse_scope(name) == (scope, scope_id)


def read_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_nan_values_produce_no_rows(tmp_path: Path) -> None:
    snap = Snapshot(
        metrics={"cpu_load": series([0.5, 0.7, NAN])},
        children={"socket0": Snapshot(metrics={"mem_bw": series([100.0, NAN, 200.0])})},
        from_=1000,
        to=1060,
    )
    ck, out = tmp_path / "ck", tmp_path / "archive"
    write(ck, "fritz", "node001", 1000, snap)
    assert cleanup_parquet(ck, out, 2000) == 1
    rows = read_rows(out / "fritz" / "2000.parquet")
    assert len(rows) == 4
    assert rows[0] == {
        "cluster": "fritz",
        "hostname": "node001",
        "metric": "cpu_load",
        "scope": "node",
        "scope_id": "",
        "timestamp": 1000,
        "frequency": 60,
        "value": 0.5,
    }
    assert [(r["metric"], r["scope"], r["scope_id"], r["timestamp"]) for r in rows[2:]] == [
        ("mem_bw", "socket", "0", 1000),
        ("mem_bw", "socket", "0", 1120),
    ]


def test_json_checkpoints_round_trip_into_parquet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ck, out = tmp_path / "ck", tmp_path / "archive"
    write(ck, "testcluster", "node001", 1000, roundtrip_snapshot())
    write(ck, "testcluster", "node002", 1000, roundtrip_snapshot(), "bin")
    write(ck, "testcluster", "node002", 1500, roundtrip_snapshot())
    write(ck, "testcluster", "node002", 3000, roundtrip_snapshot())  # newer than the cutoff: stays
    (ck / "testcluster" / "node001" / "current.wal").write_bytes(b"\x01\xa7\x1d\xcc")
    (ck / "testcluster" / "node001" / "900.json.tmp").write_bytes(b"{")
    write(ck, "other", "n1", 1200, roundtrip_snapshot())

    with caplog.at_level(logging.INFO, logger="metricstore"):
        assert cleanup_parquet(ck, out, 2000) == 4
    assert "cluster testcluster: 27 rows from 3 checkpoint files" in caplog.text
    assert "cluster other: 9 rows from 1 checkpoint files" in caplog.text
    assert tree(ck) == [
        "testcluster/node001/900.json.tmp",
        "testcluster/node001/current.wal",
        "testcluster/node002/3000.json",
    ]
    assert tree(out) == ["other/2000.parquet", "testcluster/2000.parquet"]

    path = out / "testcluster" / "2000.parquet"
    pf = pq.ParquetFile(path)
    assert pf.schema_arrow == PARQUET_SCHEMA
    assert pf.num_row_groups == 2  # one per host
    assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
    table = pq.read_table(path)
    assert table.num_rows == 9 + 18
    rows = table.to_pylist()
    assert {r["cluster"] for r in rows} == {"testcluster"}
    assert [r["hostname"] for r in rows] == ["node001"] * 9 + ["node002"] * 18
    host1 = rows[:9]
    assert [(r["metric"], r["timestamp"]) for r in host1] == sorted(
        (r["metric"], r["timestamp"]) for r in host1
    )
    assert [r["value"] for r in host1 if r["metric"] == "mem_bw"] == [100.0, 110.0, 120.0]
    assert {(r["metric"], r["scope"], r["scope_id"]) for r in host1} == {
        ("cpu_load", "node", ""),
        ("mem_used", "node", ""),
        ("mem_bw", "socket", "0"),
    }
    assert [r["value"] for r in host1 if r["metric"] == "cpu_load"] == pytest.approx([0.5, 0.7, 0.9])
    assert pq.read_table(out / "other" / "2000.parquet").column("hostname").to_pylist() == ["n1"] * 9


def test_selection_by_cutoff(tmp_path: Path) -> None:
    ck, out = tmp_path / "ck", tmp_path / "archive"
    for ts in (0, 999, 1000, 1001):
        write(ck, "c", "h", ts, roundtrip_snapshot())
    assert [p.name for p in files.select_cleanup_files(ck / "c" / "h", 1000)] == ["999.json", "1000.json"]
    assert cleanup_parquet(ck, out, 1000) == 2  # ts ≤ cutoff; never the file named 0
    assert tree(ck) == ["c/h/0.json", "c/h/1001.json"]
    assert (out / "c" / "1000.parquet").exists()


def test_only_nan_keeps_files_and_writes_nothing(tmp_path: Path) -> None:
    ck, out = tmp_path / "ck", tmp_path / "archive"
    write(ck, "c", "h", 1000, Snapshot(metrics={"m": series([NAN, NAN])}, from_=1000, to=1100))
    assert cleanup_parquet(ck, out, 2000) == 0
    assert tree(ck) == ["c/h/1000.json"]
    assert not (out / "c" / "2000.parquet").exists()
    assert not list(out.rglob("*.tmp"))


def test_host_without_rows_keeps_its_files(tmp_path: Path) -> None:
    ck, out = tmp_path / "ck", tmp_path / "archive"
    write(ck, "c", "h1", 1000, roundtrip_snapshot())
    write(ck, "c", "h2", 1000, Snapshot(metrics={"m": series([NAN])}, from_=1000, to=1100))
    assert cleanup_parquet(ck, out, 2000) == 1
    assert tree(ck) == ["c/h2/1000.json"]
    assert pq.read_table(out / "c" / "2000.parquet").num_rows == 9


def test_undecodable_file_is_skipped_and_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ck, out = tmp_path / "ck", tmp_path / "archive"
    write(ck, "c", "h", 1000, roundtrip_snapshot())
    (ck / "c" / "h" / "1100.json").write_bytes(b'{"metrics":{"m":{"frequency":60,"start":1,"data":[1,')
    (ck / "c" / "h" / "1200.bin").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="metricstore"):
        assert cleanup_parquet(ck, out, 2000) == 1
    assert tree(ck) == ["c/h/1100.json", "c/h/1200.bin"]
    assert "1100.json" in caplog.text and "1200.bin" in caplog.text
    assert pq.read_table(out / "c" / "2000.parquet").num_rows == 9


def test_unreadable_host_directory_keeps_the_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ck, out = tmp_path / "ck", tmp_path / "archive"
    write(ck, "c", "h1", 1000, roundtrip_snapshot())
    write(ck, "c", "h2", 1000, roundtrip_snapshot())
    write(ck, "d", "h1", 1000, roundtrip_snapshot())
    real = archive.select_cleanup_files

    def failing(host_dir, cutoff):
        if Path(host_dir) == ck / "c" / "h2":
            raise PermissionError(13, "Permission denied", str(host_dir))
        return real(host_dir, cutoff)

    monkeypatch.setattr(archive, "select_cleanup_files", failing)
    assert cleanup_parquet(ck, out, 2000) == 1  # only cluster d
    assert tree(ck) == ["c/h1/1000.json", "c/h2/1000.json"]
    assert tree(out) == ["d/2000.parquet"]


def test_parquet_write_failure_keeps_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ck, out = tmp_path / "ck", tmp_path / "archive"
    write(ck, "c", "h1", 1000, roundtrip_snapshot())
    write(ck, "c", "h2", 1000, roundtrip_snapshot())
    real_writer = pq.ParquetWriter

    class Failing(real_writer):  # type: ignore[misc, valid-type]
        calls = 0

        def write_table(self, table: pa.Table, row_group_size: int | None = None) -> None:
            Failing.calls += 1
            if Failing.calls == 2:
                raise OSError(28, "No space left on device")
            super().write_table(table, row_group_size=row_group_size)

    monkeypatch.setattr(archive.pq, "ParquetWriter", Failing)
    assert cleanup_parquet(ck, out, 2000) == 0
    assert tree(ck) == ["c/h1/1000.json", "c/h2/1000.json"]
    assert tree(out) == []


def test_cleanup_delete(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ck = tmp_path / "ck"
    for ts in (500, 1000, 1500):
        write(ck, "c", "h", ts, roundtrip_snapshot(), "bin" if ts == 500 else "json")
    write(ck, "c", "h2", 100, roundtrip_snapshot())
    (ck / "c" / "h" / "current.wal").write_bytes(b"")
    (ck / "c" / "h" / "200.bin.tmp").write_bytes(b"")
    (ck / "c" / "h" / "x.json").write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="metricstore"):
        assert cleanup_delete(ck, 1000) == 3
    assert "cluster c: 3 checkpoint files deleted" in caplog.text
    assert tree(ck) == ["c/h/1500.json", "c/h/200.bin.tmp", "c/h/current.wal", "c/h/x.json"]
    assert cleanup_delete(tmp_path / "missing", 1000) == 0


def test_cleanup_zip(tmp_path: Path) -> None:
    ck, out = tmp_path / "ck", tmp_path / "archive"
    a = write(ck, "c", "h1", 1000, roundtrip_snapshot())
    b = write(ck, "c", "h1", 1500, Snapshot(metrics={"m": series([1.0])}, from_=1500, to=1560))
    write(ck, "c", "h1", 2500, roundtrip_snapshot())
    write(ck, "c", "h2", 3000, roundtrip_snapshot())  # nothing to archive for h2
    contents = {p.name: p.read_bytes() for p in (a, b)}
    assert cleanup_zip(ck, out, 2000) == 2
    assert tree(ck) == ["c/h1/2500.json", "c/h2/3000.json"]
    assert tree(out) == ["c/h1/2000.zip"]
    with zipfile.ZipFile(out / "c" / "h1" / "2000.zip") as zf:
        assert sorted(zf.namelist()) == ["1000.json", "1500.json"]
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert zf.read(info) == contents[info.filename]
    assert encode_json(roundtrip_snapshot()) == contents["1000.json"]
