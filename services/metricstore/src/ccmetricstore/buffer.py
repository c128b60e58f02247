"""Chunked time series on pooled numpy pages.

Every (level, metric) pair is a *series*; a series owns a chain of *chunks* (newest = head) with
exactly the semantics of the Go store (spec metricstore §2.3-2.6): a write-created chunk has 512
slots anchored at `first timestamp - frequency//2`, a chunk restored from a checkpoint has exactly
its length as capacity, NaN marks a missing sample.

Instead of one numpy array per chunk, values live in 64-slot float32 pages of one pooled array,
and chunk/series bookkeeping lives in parallel numpy arrays indexed by integer ids. That keeps the
memory per sample close to 4 bytes and lets a whole ingest batch be applied with a few vectorised
numpy operations instead of per-sample Python.
"""

from __future__ import annotations

import numpy as np

CHUNK_CAP = 512
PAGE = 64
PAGE_SHIFT = 6
PAGES_PER_CHUNK = CHUNK_CAP // PAGE
NO_ID = -1
NAN_PAGE = 0


def _grow(arr: np.ndarray, size: int) -> np.ndarray:
    """Return `arr` enlarged to at least `size` rows.

    New rows are left uninitialised (so the OS does not make them resident before use): every
    caller sets all fields of a row when it hands the row out.
    """
    if len(arr) >= size:
        return arr
    new_len = max(size, int(len(arr) * 1.5) + 16)
    out = np.empty((new_len,) + arr.shape[1:], dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class PagePool:
    """Fixed-size float32 pages handed out by id; a released page is reset to NaN and reused."""

    def __init__(self, initial_pages: int = 1024) -> None:
        self.data = np.empty((initial_pages, PAGE), dtype=np.float32)
        self._flat = self.data.reshape(-1)
        # Page 0 stays NaN forever: gathers of never-written pages read it instead of branching.
        self.data[NAN_PAGE] = np.nan
        self._used = 1  # pages ever handed out (high-water mark), page 0 included
        self._free: list[int] = []

    @property
    def flat(self) -> np.ndarray:
        return self._flat

    def allocated(self) -> int:
        return self._used - 1 - len(self._free)

    def alloc(self, count: int) -> np.ndarray:
        """Hand out `count` NaN-filled pages; the array grows (never shrinks) when needed."""
        ids = np.empty(count, dtype=np.int64)
        reuse = min(count, len(self._free))
        if reuse:
            ids[:reuse] = self._free[-reuse:]
            del self._free[-reuse:]
        fresh = count - reuse
        if fresh:
            need = self._used + fresh
            if need > len(self.data):
                new_len = max(need, int(len(self.data) * 1.5))
                # np.empty leaves the tail untouched, so it only becomes resident once used.
                grown = np.empty((new_len, PAGE), dtype=np.float32)
                grown[: self._used] = self.data[: self._used]
                self.data = grown
                self._flat = grown.reshape(-1)
            ids[reuse:] = np.arange(self._used, need)
            self._used = need
        self.data[ids] = np.nan
        return ids

    def alloc_one(self) -> int:
        """`alloc(1)` without the array overhead (the per-sample write path uses it)."""
        if self._free:
            page = self._free.pop()
        elif self._used < len(self.data):
            page = self._used
            self._used += 1
        else:
            return int(self.alloc(1)[0])
        self.data[page] = np.nan
        return page

    def release(self, ids: np.ndarray | list[int]) -> None:
        ids = [int(i) for i in ids if i >= 0]
        self._free.extend(ids)


class ChunkTable:
    """Chunk metadata in parallel arrays; chunk data either in pool pages or in an exact array."""

    def __init__(self, pool: PagePool, initial: int = 1024) -> None:
        self.pool = pool
        self.start = np.zeros(initial, dtype=np.int64)
        self.length = np.zeros(initial, dtype=np.int32)
        self.cap = np.zeros(initial, dtype=np.int32)
        self.freq = np.ones(initial, dtype=np.int64)
        self.prev = np.full(initial, NO_ID, dtype=np.int32)
        self.next = np.full(initial, NO_ID, dtype=np.int32)
        self.archived = np.zeros(initial, dtype=np.bool_)
        self.is_array = np.zeros(initial, dtype=np.bool_)
        self.pages = np.full((initial, PAGES_PER_CHUNK), NO_ID, dtype=np.int32)
        self.arrays: dict[int, np.ndarray] = {}
        self._used = 0
        self._free: list[int] = []

    def live_count(self) -> int:
        return self._used - len(self._free)

    def total_length(self) -> int:
        """Samples in all live chunks (released chunks keep length 0)."""
        return int(self.length[: self._used].sum(dtype=np.int64))

    def _ensure(self, size: int) -> None:
        if size <= len(self.start):
            return
        self.start = _grow(self.start, size)
        self.length = _grow(self.length, size)
        self.cap = _grow(self.cap, size)
        self.freq = _grow(self.freq, size)
        self.prev = _grow(self.prev, size)
        self.next = _grow(self.next, size)
        self.archived = _grow(self.archived, size)
        self.is_array = _grow(self.is_array, size)
        self.pages = _grow(self.pages, size)

    def new(self, start: int, freq: int, data: np.ndarray | None = None, archived: bool = False) -> int:
        """Create a chunk: paged with capacity 512, or (data given) exact-length as restored."""
        if self._free:
            cid = self._free.pop()
        else:
            cid = self._used
            self._used += 1
            self._ensure(self._used)
        self.start[cid] = start
        self.freq[cid] = freq
        self.prev[cid] = NO_ID
        self.next[cid] = NO_ID
        self.archived[cid] = archived
        self.pages[cid] = NO_ID
        if data is None:
            self.length[cid] = 0
            self.cap[cid] = CHUNK_CAP
            self.is_array[cid] = False
        else:
            arr = np.ascontiguousarray(data, dtype=np.float32)
            self.arrays[cid] = arr
            self.length[cid] = len(arr)
            self.cap[cid] = len(arr)
            self.is_array[cid] = True
        return cid

    def new_many(self, starts: np.ndarray, freqs: np.ndarray) -> np.ndarray:
        """Create empty paged chunks in bulk (first writes of many new series in one batch)."""
        count = len(starts)
        reuse = min(count, len(self._free))
        ids = np.empty(count, dtype=np.int64)
        if reuse:
            ids[:reuse] = self._free[-reuse:]
            del self._free[-reuse:]
        if count > reuse:
            ids[reuse:] = np.arange(self._used, self._used + count - reuse)
            self._used += count - reuse
            self._ensure(self._used)
        self.start[ids] = starts
        self.freq[ids] = freqs
        self.length[ids] = 0
        self.cap[ids] = CHUNK_CAP
        self.prev[ids] = NO_ID
        self.next[ids] = NO_ID
        self.archived[ids] = False
        self.is_array[ids] = False
        self.pages[ids] = NO_ID
        return ids

    def release(self, cid: int) -> None:
        if self.is_array[cid]:
            self.arrays.pop(cid, None)
            self.is_array[cid] = False
        else:
            pages = self.pages[cid]
            used = pages[pages >= 0]
            if len(used):
                self.pool.release(used)
            self.pages[cid] = NO_ID
        self.length[cid] = 0
        self.prev[cid] = NO_ID
        self.next[cid] = NO_ID
        self._free.append(cid)

    def values(self, cid: int) -> np.ndarray:
        """The chunk's `length` values as float32 (a view for restored chunks, a copy for paged)."""
        n = int(self.length[cid])
        if self.is_array[cid]:
            return self.arrays[cid][:n]
        npages = (n + PAGE - 1) >> PAGE_SHIFT
        pages = self.pages[cid, :npages]
        pages = np.where(pages >= 0, pages, NAN_PAGE)
        return self.pool.data[pages].reshape(-1)[:n]

    def set_value(self, cid: int, idx: int, value: float) -> None:
        """Store one value at slot `idx` (< cap) and extend the length as the Go buffer does."""
        if self.is_array[cid]:
            self.arrays[cid][idx] = value
        else:
            p = idx >> PAGE_SHIFT
            page = int(self.pages[cid, p])
            if page < 0:
                page = self.pool.alloc_one()
                self.pages[cid, p] = page
            self.pool.data[page, idx & (PAGE - 1)] = value
        if idx + 1 > self.length[cid]:
            self.length[cid] = idx + 1

    def end(self, cid: int) -> int:
        """`firstWrite + len*f`, the end used by retention and checkpoint selection."""
        f = int(self.freq[cid])
        return int(self.start[cid]) + f // 2 + int(self.length[cid]) * f

    def nbytes(self, cid: int) -> int:
        if self.is_array[cid]:
            return self.arrays[cid].nbytes
        return int((self.pages[cid] >= 0).sum()) * PAGE * 4


def trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go does (Python's // floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


# A read plan is a list of segments (out_index, count, chunk_ordinal, slot): `count` outputs
# starting at `out_index` come from slots `slot…` of the chain's chunk number `chunk_ordinal`
# (oldest = 0), or are NaN when `chunk_ordinal` is -1.
Segment = tuple[int, int, int, int]


def plan_chain(
    chunks: ChunkTable, chain: list[int], from_: int, to: int, limit: int
) -> tuple[list[Segment], int, int, int]:
    """Walk the Go buffer read (spec §2.5) run by run; return (segments, n, from', to')."""
    segments: list[Segment] = []
    if not chain:
        return segments, 0, from_, from_
    pos = len(chain) - 1  # start at the head and walk back
    while True:
        cid = chain[pos]
        first_write = int(chunks.start[cid]) + int(chunks.freq[cid]) // 2
        if from_ >= first_write:
            break
        if pos == 0:
            from_ = first_write
            break
        pos -= 1

    t = from_
    i = 0
    cid = chain[pos]
    while t < to and i < limit:
        start = int(chunks.start[cid])
        f = int(chunks.freq[cid])
        cap = int(chunks.cap[cid])
        length = int(chunks.length[cid])
        idx = trunc_div(t - start, f)
        if idx >= cap:
            if pos + 1 >= len(chain):
                break
            pos += 1
            cid = chain[pos]
            start = int(chunks.start[cid])
            f = int(chunks.freq[cid])
            length = int(chunks.length[cid])
            idx = trunc_div(t - start, f)
            # Exactly one step is taken with the new chunk before the capacity is checked again.
            if idx >= length:
                if pos + 1 >= len(chain) or to <= int(chunks.start[chain[pos + 1]]):
                    break
                segments.append((i, 1, -1, 0))
            elif t < start:
                segments.append((i, 1, -1, 0))
            else:
                segments.append((i, 1, pos, idx))
            i += 1
            t += f
            continue

        remaining = min(-(-(to - t) // f), limit - i)
        if t < start:  # instants before this chunk's start read as NaN
            k = min(-(-(start - t) // f), remaining)
            segments.append((i, k, -1, 0))
        elif idx < length:  # instants with data
            k = min(length - idx, remaining)
            segments.append((i, k, pos, idx))
        else:  # past the chunk's length but inside its capacity
            if pos + 1 >= len(chain) or to <= int(chunks.start[chain[pos + 1]]):
                break
            k = min(cap - idx, remaining)
            segments.append((i, k, -1, 0))
        i += k
        t += k * f
    return segments, i, from_, t


def read_chain(
    chunks: ChunkTable, chain: list[int], from_: int, to: int, out: np.ndarray
) -> tuple[int, int, int]:
    """Accumulate one chain over [from_, to) into `out` (spec §2.5); return (n, from', to')."""
    segments, n, from_, to = plan_chain(chunks, chain, from_, to, len(out))
    for i, k, ordinal, slot in segments:
        if ordinal < 0:
            out[i : i + k] += np.nan
        else:
            out[i : i + k] += chunks.values(chain[ordinal])[slot : slot + k]
    return n, from_, to


def read_chains_alike(
    chunks: ChunkTable, chains: np.ndarray, segments: list[Segment], out: np.ndarray
) -> None:
    """Accumulate many chains of identical paged layout (rows of `chains`, oldest chunk first)
    into `out`, following one plan: one gather per segment instead of a read per chain."""
    pool = chunks.pool.data
    for i, k, ordinal, slot in segments:
        if ordinal < 0:
            out[i : i + k] += np.nan
            continue
        cids = chains[:, ordinal]
        p0 = slot >> PAGE_SHIFT
        p1 = (slot + k - 1) >> PAGE_SHIFT
        pages = chunks.pages[cids, p0 : p1 + 1]
        pages = np.where(pages >= 0, pages, NAN_PAGE)
        vals = pool[pages].reshape(len(cids), -1)
        off = slot - (p0 << PAGE_SHIFT)
        out[i : i + k] += vals[:, off : off + k].sum(axis=0, dtype=np.float64)
