"""The in-memory store: the level tree, series chains and the operations the API needs.

One event loop owns a MemoryStore, so no method awaits and no locks are taken; persistence
copies data out with `snapshot_host` and does its file work elsewhere.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from .buffer import (
    BLOCK_COLS,
    NO_ID,
    BlockPool,
    ChunkTable,
    _grow,
    plan_chain,
    read_chain,
    read_chains_alike,
    trunc_div,
)
from .heap import HeapTrimmer
from .snapshot import SeriesSnapshot, Snapshot

if TYPE_CHECKING:
    from cccommon.lineprotocol import StoreBatch

AGGREGATIONS = ("sum", "avg", None)


class StoreError(Exception):
    """An error whose message is the upstream string clients may already match on."""


class NotFoundError(StoreError):
    def __init__(self) -> None:
        super().__init__("[METRICSTORE]> metric or host not found")


ERR_FROM_PAST = "[METRICSTORE]> cannot write value to buffer from past"
ERR_TIME_RANGE = "[METRICSTORE]> invalid time range"
ERR_AGGREGATION = "[METRICSTORE]> invalid aggregation"
ERR_ALIGN_FRONT = (
    "[METRICSTORE]> data from lower granularities does not align (missing data prior to start of the buffers)"
)
ERR_ALIGN_BACK = (
    "[METRICSTORE]> data from lower granularities does not align (missing data after the end of the buffers)"
)
ERR_ALIGN_LEN = (
    "[METRICSTORE]> data from lower granularities does not align "
    "(collected data length is different than expected data length)"
)


@dataclass(frozen=True)
class MetricConfig:
    name: str
    frequency: int
    aggregation: str | None = None

    def __post_init__(self) -> None:
        if self.frequency <= 0:
            raise ValueError(f"metric {self.name!r}: frequency must be a positive number of seconds")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"metric {self.name!r}: invalid aggregation {self.aggregation!r}")


@dataclass
class WriteResult:
    written: int = 0
    from_past: int = 0


_NO_CHILDREN: Mapping[str, Level] = MappingProxyType({})


class Level:
    """A tree node: child levels by name and series ids by metric name.

    Kept small because there is one per host component (~75 per host): a leaf shares one empty
    read-only mapping for `children`, and the metric names are a tuple shared by all levels with
    the same metrics (`names[i]` owns `sids[i]`) instead of a dict per level.
    """

    __slots__ = ("children", "names", "sids")

    def __init__(self) -> None:
        self.children: Mapping[str, Level] = _NO_CHILDREN
        self.names: tuple[str, ...] = ()
        self.sids: tuple[int, ...] = ()

    def child(self, name: str) -> Level:
        """The child level `name`, created if missing."""
        nxt = self.children.get(name)
        if nxt is None:
            if self.children is _NO_CHILDREN:
                self.children = {}
            nxt = self.children[name] = Level()  # type: ignore[index]
        return nxt

    def sid(self, metric: str) -> int | None:
        try:
            return self.sids[self.names.index(metric)]
        except ValueError:
            return None

    def series_items(self) -> Iterator[tuple[str, int]]:
        return zip(self.names, self.sids)  # noqa: B905 - same length by construction

    @property
    def series(self) -> dict[str, int]:
        """Metric -> series id (a copy, for inspection)."""
        return dict(zip(self.names, self.sids, strict=True))


class MetricIndex(dict[str, int]):
    """Metric name -> number, carrying the store as `series_index` so that
    `decode_store_batch(body, store.metric_index, ...)` numbers series through the store."""

    __slots__ = ("series_index",)


class MemoryStore:
    """All series of all clusters, hosts and their components.

    The series index is the level tree (names -> Level, metric -> series id) plus one prefix
    cache per default cluster (line prefix bytes -> series id) that the line-protocol decoder
    fills; no key string is kept per series unless someone asks for keys (the WAL).
    """

    def __init__(self, metrics: Mapping[str, MetricConfig], initial_series: int = 1024) -> None:
        self.metrics: dict[str, MetricConfig] = dict(metrics)
        self.metric_index = MetricIndex((name, i) for i, name in enumerate(self.metrics))
        self.metric_index.series_index = self
        self.root = Level()
        self.pool = BlockPool()
        self.chunks = ChunkTable(self.pool)
        self.s_head = np.full(initial_series, NO_ID, dtype=np.int32)
        self.s_freq = np.ones(initial_series, dtype=np.int32)
        self._s_used = 0
        self._s_free: list[int] = []
        #: called with a series id when it is released (and may be reused for another series)
        self.release_hooks: list[Callable[[int], None]] = []
        self._prefix: dict[str, dict[bytes, Any]] = {}
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}  # metric-name tuples of levels
        # key string per series id, kept only once `series_keys` was asked for (the WAL)
        self._keys: list[str | None] | None = None
        self._trimmer = HeapTrimmer()

    # ------------------------------------------------------------------ series and levels

    def _new_series(self, metric: str) -> int:
        if self._s_free:
            sid = self._s_free.pop()
        else:
            sid = self._s_used
            self._s_used += 1
            if sid >= len(self.s_head):
                self.s_head = _grow(self.s_head, sid + 1)
                self.s_freq = _grow(self.s_freq, sid + 1)
        self.s_head[sid] = NO_ID
        self.s_freq[sid] = self.metrics[metric].frequency
        return sid

    def _release_series(self, sid: int) -> None:
        for cid in self._chain(sid):
            self.chunks.release(cid)
        self.s_head[sid] = NO_ID
        # cached prefixes may name this id, which will be reused: they are classified again
        for cache in self._prefix.values():
            cache.clear()
        if self._keys is not None and sid < len(self._keys):
            self._keys[sid] = None
        for hook in self.release_hooks:
            hook(sid)
        self._s_free.append(sid)

    def _find_level(self, selector: Sequence[str]) -> Level | None:
        lvl = self.root
        for name in selector:
            nxt = lvl.children.get(name)
            if nxt is None:
                return None
            lvl = nxt
        return lvl

    def _get_level(self, selector: Sequence[str]) -> Level:
        lvl = self.root
        for name in selector:
            lvl = lvl.child(name)
        return lvl

    def _series_at(self, lvl: Level, metric: str) -> int:
        sid = lvl.sid(metric)
        if sid is None:
            sid = self._new_series(metric)
            shape = lvl.names + (metric,)
            lvl.names = self._shapes.setdefault(shape, shape)
            lvl.sids = lvl.sids + (sid,)
        return sid

    def _series_for_key(self, key: str) -> int:
        """The series of a store key (`metric\\0cluster\\0host\\0type+id\\0stype+id`), created if new."""
        # interned: the same names recur in every host and would otherwise be stored per series
        metric, cluster, host, typecomp, stypecomp = map(sys.intern, key.split("\x00"))
        path = [cluster, host]
        if typecomp:
            path.append(typecomp)
            if stypecomp:
                path.append(stypecomp)
        sid = self._series_at(self._get_level(path), metric)
        keys = self._keys
        if keys is not None:
            if sid >= len(keys):
                keys.extend([None] * (sid + 1 - len(keys)))
            keys[sid] = key
        return sid

    # ------------------------------------------------------------------ SeriesIndex (line protocol)

    def prefix_cache(self, default_cluster: str) -> dict[bytes, Any]:
        """The decoder's cache of line prefixes for one default cluster (values: series ids)."""
        cache = self._prefix.get(default_cluster)
        if cache is None:
            cache = self._prefix[default_cluster] = {}
        return cache

    def series_id(self, key: str) -> int:
        return self._series_for_key(key)

    def series_keys(self, sids: np.ndarray) -> list[str]:
        """Store keys of series ids; from the first call on, keys are kept per series."""
        keys = self._keys
        if keys is None:
            keys = self._keys = [None] * self._s_used
            for path, metric, sid in self.iter_series():
                if 2 <= len(path) <= 4:
                    tcomp = path[2] if len(path) > 2 else ""
                    scomp = path[3] if len(path) > 3 else ""
                    keys[sid] = f"{metric}\x00{path[0]}\x00{path[1]}\x00{tcomp}\x00{scomp}"
        if len(keys) < self._s_used:
            keys.extend([None] * (self._s_used - len(keys)))
        return list(map(keys.__getitem__, sids.tolist()))

    def _chain(self, sid: int) -> list[int]:
        """Chunk ids of a series, oldest first."""
        out: list[int] = []
        cid = int(self.s_head[sid])
        prev = self.chunks.prev
        while cid != NO_ID:
            out.append(cid)
            cid = int(prev[cid])
        out.reverse()
        return out

    def _has_data(self, sid: int | None) -> bool:
        return sid is not None and self.s_head[sid] != NO_ID

    # ------------------------------------------------------------------ writes

    def _push_chunk(self, sid: int, cid: int) -> None:
        head = int(self.s_head[sid])
        if head != NO_ID:
            self.chunks.prev[cid] = head
        self.s_head[sid] = cid

    def _write_sid(self, sid: int, ts: int, value: float) -> bool:
        """One sample into one series (spec §2.4); False when it lies before the head chunk."""
        chunks = self.chunks
        head = int(self.s_head[sid])
        if head == NO_ID:
            f = int(self.s_freq[sid])
            head = chunks.new(ts - f // 2, f)
            self.s_head[sid] = head
            idx = 0
        else:
            start = int(chunks.start[head])
            if ts < start:
                return False
            f = int(chunks.freq[head])
            idx = (ts - start) // f
            if idx >= chunks.cap[head]:
                cid = chunks.new(ts - f // 2, f)
                self._push_chunk(sid, cid)
                head = cid
                idx = 0
        chunks.set_value(head, idx, value)
        return True

    def write(self, selector: Sequence[str], metric: str, ts: int, value: float) -> None:
        """Write one sample to the level named by `selector` (creating it)."""
        if metric not in self.metrics:
            raise StoreError(f"[METRICSTORE]> unknown metric: {metric}")
        sid = self._series_at(self._get_level(selector), metric)
        if not self._write_sid(sid, int(ts), float(value)):
            raise StoreError(ERR_FROM_PAST)

    def write_batch(self, batch: StoreBatch) -> WriteResult:
        """Apply a decoded batch with a few vectorised operations.

        Rows of series that need a new chunk in this batch are applied one by one in batch order
        (order matters there); all other rows go through numpy in one pass.
        """
        n = len(batch.keys)
        res = WriteResult()
        if n == 0:
            return res
        given = getattr(batch, "sids", None)  # set when decoded through this store's index
        if given is not None:
            sids = np.asarray(given, dtype=np.int64)
        else:
            memo: dict[str, int] = {}
            for key in batch.keys:
                if key not in memo:
                    memo[key] = self._series_for_key(key)
            sids = np.fromiter(map(memo.__getitem__, batch.keys), dtype=np.int64, count=n)
        ts = np.asarray(batch.times, dtype=np.int64)
        vals = np.asarray(batch.values, dtype=np.float64)
        chunks = self.chunks
        head = self.s_head[sids].astype(np.int64)
        has_head = head >= 0
        if not has_head.all():
            # First writes: give every new series its empty head chunk, anchored at its first
            # row as a sequential write would; the rows themselves are applied below.
            new_sids, first = np.unique(sids[~has_head], return_index=True)
            rows = np.flatnonzero(~has_head)[first]
            f = self.s_freq[new_sids]
            self.s_head[new_sids] = chunks.new_many(ts[rows] - f // 2, f)
            head = self.s_head[sids].astype(np.int64)
            has_head = head >= 0
        safe_head = np.where(has_head, head, 0)
        start = chunks.start[safe_head]
        freq = chunks.freq[safe_head]
        idx = (ts - start) // freq
        special = ~has_head | (idx >= chunks.cap[safe_head]) | chunks.is_array[safe_head]
        if special.any():
            seq = np.isin(sids, np.unique(sids[special]))
            vec = np.flatnonzero(~seq)
            seq_rows = np.flatnonzero(seq)
        else:
            vec = None
            seq_rows = None

        if vec is None:
            v_head, v_ts, v_start, v_idx, v_vals = head, ts, start, idx, vals
        else:
            v_head, v_ts, v_start, v_idx, v_vals = head[vec], ts[vec], start[vec], idx[vec], vals[vec]
        if len(v_head):
            ok = v_ts >= v_start
            if not ok.all():
                res.from_past += int((~ok).sum())
                v_head, v_idx, v_vals = v_head[ok], v_idx[ok], v_vals[ok]
            if len(v_head):
                need = (v_idx + 1).astype(np.int32)
                chunks.init_rows(v_head, need)
                self.pool.flat[chunks.elem_base(v_head) + v_idx * BLOCK_COLS] = v_vals
                np.maximum.at(chunks.length, v_head, need)
                res.written += len(v_head)

        if seq_rows is not None:
            write = self._write_sid
            for r in seq_rows.tolist():
                if write(int(sids[r]), int(ts[r]), float(vals[r])):
                    res.written += 1
                else:
                    res.from_past += 1
        # the batch's transient buffers are gone: hand free heap pages back now and then
        self._trimmer.maybe_trim()
        return res

    # ------------------------------------------------------------------ reads

    def _match(
        self, lvl: Level, selector: Sequence[str | Sequence[str]], metric: str, out: list[int]
    ) -> None:
        if len(selector) == 1 and not isinstance(selector[0], str):
            # the common last step (type-ids of a host): children with the series directly
            get = lvl.children.get
            s_head = self.s_head
            for name in selector[0]:
                child = get(name)
                if child is None:
                    continue
                names = child.names
                if metric in names:
                    sid = child.sids[names.index(metric)]
                    if s_head.item(sid) != NO_ID:
                        out.append(sid)
                        continue
                self._match(child, (), metric, out)
            return
        if not selector:
            sid = lvl.sid(metric)
            if sid is not None and self.s_head[sid] != NO_ID:
                out.append(sid)
                return
            for child in lvl.children.values():
                self._match(child, selector, metric, out)
            return
        head, rest = selector[0], selector[1:]
        if isinstance(head, str):
            if head == "":
                return
            child = lvl.children.get(head)
            if child is not None:
                self._match(child, rest, metric, out)
            return
        for name in head:
            child = lvl.children.get(name)
            if child is not None:
                self._match(child, rest, metric, out)

    def _chain_matrix(self, sids: list[int]) -> np.ndarray | None:
        """Chunk ids of several chains (rows, oldest first) if all have the same paged layout."""
        chunks = self.chunks
        cur = self.s_head[np.asarray(sids, dtype=np.int64)].astype(np.int64)
        cols = [cur]
        while True:
            nxt = chunks.prev[cur].astype(np.int64)
            done = nxt == NO_ID
            if done.all():
                break
            if done.any():
                return None
            cols.append(nxt)
            cur = nxt
        matrix = np.stack(cols[::-1], axis=1)
        if chunks.is_array[matrix].any():
            return None
        for arr in (chunks.start, chunks.length, chunks.freq):
            vals = arr[matrix]
            if not (vals == vals[0]).all():
                return None
        return matrix

    def _buffer_len(self, chain: list[int], from_: int, to: int, f: int) -> int:
        """Output slots the first chain can fill: `(to-from)//f + 1` bounded by the data present.

        Later chains read into the range the first one narrowed, so this bounds every read and a
        request like `from: 0, to: 2**62` costs no more memory than the data it reaches.
        """
        full = (to - from_) // f + 1
        chunks = self.chunks
        lo = max(from_, int(chunks.start[chain[0]]))
        ids = np.asarray(chain, dtype=np.int64)
        reach = int((chunks.start[ids] + chunks.cap[ids].astype(np.int64) * chunks.freq[ids]).max())
        hi = min(to, max(reach, chunks.end(chain[-1])) + len(chain) * f)
        return max(1, min(full, (hi - lo) // f + 2))

    def match(self, selector: Sequence[str | Sequence[str]], metric: str) -> list[int]:
        """Series ids a selector reaches for `metric` (spec §5.3 matching)."""
        out: list[int] = []
        self._match(self.root, selector, metric, out)
        return out

    def read(
        self,
        selector: Sequence[str | Sequence[str]],
        metric: str,
        from_: int,
        to: int,
        resolution: int = 0,
    ) -> tuple[np.ndarray, int, int, int]:
        """Data of all matched series, aggregated as configured and resampled (spec §5.3)."""
        if from_ > to:
            raise StoreError(ERR_TIME_RANGE)
        minfo = self.metrics.get(metric)
        if minfo is None:
            raise StoreError(f"[METRICSTORE]> unknown metric: {metric}")
        f = minfo.frequency
        sids = self.match(selector, metric)
        if not sids:
            raise NotFoundError()
        alike = self._chain_matrix(sids) if len(sids) > 1 else None
        first = alike[0].tolist() if alike is not None else self._chain(sids[0])
        buf = np.zeros(self._buffer_len(first, from_, to, f), dtype=np.float64)
        data = buf
        n = 0
        if alike is not None:
            # Children written together share one chunk layout: one plan, one gather per segment.
            segments, clen, from_, to = plan_chain(self.chunks, alike[0].tolist(), from_, to, len(buf))
            read_chains_alike(self.chunks, alike, segments, buf)
            data = buf[:clen]
            n = len(sids)
            sids = []
        for sid in sids:
            clen, cfrom, cto = read_chain(self.chunks, self._chain(sid), from_, to, data)
            cdata = data[:clen]
            if n == 0:
                from_, to = cfrom, cto
            elif from_ != cfrom or to != cto or len(data) != clen:
                if trunc_div(from_ - cfrom, f) != 0:
                    raise StoreError(ERR_ALIGN_FRONT)
                newlen = clen - trunc_div(to - cto, f)
                if newlen < 1:
                    raise StoreError(ERR_ALIGN_BACK)
                cdata = data[:newlen]
                if newlen != len(data):
                    raise StoreError(ERR_ALIGN_LEN)
                from_, to = cfrom, cto
            data = cdata
            n += 1
        if n > 1:
            if minfo.aggregation == "avg":
                data *= 1.0 / n
            elif minfo.aggregation != "sum":
                raise StoreError(ERR_AGGREGATION)
        if resolution:
            from cccommon.lttb import lttb

            try:
                data, res = lttb(data, f, resolution)
            except ValueError as exc:
                raise StoreError(str(exc)) from exc
            return data, from_, to, res
        return data, from_, to, f

    # ------------------------------------------------------------------ freeing

    def _free_series(self, sid: int, t: int) -> tuple[bool, int]:
        """Drop stale chunks of one chain (spec §2.6); return (chain now empty, chunks dropped)."""
        chain = self._chain(sid)
        if not chain:
            return True, 0
        chunks = self.chunks
        stale = [chunks.end(c) < t for c in chain]
        count = sum(stale)
        if count == 0:
            return False, 0
        # Keep the newest run of chunks that are all fresh; the rest goes.
        keep_from = len(chain)
        while keep_from > 0 and not stale[keep_from - 1]:
            keep_from -= 1
        for cid in chain[:keep_from]:
            chunks.release(cid)
        if keep_from == len(chain):
            self.s_head[sid] = NO_ID
            return True, count
        chunks.prev[chain[keep_from]] = NO_ID
        return False, count

    def _free_level(self, lvl: Level, t: int) -> int:
        n = 0
        for sid in lvl.sids:
            if self.s_head[sid] != NO_ID:
                _, m = self._free_series(sid, t)
                n += m
        for name in list(lvl.children):
            child = lvl.children[name]
            n += self._free_level(child, t)
            if self._level_empty(child):
                self._drop_level(child)
                del lvl.children[name]  # type: ignore[attr-defined]
        return n

    def _level_empty(self, lvl: Level) -> bool:
        return not lvl.children and all(self.s_head[s] == NO_ID for s in lvl.sids)

    def _drop_level(self, lvl: Level) -> None:
        for child in lvl.children.values():
            self._drop_level(child)
        for sid in lvl.sids:
            self._release_series(sid)
        lvl.names = ()
        lvl.sids = ()
        lvl.children = _NO_CHILDREN

    def free(self, selector: Sequence[str], t: int) -> int:
        """Release chunks ending before `t` below `selector`; missing levels are created (upstream)."""
        return self._free_level(self._get_level(selector), int(t))

    def force_free(self) -> int:
        """Drop the oldest chunk of every chain (emergency memory relief)."""
        n = 0
        for sid in range(self._s_used):
            head = int(self.s_head[sid])
            if head == NO_ID:
                continue
            chain = self._chain(sid)
            oldest = chain[0]
            self.chunks.release(oldest)
            n += 1
            if len(chain) == 1:
                self.s_head[sid] = NO_ID
            else:
                self.chunks.prev[chain[1]] = NO_ID
        return n

    # ------------------------------------------------------------------ inspection

    def clusters(self) -> list[str]:
        return list(self.root.children)

    def hosts(self, cluster: str) -> list[str]:
        lvl = self.root.children.get(cluster)
        return list(lvl.children) if lvl is not None else []

    def host_levels(self) -> list[tuple[str, str]]:
        return [(c, h) for c, cl in self.root.children.items() for h in cl.children]

    def _debug_level(self, lvl: Level) -> dict:
        out: dict = {}
        chunks = self.chunks
        for metric, sid in lvl.series_items():
            chain = self._chain(sid)
            if not chain:
                continue
            entries = []
            for cid in chain:
                start = int(chunks.start[cid])
                length = int(chunks.length[cid])
                e = {"start": start, "len": length, "end": start + length * int(chunks.freq[cid])}
                if chunks.archived[cid]:
                    e["saved"] = True
                entries.append(e)
            out[metric] = entries
        for name, child in lvl.children.items():
            out[name] = self._debug_level(child)
        return out

    def debug_tree(self, selector: Sequence[str] | None = None) -> dict:
        """Chunk layout of the tree or a subtree, as `/api/debug` shows it."""
        lvl = self.root
        if selector:
            found = self._find_level(selector)
            if found is None:
                quoted = ", ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in selector)
                raise StoreError(f"[METRICSTORE]> not found: []string{{{quoted}}}")
            lvl = found
        return self._debug_level(lvl)

    def health(
        self, cluster: str, nodes: Sequence[str], metric_names: Sequence[str], now: int
    ) -> dict[str, tuple[str, dict[str, list[str]] | None]]:
        """Per node: ("full"|"partial"|"failed", {"degraded": [...], "missing": [...]}) (spec §8)."""
        result: dict[str, tuple[str, dict[str, list[str]] | None]] = {}
        chunks = self.chunks
        for node in nodes:
            lvl = self._find_level([cluster, node])
            if lvl is None:
                result[node] = ("failed", None)
                continue
            fresh: set[str] = set()
            stale: set[str] = set()
            stack = [lvl]
            while stack:
                cur = stack.pop()
                stack.extend(cur.children.values())
                for metric, sid in cur.series_items():
                    head = int(self.s_head[sid])
                    if head == NO_ID:
                        continue
                    f = int(chunks.freq[head])
                    end = int(chunks.start[head]) + int(chunks.length[head]) * f
                    if now - end > 5 * f:
                        stale.add(metric)
                    else:
                        fresh.add(metric)
            degraded: list[str] = []
            missing: list[str] = []
            for m in metric_names:
                if m not in self.metrics:
                    missing.append(m)
                elif m in stale:
                    degraded.append(m)
                elif m not in fresh:
                    missing.append(m)
            if not degraded and not missing:
                state = "full"
            elif len(metric_names) - len(degraded) - len(missing) == 0:
                state = "failed"
            else:
                state = "partial"
            result[node] = (state, {"degraded": degraded, "missing": missing})
        return result

    def size_in_bytes(self) -> int:
        """Bytes held by sample storage (pages in use plus restored arrays)."""
        return self.chunks.data_bytes()

    def sample_count(self) -> int:
        return self.chunks.total_length()

    def series_count(self) -> int:
        return self._s_used - len(self._s_free)

    def chunk_count(self) -> int:
        return self.chunks.live_count()

    # ------------------------------------------------------------------ persistence

    def _snapshot_level(self, lvl: Level, from_: int, to: int) -> Snapshot | None:
        chunks = self.chunks
        snap = Snapshot(from_=from_, to=to)
        for metric, sid in lvl.series_items():
            chain = self._chain(sid)
            if not chain:
                continue
            overlapping = [c for c in chain if from_ <= chunks.end(c) and int(chunks.start[c]) <= to]
            if all(chunks.archived[c] for c in overlapping):
                continue
            freq = int(chunks.freq[chain[-1]])
            out = np.zeros((to - from_) // freq + 1, dtype=np.float64)
            n, cfrom, _ = read_chain(chunks, chain, from_, to, out)
            if n == 0:
                continue
            snap.metrics[metric] = SeriesSnapshot(frequency=freq, start=cfrom, data=out[:n].copy())
        for name, child in lvl.children.items():
            csnap = self._snapshot_level(child, from_, to)
            if csnap is not None:
                snap.children[name] = csnap
        if not snap.metrics and not snap.children:
            return None
        return snap

    def snapshot_host(self, cluster: str, host: str, from_: int, to: int) -> Snapshot | None:
        """Data of one host written since `from_` (non-archived chunks), as a checkpoint holds it."""
        lvl = self._find_level([cluster, host])
        if lvl is None:
            return None
        return self._snapshot_level(lvl, int(from_), int(to))

    def _load_level(self, lvl: Level, snap: Snapshot) -> None:
        for metric, series in snap.metrics.items():
            if metric not in self.metrics or len(series.data) == 0:
                continue
            sid = self._series_at(lvl, metric)
            head = int(self.s_head[sid])
            if head != NO_ID and series.start < int(self.chunks.start[head]):
                raise StoreError(
                    f"[METRICSTORE]> cannot load checkpoint data for {metric}: starts before data already loaded"
                )
            cid = self.chunks.new(int(series.start), int(series.frequency), data=series.data, archived=True)
            self._push_chunk(sid, cid)
        for name, child in snap.children.items():
            self._load_level(lvl.child(name), child)

    def load_snapshot(self, cluster: str, host: str, snap: Snapshot) -> None:
        """Append a checkpoint's chunks (archived, exact length) as new heads of their chains."""
        self._load_level(self._get_level([cluster, host]), snap)

    def iter_series(self) -> Iterator[tuple[list[str], str, int]]:
        """(level path, metric, series id) for every series, depth first."""
        stack: list[tuple[list[str], Level]] = [([], self.root)]
        while stack:
            path, lvl = stack.pop()
            for metric, sid in lvl.series_items():
                yield path, metric, sid
            for name, child in lvl.children.items():
                stack.append((path + [name], child))
