"""The upstream WAL format (spec §12.5) and our write journal, on real files."""

from __future__ import annotations

import asyncio
import struct
import zlib

import numpy as np
import pytest

from cccommon.lineprotocol import StoreBatch
from ccmetricstore import journal as jr
from ccmetricstore import wal


def _batch(rows: list[tuple[str, str, str, str, str, float, int]]) -> StoreBatch:
    keys = [f"{m}\x00{c}\x00{h}\x00{t}\x00{s}" for m, c, h, t, s, _, _ in rows]
    return StoreBatch(
        keys, np.array([r[5] for r in rows], dtype=np.float64), np.array([r[6] for r in rows], dtype=np.int64)
    )


def test_record_bytes_match_the_spec():
    rec = wal.encode_record(1_700_000_000, "mem_bw", ["socket0", "memctrl1"], 2.5)
    payload = (
        struct.pack("<q", 1_700_000_000)
        + struct.pack("<H", 6)
        + b"mem_bw"
        + bytes([2, 7])
        + b"socket0"
        + bytes([8])
        + b"memctrl1"
        + struct.pack("<f", 2.5)
    )
    assert rec == struct.pack("<II", 0xCC1DA7A1, len(payload)) + payload + struct.pack(
        "<I", zlib.crc32(payload)
    )


def test_writer_files_replay_and_keys(tmp_path):
    w = wal.WalWriter(tmp_path, flush_interval=0.05)
    w.append_batch(
        _batch(
            [
                ("cpu_load", "c1", "n1", "", "", 1.5, 1000),
                ("cpu_user", "c1", "n1", "hwthread0", "", 2.0, 1000),
                ("mem_bw", "c1", "n2", "socket0", "memctrl1", 3.0, 1010),
            ]
        )
    )
    w.close()
    f1 = tmp_path / "c1" / "n1" / "current.wal"
    assert f1.read_bytes()[:4] == struct.pack("<I", 0xCC1DA701)
    assert wal.read_records(f1) == [(1000, "cpu_load", [], 1.5), (1000, "cpu_user", ["hwthread0"], 2.0)]
    b = wal.replay_wal(tmp_path / "c1" / "n2" / "current.wal", 0)
    assert b.keys == ["mem_bw\x00c1\x00n2\x00socket0\x00memctrl1"]
    assert b.values.tolist() == [3.0] and b.times.tolist() == [1010]
    assert wal.replay_wal(f1, 1001).keys == []  # older than the restore window


def test_replay_stops_at_torn_or_corrupt_record(tmp_path):
    p = tmp_path / "c" / "h" / "current.wal"
    p.parent.mkdir(parents=True)
    good = [wal.encode_record(100 + i, "m", [], float(i)) for i in range(3)]
    bad = bytearray(wal.encode_record(200, "m", [], 9.0))
    bad[-1] ^= 0xFF  # CRC mismatch
    p.write_bytes(wal._FILE_HEADER + b"".join(good) + bytes(bad) + good[0])
    assert [r[0] for r in wal.read_records(p)] == [100, 101, 102]
    p.write_bytes(wal._FILE_HEADER + b"".join(good) + good[0][:7])  # torn tail
    assert len(wal.read_records(p)) == 3
    p.write_bytes(b"\x00\x00\x00\x00" + good[0])
    with pytest.raises(wal.WalError):
        wal.read_records(p)


def test_pause_remove_and_max_size(tmp_path):
    w = wal.WalWriter(tmp_path, max_wal_size=200, flush_interval=0.05)
    for i in range(20):
        w.append_batch(_batch([("cpu_load", "c", "h", "", "", float(i), 1000 + i)]))
        w.flush()
    path = tmp_path / "c" / "h" / "current.wal"
    assert path.stat().st_size <= 200
    assert w.stats.rotations >= 1
    recs = wal.read_records(path)
    assert recs[-1][3] == 19.0  # the newest records are kept after the forced restart
    w.pause()
    w.append_batch(_batch([("cpu_load", "c", "h", "", "", 99.0, 2000)]))  # dropped while paused
    w.remove_host_wal("c", "h")
    assert not path.exists()
    w.resume()
    w.append_batch(_batch([("cpu_load", "c", "h", "", "", 7.0, 3000)]))
    w.close()
    assert wal.read_records(path) == [(3000, "cpu_load", [], 7.0)]


