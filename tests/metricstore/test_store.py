"""The engine against the behaviours upstream's tests assert (spec metricstore §14) and a
straightforward reference model of the Go buffer (property tests)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccmetricstore.buffer import CHUNK_CAP
from ccmetricstore.snapshot import SeriesSnapshot, Snapshot
from ccmetricstore.store import MemoryStore, MetricConfig, NotFoundError, StoreError


@dataclass
class Batch:
    """Duck-typed StoreBatch (same fields as cccommon.lineprotocol.StoreBatch)."""

    keys: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    times: list[int] = field(default_factory=list)

    def add(self, metric: str, path: list[str], ts: int, value: float) -> None:
        cluster, host, *rest = path
        typecomp = rest[0] if rest else ""
        stypecomp = rest[1] if len(rest) > 1 else ""
        self.keys.append("\x00".join([metric, cluster, host, typecomp, stypecomp]))
        self.values.append(value)
        self.times.append(ts)


def make_store(**metrics: tuple[int, str | None]) -> MemoryStore:
    return MemoryStore({n: MetricConfig(n, f, a) for n, (f, a) in metrics.items()})


def chain_info(store: MemoryStore, path: list[str], metric: str) -> list[tuple[int, int]]:
    lvl = store._find_level(path)
    sid = lvl.series[metric]
    return [(int(store.chunks.start[c]), int(store.chunks.length[c])) for c in store._chain(sid)]


def values(store: MemoryStore, path: list[str], metric: str) -> list[list[float]]:
    lvl = store._find_level(path)
    return [store.chunks.values(c).tolist() for c in store._chain(lvl.series[metric])]


def eq_nan(a, b) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True)
    )


# §14.1
def test_chunk_start_and_end():
    s = make_store(m=(10, None))
    for i, ts in enumerate([95, 105, 115, 125]):
        s.write(["c", "h"], "m", ts, float(i))
    [(start, length)] = chain_info(s, ["c", "h"], "m")
    assert start == 90 and length == 4
    cid = s._chain(s._find_level(["c", "h"]).series["m"])[0]
    assert s.chunks.end(cid) == 135


# §14.2
def test_gaps_are_nan():
    s = make_store(m=(10, None))
    s.write(["c", "h"], "m", 100, 1.0)
    s.write(["c", "h"], "m", 130, 4.0)
    assert eq_nan(values(s, ["c", "h"], "m")[0], [1.0, math.nan, math.nan, 4.0])


# §14.3
def test_write_beyond_capacity_starts_new_chunk():
    s = make_store(m=(1, None))
    for ts in range(CHUNK_CAP):
        s.write(["c", "h"], "m", 1000 + ts, float(ts))
    s.write(["c", "h"], "m", 1000 + CHUNK_CAP, 42.0)
    chain = chain_info(s, ["c", "h"], "m")
    assert [length for _, length in chain] == [CHUNK_CAP, 1]
    assert chain[1][0] == 1000 + CHUNK_CAP  # f//2 == 0
    assert values(s, ["c", "h"], "m")[1] == [42.0]


# §14.4
def test_overwrite_same_slot():
    s = make_store(m=(60, None))
    s.write(["c", "h"], "m", 1000, 1.0)
    s.write(["c", "h"], "m", 1010, 2.0)
    assert values(s, ["c", "h"], "m") == [[2.0]]


# §14.5
def test_write_before_head_start_is_error():
    s = make_store(m=(10, None))
    s.write(["c", "h"], "m", 100, 1.0)
    with pytest.raises(StoreError, match="from past"):
        s.write(["c", "h"], "m", 80, 1.0)


# §14.6
def test_read_clamps_from_and_reads_range():
    s = make_store(m=(10, None))
    s.write(["c", "h"], "m", 100, 1.0)
    s.write(["c", "h"], "m", 110, 2.0)
    data, frm, to, res = s.read(["c", "h"], "m", 50, 120)
    assert frm == 100 and data.tolist() == [1.0, 2.0] and res == 10
    s.write(["c", "h"], "m", 120, 3.0)
    data, frm, to, _ = s.read(["c", "h"], "m", 100, 130)
    assert (frm, to, data.tolist()) == (100, 130, [1.0, 2.0, 3.0])


# §14.7 / §14.16 long series across chunks
def test_long_series_reads_back_exactly():
    s = make_store(m=(1, None))
    for ts in range(5000):
        s.write(["c", "h"], "m", ts, float(ts))
    data, frm, to, _ = s.read(["c", "h"], "m", 0, 5000)
    assert frm == 0 and to == 5000
    assert data.tolist() == [float(x) for x in range(5000)]


# §14.8
def test_stored_nan_reads_as_nan():
    s = make_store(m=(10, None))
    s.write(["c", "h"], "m", 100, 1.0)
    s.write(["c", "h"], "m", 110, float("nan"))
    s.write(["c", "h"], "m", 120, 3.0)
    data, *_ = s.read(["c", "h"], "m", 100, 130)
    assert eq_nan(data.tolist(), [1.0, math.nan, 3.0])


# §14.9
def test_free_releases_stale_chunks():
    s = make_store(m=(1, None))
    for ts in range(3 * CHUNK_CAP):
        s.write(["c", "h"], "m", ts, 1.0)
    assert s.free(["c", "h"], CHUNK_CAP + 1) == 1
    assert len(chain_info(s, ["c", "h"], "m")) == 2
    assert s.free(["c", "h"], 10 * CHUNK_CAP) == 2
    assert s.hosts("c") == ["h"]  # the level free() was called on stays
    assert s.free(["c"], 10 * CHUNK_CAP) == 0
    assert s.hosts("c") == []  # an emptied descendant level is pruned


# §14.10
def test_force_free_drops_oldest_chunk():
    s = make_store(m=(1, None))
    for ts in range(2 * CHUNK_CAP + 3):
        s.write(["c", "h"], "m", ts, 1.0)
    assert s.force_free() == 1
    assert [length for _, length in chain_info(s, ["c", "h"], "m")] == [CHUNK_CAP, 3]


# §14.16 aggregation and different frequencies
def test_sum_and_avg_aggregation():
    s = make_store(fl=(1, "sum"), cu=(1, "avg"), ld=(1, None))
    for ts in range(2000):
        for cpu in ("0", "1"):
            s.write(["c", "h", "cpu" + cpu], "fl", ts, ts * (1 + int(cpu)))
            s.write(["c", "h", "cpu" + cpu], "cu", ts, ts * (1 + int(cpu)))
            s.write(["c", "h", "cpu" + cpu], "ld", ts, 1.0)
    data, frm, to, _ = s.read(["c", "h"], "fl", 0, 2000)
    assert (frm, to, len(data)) == (0, 2000, 2000)
    assert data[10] == 30.0
    data, *_ = s.read(["c", "h"], "cu", 0, 2000)
    assert data[10] == 15.0
    with pytest.raises(StoreError, match="invalid aggregation"):
        s.read(["c", "h"], "ld", 0, 2000)
    data, *_ = s.read(["c", "h", ["cpu0", "cpu1"]], "fl", 0, 2000)
    assert data[2] == 6.0


def test_different_frequencies():
    s = make_store(a=(1, None), b=(5, None))
    for ts in range(0, 1000):
        s.write(["c", "h"], "a", ts, 1.0)
        if ts % 5 == 0:
            s.write(["c", "h"], "b", ts, 2.0)
    assert len(s.read(["c", "h"], "a", 0, 1000)[0]) == 1000
    assert len(s.read(["c", "h"], "b", 0, 1000)[0]) == 200


def test_reads_outside_data():
    s = make_store(m=(10, None))
    for ts in range(100, 200, 10):
        s.write(["c", "h"], "m", ts, 1.0)
    data, frm, to, _ = s.read(["c", "h"], "m", 500, 600)
    assert (len(data), frm, to) == (0, 500, 500)
    data, frm, to, _ = s.read(["c", "h"], "m", 0, 50)
    assert (len(data), frm, to) == (0, 100, 100)


def test_every_third_missing():
    s = make_store(m=(1, None))
    for ts in range(300):
        if ts % 3 != 1:
            s.write(["c", "h"], "m", ts, float(ts))
    data, *_ = s.read(["c", "h"], "m", 0, 300)
    assert all(math.isnan(data[i]) == (i % 3 == 1) for i in range(300))


def test_misaligned_children_error():
    s = make_store(m=(10, "sum"))
    for ts in range(100, 200, 10):
        s.write(["c", "h", "core0"], "m", ts, 1.0)
    for ts in range(150, 200, 10):
        s.write(["c", "h", "core1"], "m", ts, 1.0)
    with pytest.raises(StoreError, match="does not align"):
        s.read(["c", "h", ["core0", "core1"]], "m", 100, 200)


def test_unknown_metric_and_missing_host():
    s = make_store(m=(10, None))
    s.write(["c", "h"], "m", 100, 1.0)
    with pytest.raises(StoreError, match="unknown metric: nope"):
        s.read(["c", "h"], "nope", 0, 200)
    with pytest.raises(NotFoundError):
        s.read(["c", "zz"], "m", 0, 200)
    with pytest.raises(StoreError, match="invalid time range"):
        s.read(["c", "h"], "m", 300, 200)
    with pytest.raises(NotFoundError):
        s.read(["c", ""], "m", 0, 200)


def test_free_subtree_two_metrics():
    """§14.16: freeing a 3000-sample, two-metric subtree at 2*512+100 releases 3 chunks."""
    s = make_store(a=(1, None), b=(1, None))
    for ts in range(3000):
        s.write(["c", "h", "cpu0"], "a", ts, 1.0)
        s.write(["c", "h", "cpu1"], "b", ts, 1.0)
    assert s.free(["c", "h", "cpu0"], 2 * 512 + 100) == 2
    assert s.free(["c", "h", "cpu1"], 512 + 100) == 1


# §14.13 health
def test_health_states():
    s = make_store(a=(10, None), b=(10, None), c=(10, None))
    now = 10_000
    s.write(["cl", "n1"], "a", now - 10, 1.0)
    s.write(["cl", "n1", "hwthread0"], "b", now - 10, 1.0)
    s.write(["cl", "n2"], "a", now - 10, 1.0)
    s.write(["cl", "n2"], "b", now - 1000, 1.0)
    s.write(["cl", "n3"], "a", now - 1000, 1.0)
    h = s.health("cl", ["n1", "n2", "n3", "n9"], ["a", "b", "c"], now)
    assert h["n1"] == ("partial", {"degraded": [], "missing": ["c"]})
    assert h["n2"] == ("partial", {"degraded": ["b"], "missing": ["c"]})
    assert h["n3"] == ("failed", {"degraded": ["a"], "missing": ["b", "c"]})
    assert h["n9"] == ("failed", None)
    assert s.health("cl", ["n1"], ["a", "b"], now)["n1"][0] == "full"
    assert s.health("cl", ["n1"], [], now)["n1"][0] == "full"
    # staleness boundary: exactly 5 intervals old is still fresh
    s2 = make_store(a=(10, None))
    s2.write(["cl", "n"], "a", 1000, 1.0)  # start 995, end 1005
    assert s2.health("cl", ["n"], ["a"], 1055)["n"][0] == "full"
    assert s2.health("cl", ["n"], ["a"], 1056)["n"][0] == "failed"


def test_debug_tree_and_not_found():
    s = make_store(m=(10, None))
    s.write(["c", "h", "core0"], "m", 100, 1.0)
    tree = s.debug_tree(None)
    assert tree == {"c": {"h": {"core0": {"m": [{"start": 95, "len": 1, "end": 105}]}}}}
    with pytest.raises(StoreError, match=r'not found: \[\]string\{"c", "nope"\}'):
        s.debug_tree(["c", "nope"])


def test_free_creates_missing_levels():
    s = make_store(m=(10, None))
    assert s.free(["x", "y"], 100) == 0
    assert s.hosts("x") == ["y"]


# checkpoint support
def test_snapshot_and_load_roundtrip():
    s = make_store(m=(10, "sum"), n=(10, None))
    for ts in range(1000, 2000, 10):
        s.write(["c", "h", "core0"], "m", ts, ts / 10)
        s.write(["c", "h"], "n", ts, 1.5)
    snap = s.snapshot_host("c", "h", 1000, 2000)
    assert snap is not None and set(snap.children) == {"core0"}
    s2 = make_store(m=(10, "sum"), n=(10, None))
    s2.load_snapshot("c", "h", snap)
    a, fa, ta, _ = s.read(["c", "h"], "m", 1000, 2000)
    b, fb, tb, _ = s2.read(["c", "h"], "m", 1000, 2000)
    assert a.tolist() == b.tolist()
    assert s2.debug_tree(["c", "h"])["n"][0]["saved"] is True
    # restored data is not checkpointed again
    assert s2.snapshot_host("c", "h", 1000, 2000) is None
    # a later write starts a new chunk and is checkpointed
    s2.write(["c", "h"], "n", 2100, 2.0)
    snap2 = s2.snapshot_host("c", "h", 2000, 2200)
    assert list(snap2.metrics) == ["n"]


def test_load_snapshot_before_head_is_error():
    s = make_store(m=(10, None))
    s.load_snapshot("c", "h", Snapshot(metrics={"m": SeriesSnapshot(10, 1000, np.ones(5))}))
    with pytest.raises(StoreError):
        s.load_snapshot("c", "h", Snapshot(metrics={"m": SeriesSnapshot(10, 500, np.ones(5))}))


def test_chunks_sharing_a_start_after_restore():
    """§14.7: the slot index is recomputed from each chunk's own start."""
    s = make_store(m=(10, None))
    s.load_snapshot("c", "h", Snapshot(metrics={"m": SeriesSnapshot(10, 1000, np.arange(5.0))}))
    s.load_snapshot("c", "h", Snapshot(metrics={"m": SeriesSnapshot(10, 1050, np.arange(5.0, 10.0))}))
    data, frm, to, _ = s.read(["c", "h"], "m", 1000, 1100)
    assert data.tolist() == list(map(float, range(10)))


