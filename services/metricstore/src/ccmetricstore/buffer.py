"""Chunked time series stored column-wise in large float32 blocks.

Every (level, metric) pair is a *series*; a series owns a chain of *chunks* (newest = head) with
exactly the semantics of the Go store (spec metricstore §2.3-2.6): a write-created chunk has 512
slots anchored at `first timestamp - frequency//2`, a chunk restored from a checkpoint has exactly
its length as capacity, NaN marks a missing sample.

Memory layout: a *block* is a (512 slots x 512 chunks) float32 matrix inside one pooled array;
chunk id `c` is column `c % 512` of block `c // 512`, so a chunk needs no page table and no
numpy object of its own. Series written together fill their columns in lockstep, so a block's
rows become resident one at a time (a row of 512 float32 is half an OS page): memory follows
the samples actually held, and a 12 h series of 720 samples costs ~2,880 bytes plus ~26 bytes
of chunk metadata per chunk. Rows are set to NaN only when a write first reaches them, so
untouched rows never become resident. Blocks belong to one frequency (chunks of fast and slow
series never share rows). Restored chunks longer than 512 samples keep an exact-length array.
"""

from __future__ import annotations

import mmap

import numpy as np

CHUNK_CAP = 512
BLOCK_SHIFT = 9
BLOCK_COLS = 1 << BLOCK_SHIFT  # chunks per block
COL_MASK = BLOCK_COLS - 1
BLOCK_ROWS = CHUNK_CAP  # slots per chunk
NO_ID = -1
ARRAY_CLASS = 0  # arena key of exact-length array chunks (real frequencies are > 0)


_MMAP_MIN = 1 << 20


def _empty(shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
    """`np.empty` on its own anonymous mapping (for 1 MiB and more).

    Only touched 4 KiB pages become resident (numpy would ask for transparent huge pages,
    making 2 MiB resident for one touched byte), and the memory goes back to the OS when the
    array is dropped: tables that grow by copying leave no holes in the malloc heap.
    """
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dt.itemsize
    if nbytes < _MMAP_MIN:
        return np.empty(shape, dtype=dt)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buf, dtype=dt).reshape(shape)


def _grow(arr: np.ndarray, size: int) -> np.ndarray:
    """Return `arr` enlarged to at least `size` rows.

    New rows are left uninitialised (so the OS does not make them resident before use): every
    caller sets all fields of a row when it hands the row out.
    """
    if len(arr) >= size:
        return arr
    new_len = max(size, int(len(arr) * 1.5) + 16)
    out = _empty((new_len,) + arr.shape[1:], arr.dtype)
    out[: len(arr)] = arr
    return out