def test_existing_wal_is_appended_after_restart(tmp_path):
    for v in (1.0, 2.0):
        w = wal.WalWriter(tmp_path, flush_interval=0.05)
        w.append_batch(_batch([("cpu_load", "c", "h", "", "", v, int(v))]))
        w.close()
    assert [r[3] for r in wal.read_records(tmp_path / "c" / "h" / "current.wal")] == [1.0, 2.0]


# ---------------------------------------------------------------------------- journal


def _replayed(directory) -> list[tuple[int, str, bytes]]:
    j = jr.Journal(directory)
    out: list[tuple[int, str, bytes]] = []
    j.replay(lambda r, c, b: out.append((r, c, b)))
    j.close()
    return out


async def test_journal_group_commit_and_replay(tmp_path):
    j = jr.Journal(tmp_path)
    bodies = [f"cpu_load,hostname=n{i} value={i}".encode() for i in range(200)]
    await asyncio.gather(*(j.append(b, "c1", received=1000 + i) for i, b in enumerate(bodies)))
    assert j.stats.records == 200
    assert 1 <= j.stats.fsyncs < 200  # concurrent appends share fdatasync calls
    j.close()
    out = _replayed(tmp_path)
    assert [b for _, _, b in out] == bodies
    assert out[5][:2] == (1005, "c1")


async def test_journal_rotate_release(tmp_path):
    j = jr.Journal(tmp_path)
    await j.append(b"a", "c")
    token = j.rotate()
    await j.append(b"b", "c")
    assert len(j.pending_segments()) == 2
    assert j.release(token) == 1
    j.append_nowait(b"c", "c")
    j.close()
    assert [b for _, _, b in _replayed(tmp_path)] == [b"b", b"c"]


async def test_journal_without_fsync(tmp_path):
    j = jr.Journal(tmp_path, fsync=False)
    await j.append(b"x", "c")
    j.rotate()
    await j.append(b"y", "c")
    j.close()
    assert j.stats.fsyncs == 0
    assert [b for _, _, b in _replayed(tmp_path)] == [b"x", b"y"]


def test_journal_torn_and_corrupt_tail(tmp_path, caplog):
    seg = tmp_path / "journal-000000000001.log"
    recs = [jr.encode_record(10 + i, "c", f"m value={i}".encode()) for i in range(3)]
    bad = bytearray(jr.encode_record(20, "c", b"m value=9"))
    bad[20] ^= 1
    seg.write_bytes(jr.HEADER + b"".join(recs) + bytes(bad))
    out = _replayed(tmp_path)
    assert [r for r, _, _ in out] == [10, 11, 12]
    assert "ignored" in caplog.text
    seg.write_bytes(jr.HEADER + recs[0] + recs[1][:-3])
    assert len(_replayed(tmp_path)) == 1


def test_replayed_segments_stay_until_released(tmp_path):
    j = jr.Journal(tmp_path)
    j.append_nowait(b"a", "c")
    j.close()
    j2 = jr.Journal(tmp_path)
    assert j2.replay(lambda *a: None) == 1
    token = j2.rotate()
    assert j2.release(token) == 2  # the replayed segment and the one opened at start
    j2.close()
    assert _replayed(tmp_path) == []


def test_c_encoder_writes_the_same_bytes_as_python(tmp_path, monkeypatch):
    if wal._wal_records_c is None:
        pytest.skip("the C accelerator is not built")
    rows = [
        ("cpu_load", "c", "h1", "", "", 1.5, 1000),
        ("mem_bw", "c", "h2", "socket0", "memctrl1", 2.25, 1001),
        ("flops_any", "c", "h1", "hwthread3", "", -3.0, 1002),
        ("cpu_load", "d", "h1", "", "", float("nan"), 1003),
    ]
    c_dir, py_dir = tmp_path / "c", tmp_path / "py"
    w = wal.WalWriter(c_dir, flush_interval=0.05)
    w.append_batch(_batch(rows))
    w.close()
    monkeypatch.setattr(wal, "_wal_records_c", None)
    w = wal.WalWriter(py_dir, flush_interval=0.05)
    w.append_batch(_batch(rows))
    w.close()
    files = sorted(p.relative_to(c_dir) for p in c_dir.rglob("current.wal"))
    assert len(files) == 3
    assert files == sorted(p.relative_to(py_dir) for p in py_dir.rglob("current.wal"))
    for f in files:
        assert (c_dir / f).read_bytes() == (py_dir / f).read_bytes()