# ---------------------------------------------------------------- batch path vs reference model


class RefBuffer:
    """Per-sample reference of the Go buffer: list of [start, data, cap] chunks, oldest first."""

    def __init__(self, f: int) -> None:
        self.f = f
        self.chunks: list[list] = []

    def write(self, ts: int, v: float) -> bool:
        if not self.chunks:
            self.chunks.append([ts - self.f // 2, [], CHUNK_CAP])
        head = self.chunks[-1]
        if ts < head[0]:
            return False
        idx = (ts - head[0]) // self.f
        if idx >= head[2]:
            head = [ts - self.f // 2, [], CHUNK_CAP]
            self.chunks.append(head)
            idx = 0
        data = head[1]
        if idx < len(data):
            data[idx] = v
        else:
            data.extend([math.nan] * (idx - len(data)))
            data.append(v)
        return True


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.sampled_from([["c", "h"], ["c", "h", "core0"], ["c", "h2", "socket1", "dev0"]]),
            st.integers(0, 3000),
            st.floats(-1e6, 1e6, width=32),
        ),
        min_size=1,
        max_size=400,
    ),
    st.integers(1, 4),
)
def test_write_batch_matches_reference(ops, nbatches):
    s = make_store(a=(7, None), b=(1, None))
    ref: dict[tuple, RefBuffer] = {}
    freqs = {"a": 7, "b": 1}
    size = max(1, len(ops) // nbatches)
    written = from_past = 0
    for i in range(0, len(ops), size):
        batch = Batch()
        for metric, path, ts, v in ops[i : i + size]:
            batch.add(metric, path, ts, v)
            r = ref.setdefault((metric, tuple(path)), RefBuffer(freqs[metric]))
            if r.write(ts, v):
                written += 1
            else:
                from_past += 1
        res = s.write_batch(batch)
        assert res.written + res.from_past == len(batch.keys)
    for (metric, path), r in ref.items():
        got = values(s, list(path), metric)
        want = [c[1] for c in r.chunks]
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert eq_nan(g, np.asarray(w, dtype=np.float32).tolist())


def test_write_batch_counts_and_duplicates():
    s = make_store(m=(10, None))
    b = Batch()
    b.add("m", ["c", "h"], 1000, 1.0)
    b.add("m", ["c", "h"], 1010, 2.0)
    b.add("m", ["c", "h"], 1001, 3.0)  # same slot as 1000: last write wins
    res = s.write_batch(b)
    assert res.written == 3
    b2 = Batch()
    b2.add("m", ["c", "h"], 500, 9.0)  # before the chunk start
    b2.add("m", ["c", "h"], 1020, 4.0)
    b2.add("m", ["c", "h"], 1020, 5.0)
    res = s.write_batch(b2)
    assert (res.written, res.from_past) == (2, 1)
    assert values(s, ["c", "h"], "m") == [[3.0, 2.0, 5.0]]


def test_memory_accounting():
    s = make_store(m=(10, None))
    b = Batch()
    for h in range(100):
        for ts in range(0, 700 * 10, 10):
            b.add("m", ["c", f"h{h}"], ts, 1.0)
    s.write_batch(b)
    assert s.sample_count() == 100 * 700
    assert s.series_count() == 100
    # 700 samples per series: 512 + 188; both chunks of all series are columns of one block
    # whose 512 rows the first chunks made resident
    assert s.size_in_bytes() == 200 * 512 * 4


def test_block_rows_become_resident_as_written():
    s = make_store(m=(10, None), slow=(60, None))
    for step in range(10):
        b = Batch()
        for h in range(100):
            b.add("m", ["c", f"h{h}"], step * 10, float(h))
            if step < 3:
                b.add("slow", ["c", f"h{h}"], step * 60, float(h))
        s.write_batch(b)
    # rows reached by writes only, per frequency (the 60 s chunks have their own block)
    assert s.size_in_bytes() == 100 * 10 * 4 + 100 * 3 * 4
    assert s.free([], 10**6) == 200
    assert s.size_in_bytes() == 0 and s.chunk_count() == 0
    # freed columns are reused and read as NaN where not written again
    s.write(["c", "x"], "m", 1000, 5.0)
    s.write(["c", "x"], "m", 1030, 6.0)
    got, frm, to, _ = s.read(["c", "x"], "m", 1000, 1040)
    assert eq_nan(got.tolist(), [5.0, math.nan, math.nan, 6.0])


def ref_read(store: MemoryStore, chain: list[int], from_: int, to: int) -> tuple[list[float], int, int]:
    """The Go buffer read (spec §2.5), one instant at a time."""
    ch = store.chunks
    pos = len(chain) - 1
    while from_ < int(ch.start[chain[pos]]) + int(ch.freq[chain[pos]]) // 2:
        if pos == 0:
            from_ = int(ch.start[chain[pos]]) + int(ch.freq[chain[pos]]) // 2
            break
        pos -= 1
    out: list[float] = []
    t = from_
    while t < to:
        c = chain[pos]
        f = int(ch.freq[c])
        idx = int((t - int(ch.start[c])) / f)
        if idx >= int(ch.cap[c]):
            if pos + 1 >= len(chain):
                break
            pos += 1
            c = chain[pos]
            idx = int((t - int(ch.start[c])) / f)
        if idx >= int(ch.length[c]):
            if pos + 1 >= len(chain) or to <= int(ch.start[chain[pos + 1]]):
                break
            out.append(math.nan)
        elif t < int(ch.start[c]):
            out.append(math.nan)
        else:
            out.append(float(ch.values(c)[idx]))
        t += f
    return out, from_, t


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("w"), st.integers(0, 4000)),
            st.tuples(st.just("r"), st.integers(0, 4000), st.integers(1, 40)),
        ),
        min_size=1,
        max_size=300,
    ),
    st.integers(-100, 4200),
    st.integers(0, 4300),
)
def test_read_matches_reference(ops, frm, span):
    s = make_store(m=(5, None))
    t_restore = 0
    for op in ops:
        if op[0] == "w":
            try:
                s.write(["c", "h"], "m", op[1], float(op[1]))
            except StoreError:
                pass
        else:
            start = max(op[1], t_restore)
            try:
                s.load_snapshot(
                    "c", "h", Snapshot(metrics={"m": SeriesSnapshot(5, start, np.arange(op[2]) + 0.5)})
                )
                t_restore = start
            except StoreError:
                pass
    lvl = s._find_level(["c", "h"])
    chain = s._chain(lvl.series["m"])
    to = frm + span
    want, wfrom, wto = ref_read(s, chain, frm, to)
    got, gfrom, gto, _ = s.read(["c", "h"], "m", frm, to)
    assert (gfrom, gto) == (wfrom, wto)
    assert eq_nan(got.tolist(), want)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 3000), min_size=1, max_size=200),
    st.integers(1, 6),
    st.integers(-50, 3100),
    st.integers(0, 3200),
)
def test_aggregate_of_alike_children_equals_sum_of_reads(times, nchildren, frm, span):
    """The one-plan gather for children sharing a layout gives what per-child reads give."""
    s = make_store(m=(3, "sum"))
    for ts in sorted(times):
        b = Batch()
        for c in range(nchildren):
            b.add("m", ["c", "h", f"core{c}"], ts, float(ts % 97 + c))
        s.write_batch(b)
    to = frm + span
    got, gfrom, gto, _ = s.read(["c", "h"], "m", frm, to)
    parts = [s.read(["c", "h", f"core{c}"], "m", frm, to) for c in range(nchildren)]
    assert all((p[1], p[2]) == (gfrom, gto) for p in parts)
    want = np.sum([p[0] for p in parts], axis=0) if parts[0][0].size else np.zeros(0)
    assert eq_nan(got.tolist(), want.tolist())


def test_huge_range_costs_only_the_data_present():
    s = make_store(m=(60, None))
    for t in range(1_700_000_000, 1_700_000_000 + 600, 60):
        s.write(["c", "h"], "m", t, 1.0)
    data, frm, to, _ = s.read(["c", "h"], "m", 0, 2**62)
    assert len(data) == 10 and frm == 1_700_000_000 and to == 1_700_000_600