class BlockPool:
    """The float32 matrix holding all block rows; rows of a block are initialised on demand."""

    def __init__(self, initial_blocks: int = 2) -> None:
        self.data = _empty((initial_blocks * BLOCK_ROWS, BLOCK_COLS), np.float32)
        self._flat = self.data.reshape(-1)
        self._used = 0  # blocks handed out
        self.init = np.zeros(initial_blocks, dtype=np.int32)  # rows already NaN-filled, per pool block

    @property
    def flat(self) -> np.ndarray:
        return self._flat

    def new_block(self) -> int:
        """A pool block whose rows are all uninitialised; the matrix grows (copying only
        initialised rows) when full."""
        b = self._used
        if (b + 1) * BLOCK_ROWS > len(self.data):
            nblocks = max(b + 1, int(len(self.data) // BLOCK_ROWS * 1.5) + 1)
            grown = _empty((nblocks * BLOCK_ROWS, BLOCK_COLS), np.float32)
            for i in range(b):
                r0 = i * BLOCK_ROWS
                n = int(self.init[i])
                if n:
                    grown[r0 : r0 + n] = self.data[r0 : r0 + n]
            self.data = grown
            self._flat = grown.reshape(-1)
            self.init = _grow(self.init, nblocks)
        self.init[b] = 0
        self._used = b + 1
        return b

    def init_rows(self, b: int, rows: int) -> None:
        """NaN-fill rows of pool block `b` up to `rows` (the first write reaching them)."""
        have = int(self.init[b])
        if rows > have:
            r0 = b * BLOCK_ROWS
            self.data[r0 + have : r0 + rows] = np.nan
            self.init[b] = rows

    def resident_rows(self) -> int:
        return int(self.init[: self._used].sum(dtype=np.int64))


class _Arena:
    """Chunk ids of one class (a frequency, or exact-length arrays): free ids and a bump block."""

    __slots__ = ("free", "block", "next_col")

    def __init__(self) -> None:
        self.free: list[int] = []
        self.block = NO_ID
        self.next_col = BLOCK_COLS


class ChunkTable:
    """Chunk metadata in parallel arrays indexed by chunk id; data in block columns or arrays."""

    def __init__(self, pool: BlockPool, initial_blocks: int = 2) -> None:
        self.pool = pool
        n = initial_blocks * BLOCK_COLS
        self.start = np.zeros(n, dtype=np.int64)
        self.length = np.zeros(n, dtype=np.int32)
        self.cap = np.zeros(n, dtype=np.int32)
        self.freq = np.ones(n, dtype=np.int32)
        self.prev = np.full(n, NO_ID, dtype=np.int32)
        self.archived = np.zeros(n, dtype=np.bool_)
        self.is_array = np.zeros(n, dtype=np.bool_)
        self.arrays: dict[int, np.ndarray] = {}
        # per chunk block: first element of its data in pool.flat (-1 for array blocks),
        # its pool block, its arena and its live chunk count
        self.b_base = np.zeros(initial_blocks, dtype=np.int64)
        self.b_pool = np.zeros(initial_blocks, dtype=np.int32)
        self.b_live = np.zeros(initial_blocks, dtype=np.int32)
        self.b_class: list[int] = []
        self._arenas: dict[int, _Arena] = {}

    # ------------------------------------------------------------------ allocation

    def _new_block(self, cls: int) -> int:
        blk = len(self.b_class)
        self.b_class.append(cls)
        if blk >= len(self.b_base):
            self.b_base = _grow(self.b_base, blk + 1)
            self.b_pool = _grow(self.b_pool, blk + 1)
            self.b_live = _grow(self.b_live, blk + 1)
            size = len(self.b_base) * BLOCK_COLS
            self.start = _grow(self.start, size)
            self.length = _grow(self.length, size)
            self.cap = _grow(self.cap, size)
            self.freq = _grow(self.freq, size)
            self.prev = _grow(self.prev, size)
            self.archived = _grow(self.archived, size)
            self.is_array = _grow(self.is_array, size)
        if cls == ARRAY_CLASS:
            self.b_pool[blk] = NO_ID
            self.b_base[blk] = NO_ID
        else:
            pb = self.pool.new_block()
            self.b_pool[blk] = pb
            self.b_base[blk] = pb * BLOCK_ROWS * BLOCK_COLS
        self.b_live[blk] = 0
        self.length[blk * BLOCK_COLS : (blk + 1) * BLOCK_COLS] = 0
        return blk

    def _take(self, cls: int, count: int) -> np.ndarray:
        """`count` unused chunk ids of class `cls`: freed ones first, then fresh columns."""
        arena = self._arenas.get(cls)
        if arena is None:
            arena = self._arenas[cls] = _Arena()
        ids = np.empty(count, dtype=np.int64)
        reuse = min(count, len(arena.free))
        if reuse:
            ids[:reuse] = arena.free[-reuse:]
            del arena.free[-reuse:]
        got = reuse
        while got < count:
            if arena.next_col >= BLOCK_COLS:
                arena.block = self._new_block(cls)
                arena.next_col = 0
            k = min(count - got, BLOCK_COLS - arena.next_col)
            first = arena.block * BLOCK_COLS + arena.next_col
            ids[got : got + k] = np.arange(first, first + k)
            arena.next_col += k
            got += k
        np.add.at(self.b_live, ids >> BLOCK_SHIFT, 1)
        return ids

    def _take_one(self, cls: int) -> int:
        arena = self._arenas.get(cls)
        if arena is not None and arena.free:
            cid = arena.free.pop()
            self.b_live[cid >> BLOCK_SHIFT] += 1
            return cid
        return int(self._take(cls, 1)[0])

    def live_count(self) -> int:
        return int(self.b_live.sum(dtype=np.int64)) if self.b_class else 0

    def total_length(self) -> int:
        """Samples in all live chunks (released chunks keep length 0)."""
        n = len(self.b_class) * BLOCK_COLS
        return int(self.length[:n].sum(dtype=np.int64))

    def new(self, start: int, freq: int, data: np.ndarray | None = None, archived: bool = False) -> int:
        """Create a chunk: capacity 512 for writes, or (data given) exact-length as restored."""
        if data is not None and len(data) > CHUNK_CAP:
            cid = self._take_one(ARRAY_CLASS)
            arr = np.ascontiguousarray(data, dtype=np.float32)
            self.arrays[cid] = arr
            self.is_array[cid] = True
            self.length[cid] = len(arr)
            self.cap[cid] = len(arr)
        else:
            cid = self._take_one(freq)
            self.is_array[cid] = False
            if data is None:
                self.length[cid] = 0
                self.cap[cid] = CHUNK_CAP
            else:
                n = len(data)
                self.length[cid] = n
                self.cap[cid] = n
                if n:
                    self.pool.init_rows(int(self.b_pool[cid >> BLOCK_SHIFT]), n)
                    self.column(cid)[:n] = data
        self.start[cid] = start
        self.freq[cid] = freq
        self.prev[cid] = NO_ID
        self.archived[cid] = archived
        return cid

    def new_many(self, starts: np.ndarray, freqs: np.ndarray) -> np.ndarray:
        """Create empty write chunks in bulk (first writes of many new series in one batch)."""
        freqs = np.asarray(freqs)
        ids = np.empty(len(starts), dtype=np.int64)
        for f in np.unique(freqs).tolist():
            sel = np.flatnonzero(freqs == f)
            ids[sel] = self._take(int(f), len(sel))
        self.start[ids] = starts
        self.freq[ids] = freqs
        self.length[ids] = 0
        self.cap[ids] = CHUNK_CAP
        self.prev[ids] = NO_ID
        self.archived[ids] = False
        self.is_array[ids] = False
        return ids

    def release(self, cid: int) -> None:
        """Return a chunk's id; its column is reset to NaN for the next chunk that gets it."""
        blk = cid >> BLOCK_SHIFT
        if self.is_array[cid]:
            self.arrays.pop(cid, None)
            self.is_array[cid] = False
        else:
            n = int(self.pool.init[self.b_pool[blk]])
            if n:
                self.column(cid)[:n] = np.nan
        self.length[cid] = 0
        self.prev[cid] = NO_ID
        self.b_live[blk] -= 1
        self._arenas[self.b_class[blk]].free.append(cid)

    # ------------------------------------------------------------------ data access

    def column(self, cid: int) -> np.ndarray:
        """All 512 slots of a block chunk (a strided view)."""
        blk = cid >> BLOCK_SHIFT
        r0 = int(self.b_pool[blk]) * BLOCK_ROWS
        return self.pool.data[r0 : r0 + BLOCK_ROWS, cid & COL_MASK]

    def elem_base(self, cids: np.ndarray) -> np.ndarray:
        """Index in `pool.flat` of slot 0 of each (block) chunk; slot i is at `+ i * BLOCK_COLS`."""
        return self.b_base[cids >> BLOCK_SHIFT] + (cids & COL_MASK)

    def init_rows(self, cids: np.ndarray, rows: np.ndarray) -> None:
        """Make sure slots `< rows` of the (block) chunks exist, NaN-filling rows first reached."""
        pb = self.b_pool[cids >> BLOCK_SHIFT]
        over = rows > self.pool.init[pb]
        if not over.any():
            return
        pb = pb[over]
        rows = rows[over]
        need = np.zeros(int(pb.max()) + 1, dtype=np.int64)
        np.maximum.at(need, pb, rows)
        for b in np.flatnonzero(need).tolist():
            self.pool.init_rows(b, int(need[b]))

    def values(self, cid: int) -> np.ndarray:
        """The chunk's `length` values as float32 (a view: copy it to keep it)."""
        n = int(self.length[cid])
        if self.is_array[cid]:
            return self.arrays[cid][:n]
        return self.column(cid)[:n]

    def set_value(self, cid: int, idx: int, value: float) -> None:
        """Store one value at slot `idx` (< cap) and extend the length as the Go buffer does."""
        if self.is_array[cid]:
            self.arrays[cid][idx] = value
        else:
            blk = cid >> BLOCK_SHIFT
            pb = int(self.b_pool[blk])
            if idx >= self.pool.init[pb]:
                self.pool.init_rows(pb, idx + 1)
            self.pool.flat[int(self.b_base[blk]) + (cid & COL_MASK) + idx * BLOCK_COLS] = value
        if idx + 1 > self.length[cid]:
            self.length[cid] = idx + 1

    def end(self, cid: int) -> int:
        """`firstWrite + len*f`, the end used by retention and checkpoint selection."""
        f = int(self.freq[cid])
        return int(self.start[cid]) + f // 2 + int(self.length[cid]) * f

    def nbytes(self, cid: int) -> int:
        """Bytes the chunk holds resident (its column's initialised rows, or its array)."""
        if self.is_array[cid]:
            return self.arrays[cid].nbytes
        return int(self.pool.init[self.b_pool[cid >> BLOCK_SHIFT]]) * 4

    def data_bytes(self) -> int:
        """Bytes of sample storage held by live chunks (as `nbytes` summed over them)."""
        nb = len(self.b_class)
        pb = self.b_pool[:nb]
        rows = np.where(pb >= 0, self.pool.init[np.maximum(pb, 0)], 0).astype(np.int64)
        arrays = sum(a.nbytes for a in self.arrays.values())
        return int((rows * self.b_live[:nb]).sum()) * 4 + arrays


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


def _row_sums(part: np.ndarray) -> np.ndarray:
    """Sum of each row of a float32 matrix in float64 (exact in any order unless magnitudes
    differ by 2**29): widened to a contiguous copy, then one matrix-vector product."""
    return part.astype(np.float64, order="C") @ np.ones(part.shape[1])


def read_chains_alike(
    chunks: ChunkTable, chains: np.ndarray, segments: list[Segment], out: np.ndarray
) -> None:
    """Accumulate many chains of identical block layout (rows of `chains`, oldest chunk first)
    into `out`, following one plan: one gather per segment instead of a read per chain."""
    data = chunks.pool.data
    flat = chunks.pool.flat
    for i, k, ordinal, slot in segments:
        if ordinal < 0:
            out[i : i + k] += np.nan
            continue
        cids = chains[:, ordinal]
        lo = int(cids.min())
        hi = int(cids.max())
        if hi - lo == len(cids) - 1:
            # chunks created together have consecutive ids (chunk ids are unique): slices of rows
            for blk in range(lo >> BLOCK_SHIFT, (hi >> BLOCK_SHIFT) + 1):
                a = max(lo, blk << BLOCK_SHIFT) & COL_MASK
                b = (min(hi, ((blk + 1) << BLOCK_SHIFT) - 1) & COL_MASK) + 1
                r0 = int(chunks.b_pool[blk]) * BLOCK_ROWS + slot
                out[i : i + k] += _row_sums(data[r0 : r0 + k, a:b])
        else:
            base = chunks.elem_base(cids)
            part = flat[(np.arange(slot, slot + k, dtype=np.int64) * BLOCK_COLS)[:, None] + base[None, :]]
            out[i : i + k] += _row_sums(part)
