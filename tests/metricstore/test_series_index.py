"""The store as the line-protocol decoder's series index: prefixes map straight to series ids,
ids stay right when series are dropped and reused, keys are produced for the WAL on demand."""

from __future__ import annotations

import math

import numpy as np

from cccommon.lineprotocol import decode_store_batch
from ccmetricstore.store import MemoryStore, MetricConfig


def make_store() -> MemoryStore:
    return MemoryStore({"load": MetricConfig("load", 10), "cpu": MetricConfig("cpu", 10, "sum")})


def write(store: MemoryStore, body: str, cluster: str = "c", now: int = 1000):
    batch = decode_store_batch(body.encode(), store.metric_index, cluster, now)
    return batch, store.write_batch(batch)


def test_decoded_batch_carries_series_ids_and_counts_skips():
    s = make_store()
    body = (
        "load,hostname=a value=1 100\n"
        "cpu,hostname=a,type=hwthread,type-id=0 value=2 100\n"
        "nope,hostname=a value=3 100\n"
        "load value=4 100\n"
        "cpu,hostname=a,type=hwthread,type-id=1 value=5 100\n"
    )
    batch, res = write(s, body)
    assert batch.sids is not None and len(batch.sids) == 3 == res.written
    assert batch.unknown_metric == 1 and batch.no_cluster_or_host == 1
    assert list(batch.keys) == [
        "load\x00c\x00a\x00\x00",
        "cpu\x00c\x00a\x00hwthread0\x00",
        "cpu\x00c\x00a\x00hwthread1\x00",
    ]
    # the same body again hits the prefix cache and the same series
    batch2, _ = write(s, body.replace(" 100", " 110"))
    assert batch2.sids.tolist() == batch.sids.tolist()
    assert s.series_count() == 3
    got, *_ = s.read(["c", "a"], "cpu", 100, 120)
    assert got.tolist() == [7.0, 7.0]


def test_error_lines_in_an_indexed_batch():
    s = make_store()
    batch, res = write(s, "load,hostname=a value=1 100\nload,hostname=a,x value=2 100\n")
    assert res.written == 1 and len(batch.errors) == 1 and batch.errors[0].line == 2


def test_unusual_bodies_are_numbered_too():
    s = make_store()
    batch, res = write(s, "# comment\nload,hostname=a\\ b value=1 100\n\nload,hostname=x value=2 100\n")
    assert res.written == 2 and batch.sids is not None
    assert sorted(s.hosts("c")) == ["a b", "x"]


def test_dropped_series_ids_are_not_reached_through_stale_prefixes():
    s = make_store()
    write(s, "load,hostname=old value=1 100\n")
    assert s.free([], 10_000) == 1
    assert s.hosts("c") == []
    # another host takes the freed id; the old host's prefix must not write into it
    write(s, "load,hostname=new value=2 20000\n")
    write(s, "load,hostname=old value=3 20000\n")
    assert sorted(s.hosts("c")) == ["new", "old"]
    new, *_ = s.read(["c", "new"], "load", 20000, 20010)
    old, *_ = s.read(["c", "old"], "load", 20000, 20010)
    assert new.tolist() == [2.0] and old.tolist() == [3.0]


def test_keys_for_the_wal_cover_series_created_before_and_after_the_first_request():
    s = make_store()
    b1, _ = write(s, "load,hostname=a value=1 100\ncpu,hostname=a,type=socket,type-id=1 value=1 100\n")
    assert list(b1.keys) == ["load\x00c\x00a\x00\x00", "cpu\x00c\x00a\x00socket1\x00"]
    b2, _ = write(s, "load,hostname=b,cluster=d value=1 100\nload,hostname=a value=2 110\n")
    assert list(b2.keys) == ["load\x00d\x00b\x00\x00", "load\x00c\x00a\x00\x00"]
    assert b2.keys[0] == "load\x00d\x00b\x00\x00" and len(b2.keys) == 2


def test_plain_mapping_keeps_string_keys():
    s = make_store()
    batch = decode_store_batch(b"load,hostname=a value=1 100\n", dict(s.metric_index), "c", 1000)
    assert batch.sids is None and batch.keys == ["load\x00c\x00a\x00\x00"]
    assert s.write_batch(batch).written == 1
    got, *_ = s.read(["c", "a"], "load", 100, 110)
    assert got.tolist() == [1.0]


