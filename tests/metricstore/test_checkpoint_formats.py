"""Checkpoint file formats (spec metricstore §12.3, §12.4), the directory layout and restore
selection (§12.1, §12.6), and a store → file → store round trip (§14 item 16)."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import struct
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccmetricstore import files
from ccmetricstore.checkpoint_bin import MAGIC, decode_bin, encode_bin
from ccmetricstore.checkpoint_json import decode_json, encode_json
from ccmetricstore.snapshot import SeriesSnapshot, Snapshot
from ccmetricstore.store import MemoryStore, MetricConfig

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "metricstore" / "checkpoints"
UPSTREAM_FILE = FIXTURES / "fritz" / "f0101" / "1700000000.json"

NAN = float("nan")


def series(values, start: int = 1000, frequency: int = 60) -> SeriesSnapshot:
    return SeriesSnapshot(frequency=frequency, start=start, data=np.array(values, dtype=np.float64))


def sample_snapshot() -> Snapshot:
    return Snapshot(
        metrics={
            "cpu_load": series([0.5, 0.7, NAN, 0.04, 1234.5678, -3.25, 1e-7, 3.4e38]),
            "mem_used": series([], start=1060),
        },
        children={
            "socket0": Snapshot(
                metrics={"mem_bw": series([100.0, NAN, 200.0], frequency=10)},
                children={"memoryDomain0": Snapshot(metrics={"mem_bw": series([1.0, 2.0])})},
            ),
            "hwthread0": Snapshot(metrics={"cpu_user": series([NAN, NAN])}),
            "empty": Snapshot(),
        },
        from_=1000,
        to=1180,
    )


def assert_same(a: Snapshot, b: Snapshot, root: bool = True, path: str = "") -> None:
    """Same names, frequencies, starts, and bit-identical float32 values (NaN positions too)."""
    if root:
        assert (a.from_, a.to) == (b.from_, b.to)
    assert sorted(a.metrics) == sorted(b.metrics), path
    for name, sa in a.metrics.items():
        sb = b.metrics[name]
        assert (sa.frequency, sa.start) == (sb.frequency, sb.start), f"{path}/{name}"
        va = np.asarray(sa.data, dtype=np.float32)
        vb = np.asarray(sb.data, dtype=np.float32)
        assert vb.dtype == np.float32 or not root
        assert len(va) == len(vb), f"{path}/{name}"
        nan_a, nan_b = np.isnan(va), np.isnan(vb)
        assert np.array_equal(nan_a, nan_b), f"{path}/{name}"
        assert np.array_equal(va[~nan_a].view(np.uint32), vb[~nan_b].view(np.uint32)), f"{path}/{name}"
    assert sorted(a.children) == sorted(b.children), path
    for name, ca in a.children.items():
        assert_same(ca, b.children[name], root=False, path=f"{path}/{name}")


# ----------------------------------------------------------------------------- JSON


def test_json_layout_matches_upstream() -> None:
    raw = encode_json(sample_snapshot())
    assert raw.endswith(b"}\n") and raw.count(b"\n") == 1  # one line, as Go's json.Encoder
    assert raw.startswith(b'{"metrics":{"cpu_load":{"frequency":60,"start":1000,"data":[')
    obj = orjson.loads(raw)

    def check(level: dict) -> None:
        assert list(level) == ["metrics", "children", "from", "to"]
        assert (level["from"], level["to"]) == (1000, 1180)
        assert list(level["metrics"]) == sorted(level["metrics"])
        assert list(level["children"]) == sorted(level["children"])
        for m in level["metrics"].values():
            assert list(m) == ["frequency", "start", "data"]
        for child in level["children"].values():
            check(child)

    check(obj)
    # full float32 precision (a JSON reader gets the float32 values back), not one decimal
    assert obj["metrics"]["cpu_load"]["data"] == [0.5, 0.7, None, 0.04, 1234.5677, -3.25, 1e-7, 3.4e38]
    assert obj["metrics"]["mem_used"]["data"] == []
    assert obj["children"]["empty"] == {"metrics": {}, "children": {}, "from": 1000, "to": 1180}


def test_json_arrays_are_fixed_width_columns() -> None:
    """Same decimals for the whole array, right-aligned in 7, 11 or 15 characters (plain JSON)."""

    def text(values) -> bytes:
        raw = encode_json(Snapshot(metrics={"m": series(values)}, from_=1, to=2))
        return raw[raw.index(b'"data":[') + 8 : raw.index(b"]")]

    assert text([52.586, 56.063, 9.0, NAN, -0.0, -12.5]) == b" 52.586, 56.063,  9.000,   null, -0.000,-12.500"
    assert text([1.0, 2.0, 300.0]) == b"      1,      2,    300"
    assert text([0.1, 1234.5677]) == b"     0.1000,  1234.5677"  # float32 1234.5677 needs 4 decimals
    assert text([123456.7, -0.001]) == b" 123456.703,     -0.001"  # float32 123456.703125
    assert text([1e-7, 5.0]) == b"  0.0000001,  5.0000000"
    assert text([1.2345678e-9, 5.0]) == b"1.2345678e-9,5.0"  # needs more than 14 digits: compact
    assert text([3.4e38]) == b"3.4e+38"
    assert len(text([1.0] * 10)) == 10 * 8 - 1
    for values in ([52.586, NAN, -0.0], [0.1, 1234.5677], [1.2345678e-9, 5.0], [123456.7, -0.001, 99999.99]):
        got = orjson.loads(b"[" + text(values) + b"]")
        expected = [None if np.isnan(v) else float(np.float32(v)) for v in values]
        assert [None if g is None else float(np.float32(g)) for g in got] == expected


def test_json_round_trip() -> None:
    snap = sample_snapshot()
    back = decode_json(encode_json(snap))
    assert_same(snap, back)
    assert back.children["socket0"].children["memoryDomain0"].metrics["mem_bw"].data.dtype == np.float32


def test_json_infinity_is_written_as_null() -> None:
    snap = Snapshot(metrics={"m": series([np.inf, -np.inf, 1.0])}, from_=1, to=2)
    raw = encode_json(snap)
    assert b'"data":[   null,   null,      1]' in raw
    assert np.isnan(decode_json(raw).metrics["m"].data[:2]).all()


def test_decode_upstream_file() -> None:
    snap = decode_json(UPSTREAM_FILE.read_bytes())
    assert (snap.from_, snap.to) == (1700000000, 1700000480)
    cpu = snap.metrics["cpu_load"]
    assert (cpu.frequency, cpu.start) == (60, 1700000000)
    assert cpu.data.dtype == np.float32
    np.testing.assert_array_equal(
        cpu.data, np.array([0.5, 0.7, 12.0, 128.0, 1234.6, 0.0, NAN, NAN], dtype=np.float32)
    )
    mem = snap.metrics["mem_used"]
    assert mem.start == 1700000060 and len(mem.data) == 7
    assert np.signbit(mem.data[2]) and mem.data[2] == 0.0  # "-0.0" keeps its sign, as in Go
    assert sorted(snap.children) == ["hwthread0", "hwthread1", "socket0"]
    md = snap.children["socket0"].children["memoryDomain0"].metrics["mem_bw"]
    np.testing.assert_array_equal(md.data, np.arange(50, 90, 5, dtype=np.float32))
    assert snap.children["hwthread0"].children == {}


@pytest.mark.parametrize(
    "text",
    [
        b'{"metrics":{"m":{"frequency":10,"start":5,"data":[1,-2,3.5,1e3,-1.5E-3,2e+2,0.0001]}},"children":{}}',
        b'{"metrics":{"m":{"data":[1,2],"start":5,"frequency":10}},"from":1,"to":2}',  # other key order
        b'{"metrics": {"m": {"frequency": 10, "start": 5, "data": [ 1 , 2 ,\n 3 ]}}, "children": {}}',
        b'{"children":{"a":{"metrics":{"m":{"frequency":10,"start":5,"data":[1.25]}}}},"metrics":{}}',
        b'{"metrics":{"m":{"frequency":10,"start":5,"data":null}},"children":null,"from":0,"to":0}',
        b'{"metrics":{"m":{"frequency":10,"start":5,"data":[123456789012345678, 0.1234567890123456789]}}}',
    ],
)
def test_decode_any_json_numbers(text: bytes) -> None:
    snap = decode_json(text)
    ref = orjson.loads(text)

    def walk(level: Snapshot, obj: dict) -> None:
        for name, m in (obj.get("metrics") or {}).items():
            expected = np.array([NAN if v is None else v for v in (m["data"] or [])], dtype=np.float64)
            got = level.metrics[name]
            assert (got.frequency, got.start) == (m["frequency"], m["start"])
            np.testing.assert_array_equal(got.data, expected.astype(np.float32))
        for name, c in (obj.get("children") or {}).items():
            walk(level.children[name], c)

    walk(snap, ref)


def test_decoded_values_equal_a_json_parser() -> None:
    """The vectorised number parser gives what orjson (correctly rounded) gives, for all forms."""
    rng = np.random.default_rng(7)
    values: list[str] = []
    for _ in range(20000):
        k = rng.integers(0, 7)
        x = float(rng.normal() * 10.0 ** rng.integers(-8, 16))
        if k == 0:
            values.append("null")
        elif k == 1:
            values.append(repr(x))
        elif k == 2:
            values.append(str(np.float32(x)).replace("inf", "1e39"))
        elif k == 3:
            values.append(f"{x:.1f}")
        elif k == 4:
            values.append(str(int(x)))
        elif k == 5:
            values.append(f"{x:.{rng.integers(0, 12)}f}")
        else:
            values.append(f"{x:.6e}")
    values = [v for v in values if v != "-0"]  # orjson reads "-0" as the integer 0
    body = ",".join(values).encode()
    text = b'{"metrics":{"m":{"frequency":1,"start":0,"data":[' + body + b']}},"children":{}}'
    got = decode_json(text).metrics["m"].data
    with np.errstate(over="ignore"):
        expected = np.array([NAN if v is None else v for v in orjson.loads(b"[" + body + b"]")]).astype(
            np.float32
        )
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"not json",
        b'{"metrics":{"m":{"frequency":60,"start":1,"data":[1.0,2.0',  # truncated inside an array
        b'{"metrics":{"m":{"frequency":60,"start":1,"data":[1.0,2.0]}},"children":{',  # truncated
        b'{"metrics":{"m":{"frequency":60,"start":1,"data":[1.0,,2.0]}}}',
        b'{"metrics":{"m":{"frequency":60,"start":1,"data":[1.0,"x"]}}}',
        b'{"metrics":{"m":{"frequency":60,"start":1,"data":[1.0,true]}}}',
        b'{"metrics":{"m":{"frequency":60,"start":1,"data":[1.2.3]}}}',
        b'{"metrics":{"m":{"frequency":60,"start":1,"data":[NaN]}}}',
        b'{"metrics":{"m":{"frequency":60,"start":1,"data":[nul]}}}',
        b'{"metrics":{"m":{"frequency":60,"start":1,"data":[[1]]}}}',
        b'{"metrics":{"m":{"frequency":"60","start":1,"data":[1]}}}',
        b'{"metrics":{"m":{"frequency":0,"start":1,"data":[1]}}}',
        b'{"metrics":{"m":{"frequency":60,"start":1,"data":"1"}}}',
        b'{"metrics":{"m":{"frequency":60,"start":1,"data":0}}}',
        b'{"metrics":[],"children":{}}',
        b"[1,2,3]",
    ],
)
def test_decode_json_rejects_corrupt_input(text: bytes) -> None:
    with pytest.raises(ValueError):
        decode_json(text)


@pytest.mark.parametrize(
    "array",
    [
        b"1.5,2.5,333",  # looks like 4-byte rows, is not
        b"52.6,56.1,78.0,128.0",  # upstream one-decimal numbers of different widths
        b"52.6,56.1,78.0,99.9",  # ... and of the same width (parsed as rows)
        b"   1.5,  -2.5,  null",  # our rows
        b"   1.5,  -2.5, 12.5 ",  # a space after a number: not our layout
        b"  1.5 ,  2.5",  # same width, spaces after the numbers
        b"1,2,3,4,5,6,7",
        b"   -0.0,    1.0,     -0",
        b"   1e5,   2e5",  # exponents in rows
        b"123456789012345,1",
    ],
)
def test_fixed_width_detection_falls_back(array: bytes) -> None:
    text = b'{"metrics":{"m":{"frequency":1,"start":0,"data":[' + array + b"]}}}"
    got = decode_json(text).metrics["m"].data
    expected = np.array(
        [NAN if v is None else v for v in orjson.loads(b"[" + array + b"]")], dtype=np.float32
    )
    assert np.array_equal(got, expected, equal_nan=True)


def test_decode_json_rejects_every_truncation() -> None:
    raw = encode_json(sample_snapshot()).rstrip(b"\n")
    for n in range(len(raw)):
        with pytest.raises(ValueError):
            decode_json(raw[:n])


def test_json_large_file_is_split_into_batches() -> None:
    """Many series and long arrays (several parse batches, numbers split across them)."""
    rng = np.random.default_rng(3)
    metrics = {}
    for i in range(300):
        v = rng.normal(size=1500) * 10.0 ** rng.integers(-3, 9)
        v[rng.random(1500) < 0.05] = np.nan
        metrics[f"m{i:03d}"] = SeriesSnapshot(60, 1000 + i, v)
    metrics["tiny"] = series([7.0])
    snap = Snapshot(metrics=metrics, from_=1, to=2)
    assert_same(snap, decode_json(encode_json(snap)))


def test_json_metric_like_values_round_trip() -> None:
    """Values as collectors send them (a few decimals, any magnitude, gaps) in every row width."""
    rng = np.random.default_rng(11)
    metrics = {}
    for i in range(400):
        n = int(rng.integers(1, 300))
        decimals = int(rng.integers(0, 7))
        v = np.round(rng.normal(size=n) * 10.0 ** rng.integers(-2, 9), decimals)
        v[rng.random(n) < 0.1] = np.nan
        if i % 5 == 0:
            v = np.abs(v)
        metrics[f"m{i}"] = SeriesSnapshot(10, i, v.astype(np.float32))
    snap = Snapshot(metrics=metrics, from_=3, to=4)
    raw = encode_json(snap)
    assert raw.count(b"     ") > 100  # most arrays are fixed-width columns
    assert_same(snap, decode_json(raw))
    assert_same(snap, _read_with_orjson(raw))


# ----------------------------------------------------------------------------- binary


def test_bin_layout() -> None:
    snap = Snapshot(metrics={"ab": series([1.5, NAN], start=7, frequency=10)}, from_=100, to=200)
    raw = encode_bin(snap)
    expected = (
        struct.pack("<Iqq", 0xCC5B0001, 100, 200)
        + struct.pack("<I", 1)
        + struct.pack("<H", 2)
        + b"ab"
        + struct.pack("<qqI", 10, 7, 2)
        + struct.pack("<f", 1.5)
        + np.array([NAN], dtype="<f4").tobytes()
        + struct.pack("<I", 0)
    )
    assert raw == expected
    assert MAGIC == 0xCC5B0001


def test_bin_round_trip() -> None:
    snap = sample_snapshot()
    snap.metrics["inf"] = series([np.inf, -np.inf, -0.0])
    back = decode_bin(encode_bin(snap))
    assert_same(snap, back)
    data = back.metrics["cpu_load"].data
    assert data.dtype == np.float32 and data.flags.writeable and data.flags.aligned
    assert back.children["empty"].metrics == {} and back.children["empty"].children == {}


def test_bin_decodes_children_without_from_to() -> None:
    back = decode_bin(encode_bin(sample_snapshot()))
    assert (back.from_, back.to) == (1000, 1180)
    assert (back.children["socket0"].from_, back.children["socket0"].to) == (0, 0)


def test_bin_rejects_wrong_magic() -> None:
    raw = bytearray(encode_bin(sample_snapshot()))
    raw[0:4] = struct.pack("<I", 0xCC5B0002)
    with pytest.raises(ValueError, match="magic 0xCC5B0002"):
        decode_bin(bytes(raw))


def test_bin_rejects_every_truncation() -> None:
    raw = encode_bin(sample_snapshot())
    for n in range(len(raw)):
        with pytest.raises(ValueError, match="truncated"):
            decode_bin(raw[:n])


def test_bin_rejects_trailing_garbage_and_bad_names() -> None:
    raw = encode_bin(sample_snapshot())
    with pytest.raises(ValueError, match="unexpected bytes"):
        decode_bin(raw + b"\x00")
    bad = struct.pack("<IqqI", MAGIC, 1, 2, 1) + struct.pack("<H", 2) + b"\xff\xfe"
    bad += struct.pack("<qqI", 60, 0, 0) + struct.pack("<I", 0)
    with pytest.raises(ValueError, match="UTF-8"):
        decode_bin(bad)
    huge = (
        struct.pack("<IqqI", MAGIC, 1, 2, 1) + struct.pack("<H", 1) + b"m" + struct.pack("<qqI", 60, 0, 2**31)
    )
    with pytest.raises(ValueError, match="truncated"):
        decode_bin(huge)


# ----------------------------------------------------------------------------- property test

_names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_f32 = st.floats(width=32, allow_nan=True, allow_infinity=False)


@st.composite
def _levels(draw, depth: int = 0) -> Snapshot:
    metrics = {
        name: SeriesSnapshot(
            frequency=draw(st.integers(1, 3600)),
            start=draw(st.integers(-(2**40), 2**40)),
            data=np.array(draw(st.lists(_f32, max_size=40)), dtype=np.float32),
        )
        for name in draw(st.lists(_names, max_size=4, unique=True))
    }
    children = {}
    if depth < 3:
        for name in draw(st.lists(_names, max_size=3, unique=True)):
            children[name] = draw(_levels(depth + 1))
    return Snapshot(metrics=metrics, children=children)


@st.composite
def snapshots(draw) -> Snapshot:
    snap = draw(_levels())
    snap.from_ = draw(st.integers(0, 2**40))
    snap.to = draw(st.integers(0, 2**40))
    return snap


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_property_json_round_trip(snap: Snapshot) -> None:
    raw = encode_json(snap)
    assert_same(snap, decode_json(raw))
    assert_same(snap, _read_with_orjson(raw))  # what any JSON reader (Go's too) gets


def _read_with_orjson(raw: bytes) -> Snapshot:
    def level(obj: dict) -> Snapshot:
        return Snapshot(
            metrics={
                name: SeriesSnapshot(
                    m["frequency"],
                    m["start"],
                    np.array([NAN if v is None else v for v in m["data"]], dtype=np.float64).astype(
                        np.float32
                    ),
                )
                for name, m in obj["metrics"].items()
            },
            children={name: level(c) for name, c in obj["children"].items()},
            from_=obj["from"],
            to=obj["to"],
        )

    return level(orjson.loads(raw))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_property_bin_round_trip(snap: Snapshot) -> None:
    assert_same(snap, decode_bin(encode_bin(snap)))


# ----------------------------------------------------------------------------- files


def test_write_snapshot_file_is_atomic_with_modes(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = files.write_snapshot_file(tmp_path / "ck", "fritz", "f0101", 1000, sample_snapshot(), "json")
        bpath = files.write_snapshot_file(tmp_path / "ck", "fritz", "f0101", 2000, sample_snapshot(), "bin")
    finally:
        os.umask(old)
    assert path == tmp_path / "ck" / "fritz" / "f0101" / "1000.json"
    assert bpath.name == "2000.bin"
    assert sorted(p.name for p in path.parent.iterdir()) == ["1000.json", "2000.bin"]  # no .tmp left
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    for d in (tmp_path / "ck", path.parent.parent, path.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert_same(sample_snapshot(), files.load_snapshot_file(path))
    assert_same(sample_snapshot(), files.load_snapshot_file(bpath))


def test_write_snapshot_file_replaces_and_rejects_bad_input(tmp_path: Path) -> None:
    files.write_snapshot_file(tmp_path, "c", "h", 5, sample_snapshot(), "json")
    small = Snapshot(metrics={"x": series([1.0])}, from_=5, to=6)
    path = files.write_snapshot_file(tmp_path, "c", "h", 5, small, "json")
    assert_same(small, files.load_snapshot_file(path))
    for cluster, host in (("..", "h"), ("c", "a/b"), ("", "h")):
        with pytest.raises(ValueError, match="unsafe"):
            files.write_snapshot_file(tmp_path, cluster, host, 5, small, "json")
    with pytest.raises(ValueError, match="format"):
        files.write_snapshot_file(tmp_path, "c", "h", 5, small, "avro")  # type: ignore[arg-type]


def test_load_snapshot_file_by_extension(tmp_path: Path) -> None:
    (tmp_path / "5.bin").write_bytes(encode_json(sample_snapshot()))  # JSON bytes under .bin
    with pytest.raises(ValueError, match="magic"):
        files.load_snapshot_file(tmp_path / "5.bin")
    (tmp_path / "5.wal").write_bytes(b"")
    with pytest.raises(ValueError, match="not a checkpoint file"):
        files.load_snapshot_file(tmp_path / "5.wal")


def touch(d: Path, *names: str) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).write_bytes(b"{}")


def names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_list_host_dirs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert files.list_host_dirs(tmp_path / "missing") == []
    touch(tmp_path / "b" / "h2")
    touch(tmp_path / "b" / "h1")
    touch(tmp_path / "a" / "h3")
    touch(tmp_path, "stray.txt")
    touch(tmp_path / "a", "stray.json")
    with caplog.at_level(logging.WARNING, logger="metricstore"):
        hosts = files.list_host_dirs(tmp_path)
    assert hosts == [
        ("a", "h3", tmp_path / "a" / "h3"),
        ("b", "h1", tmp_path / "b" / "h1"),
        ("b", "h2", tmp_path / "b" / "h2"),
    ]
    assert "stray.txt" in caplog.text and "stray.json" in caplog.text


def test_select_restore_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "c" / "h"
    touch(d, "100.json", "200.bin", "300.json", "400.json.tmp", "500.bin.tmp", "current.wal", "notes.txt")
    touch(d, "abc.json", "12x.bin")
    (d / "old-avro").mkdir()
    with caplog.at_level(logging.WARNING, logger="metricstore"):
        assert names(files.select_restore_files(d, 250)) == ["200.bin", "300.json"]  # + the file before
    assert "abc.json" in caplog.text and "12x.bin" in caplog.text
    assert names(files.select_restore_files(d, 200)) == ["200.bin", "300.json"]  # exact hit: no extra
    assert names(files.select_restore_files(d, 50)) == ["100.json", "200.bin", "300.json"]
    assert names(files.select_restore_files(d, 301)) == []  # nothing later: the last one is not taken
    assert names(files.select_restore_files(d, 0)) == ["100.json", "200.bin", "300.json"]
    touch(d, "300.bin", "0.json")
    assert names(files.select_restore_files(d, 250)) == ["200.bin", "300.bin", "300.json"]
    assert names(files.select_cleanup_files(d, 200)) == ["100.json", "200.bin"]  # ≤ cutoff, not 0


def test_unreadable_host_directory_restores_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="metricstore"):
        assert files.select_restore_files(tmp_path / "gone", 0) == []
    assert "gone" in caplog.text
    with pytest.raises(FileNotFoundError):  # cleanup must see the failure (spec §12.7)
        files.select_cleanup_files(tmp_path / "gone", 0)


def test_restore_host_files_skips_old_and_reports_bad(tmp_path: Path) -> None:
    d = tmp_path / "c" / "h"
    d.mkdir(parents=True)
    (d / "100.json").write_bytes(encode_json(Snapshot(metrics={"m": series([1.0])}, from_=100, to=150)))
    (d / "200.json").write_bytes(encode_json(Snapshot(metrics={"m": series([2.0])}, from_=200, to=300)))
    (d / "300.json").write_bytes(b'{"metrics":')
    (d / "400.bin").write_bytes(encode_bin(Snapshot(metrics={"m": series([4.0])}, from_=400, to=500)))
    got = list(files.restore_host_files(d, 220))
    assert [p.name for p, _ in got] == ["200.json", "300.json", "400.bin"]
    assert isinstance(got[1][1], ValueError)
    assert float(got[2][1].metrics["m"].data[0]) == 4.0
    got = list(files.restore_host_files(d, 160))  # 100.json is selected (next file later) but ends before
    assert [p.name for p, _ in got] == ["200.json", "300.json", "400.bin"]


def test_upstream_fixture_directory(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    shutil.copytree(FIXTURES, root)
    hosts = files.list_host_dirs(root)
    assert [(c, h) for c, h, _ in hosts] == [("fritz", "f0101")]
    sel = files.select_restore_files(hosts[0][2], 1700000300)
    assert names(sel) == ["1700000000.json", "1700000480.json"]
    store = MemoryStore({m: MetricConfig(m, 60) for m in ("cpu_load", "cpu_user", "mem_bw")})
    for path in sel:
        store.load_snapshot("fritz", "f0101", files.load_snapshot_file(path))
    data, f, t, _ = store.read(["fritz", "f0101"], "cpu_load", 1700000000, 1700000720)
    np.testing.assert_array_equal(
        data, np.array([0.5, 0.7, 12.0, 128.0, 1234.6, 0.0, NAN, NAN, 2.0, 2.1, 2.2, 2.3], dtype=np.float32)
    )
    assert (f, t) == (1700000030, 1700000750)  # restored starts are used as is: half a step later


# ----------------------------------------------------------------------------- through the store


def _snapshot_files(store: MemoryStore, fmt: str, ranges: list[tuple[int, int]], root: Path) -> list[Path]:
    paths = []
    for from_, to in ranges:
        snap = store.snapshot_host("c", "h", from_, to)
        assert snap is not None
        paths.append(files.write_snapshot_file(root, "c", "h", from_, snap, fmt))  # type: ignore[arg-type]
    return paths


@pytest.mark.parametrize("fmt", ["json", "bin"])
def test_memory_store_round_trip(tmp_path: Path, fmt: str) -> None:
    metrics = {"load": MetricConfig("load", 10), "user": MetricConfig("user", 10, "avg")}
    store = MemoryStore(metrics)
    rng = np.random.default_rng(1)
    t0 = 1_700_000_000
    expected = {}
    for i in range(100):
        v = float(rng.normal() * 100)
        if i % 7 != 3:  # gaps become NaN
            store.write(["c", "h"], "load", t0 + i * 10, v)
        expected.setdefault("load", []).append(v if i % 7 != 3 else NAN)
    for cpu in range(3):
        for i in range(50):
            store.write(["c", "h", f"hwthread{cpu}"], "user", t0 + i * 10, cpu * 1000 + i + 0.123)
    store.write(["c", "h", "socket0"], "load", t0, 1.0)

    paths = _snapshot_files(store, fmt, [(t0, t0 + 2000)], tmp_path)
    raw = paths[0].read_bytes()
    decoded = decode_json(raw) if fmt == "json" else decode_bin(raw)
    assert_same(store.snapshot_host("c", "h", t0, t0 + 2000), decoded)

    fresh = MemoryStore(metrics)
    fresh.load_snapshot("c", "h", files.load_snapshot_file(paths[0]))
    a, af, at, _ = store.read(["c", "h"], "load", t0, t0 + 1000)
    b, bf, bt, _ = fresh.read(["c", "h"], "load", t0, t0 + 1000)
    np.testing.assert_array_equal(a.astype(np.float32), b.astype(np.float32))
    assert (bf, bt) == (af + 5, at + 5)  # restored chunk starts at the snapshot's start (spec §12.6)
    for cpu in range(3):
        a = store.read(["c", "h", f"hwthread{cpu}"], "user", t0, t0 + 500)[0]
        b = fresh.read(["c", "h", f"hwthread{cpu}"], "user", t0, t0 + 500)[0]
        np.testing.assert_array_equal(a.astype(np.float32), b.astype(np.float32))
    agg_a = store.read(["c", "h", ["hwthread0", "hwthread1", "hwthread2"]], "user", t0, t0 + 500)[0]
    agg_b = fresh.read(["c", "h", ["hwthread0", "hwthread1", "hwthread2"]], "user", t0, t0 + 500)[0]
    np.testing.assert_allclose(agg_a, agg_b, rtol=1e-6)
    # restored data is archived: a checkpoint right after the restore writes nothing again
    assert fresh.snapshot_host("c", "h", t0, t0 + 2000) is None


@pytest.mark.parametrize("fmt", ["json", "bin"])
def test_two_checkpoint_files_restore_all_values(tmp_path: Path, fmt: str) -> None:
    """Legacy test (spec §14 item 16): 2000 values in two files read back unchanged."""
    metrics = {"m": MetricConfig("m", 10)}
    store = MemoryStore(metrics)
    t0 = 1_600_000_000
    values = np.arange(2000, dtype=np.float64) * 0.5 + 0.25
    for i, v in enumerate(values):
        store.write(["c", "h"], "m", t0 + i * 10, float(v))
    mid, end = t0 + 1000 * 10, t0 + 2000 * 10
    paths = _snapshot_files(store, fmt, [(t0, mid), (mid, end)], tmp_path)
    fresh = MemoryStore(metrics)
    for path in files.select_restore_files(tmp_path / "c" / "h", 0):
        fresh.load_snapshot("c", "h", files.load_snapshot_file(path))
    assert [p.name for p in paths] == [f"{t0}.{fmt}", f"{mid}.{fmt}"]
    data, _, _, _ = fresh.read(["c", "h"], "m", t0, end)
    np.testing.assert_array_equal(data[:2000], values.astype(np.float32))