def test_many_series_in_lockstep_fill_block_columns():
    s = make_store()
    hosts = [f"h{i}" for i in range(300)]
    for step in range(600):
        ts = 1000 + 10 * step
        body = "".join(
            f"cpu,hostname={h},type=hwthread,type-id={t} value={step} {ts}\n"
            for h in hosts[:150]
            for t in range(2)
        ) + "".join(f"load,hostname={h} value={step} {ts}\n" for h in hosts[150:])
        write(s, body, now=ts)
    assert s.sample_count() == 450 * 600
    # first chunks: columns 0..449 of block 0, filled to 512 rows; second chunks (88 samples):
    # the other 62 columns of block 0 (its rows are resident anyway) and 388 of block 1, whose
    # rows are resident only as far as written
    assert s.size_in_bytes() == (512 * 512 + 388 * 88) * 4
    got, frm, to, _ = s.read(["c", "h3"], "cpu", 1000, 1000 + 6000)
    assert got.tolist() == [2.0 * i for i in range(600)] and (frm, to) == (1000, 7000)
    got, *_ = s.read(["c", "h200"], "load", 6000, 6020)
    assert got.tolist() == [500.0, 501.0]
    total, *_ = s.read(["c"], "cpu", 1000, 7000)
    assert not any(math.isnan(v) for v in total.tolist())
    assert np.array_equal(total, 300.0 * np.arange(600))


def test_levels_with_the_same_metrics_share_one_name_tuple():
    s = make_store()
    write(
        s,
        "".join(
            f"cpu,hostname=h{h},type=hwthread,type-id={t} value=1 100\n"
            f"load,hostname=h{h},type=hwthread,type-id={t} value=1 100\n"
            for h in range(3)
            for t in range(4)
        ),
    )
    levels = [s._find_level(["c", f"h{h}", f"hwthread{t}"]) for h in range(3) for t in range(4)]
    assert all(lvl.names is levels[0].names for lvl in levels)
    assert levels[0].names == ("cpu", "load")
    assert len({sid for lvl in levels for sid in lvl.sids}) == 24
    host = s._find_level(["c", "h0"])
    assert host.names == () and sorted(host.children) == [f"hwthread{t}" for t in range(4)]
    # a leaf level has no children dict of its own
    assert levels[0].children is levels[1].children and len(levels[0].children) == 0


def test_slow_path_bodies_use_the_index_cache():
    s = make_store()
    # a comment sends the body through the line-by-line decoder
    body = "# c\nload,hostname=a value=1 100\nnope,hostname=a value=1 100\nload value=2 100\ncpu,hostname=a value=2i 100\n"
    batch, res = write(s, body)
    assert res.written == 2 and batch.unknown_metric == 1 and batch.no_cluster_or_host == 1
    cache = s.prefix_cache("c")
    assert cache[b"load,hostname=a"] == batch.sids[0]
    batch2, _ = write(s, body.replace(" 100", " 110"))
    assert batch2.sids.tolist() == batch.sids.tolist()
    assert list(batch2.keys) == ["load\x00c\x00a\x00\x00", "cpu\x00c\x00a\x00\x00"]
    # escaped names go through the full parser, one series per key
    batch3, res3 = write(s, "load,hostname=b\\ c value=3 120\nload,hostname=b\\ c value=4 130\n# x\n")
    assert res3.written == 2 and batch3.sids[0] == batch3.sids[1]
    got, *_ = s.read(["c", "b c"], "load", 120, 140)
    assert got.tolist() == [3.0, 4.0]


def test_wal_records_by_series_id_follow_reused_ids(tmp_path):
    """The WAL encodes indexed batches by series id; an id freed and reused for another series
    must not keep the old series' name."""
    from ccmetricstore import wal

    s = make_store()
    w = wal.WalWriter(tmp_path, flush_interval=0.05)
    s.release_hooks.append(w.forget_series)
    try:
        b, _ = write(s, "load,hostname=old value=1 100\ncpu,hostname=old,type=socket,type-id=1 value=2 100\n")
        w.append_batch(b)
        assert w._by_sid and all(e is not None for e in w._by_sid)
        assert s.free([], 10_000) == 2  # both series dropped; their ids come back
        b2, _ = write(s, "load,hostname=new value=3 20000\n")
        assert b2.sids.tolist()[0] in b.sids.tolist()  # a reused id
        w.append_batch(b2)
        b3, _ = write(s, "load,hostname=new value=4 20010\nload,hostname=old value=5 20010\n")
        w.append_batch(b3)
        w.flush()
    finally:
        w.close()
    old = [(r[1], r[2], r[3]) for r in wal.read_records(tmp_path / "c" / "old" / "current.wal")]
    new = [(r[1], r[2], r[3]) for r in wal.read_records(tmp_path / "c" / "new" / "current.wal")]
    assert old == [("load", [], 1.0), ("cpu", ["socket1"], 2.0), ("load", [], 5.0)]
    assert new == [("load", [], 3.0), ("load", [], 4.0)]
