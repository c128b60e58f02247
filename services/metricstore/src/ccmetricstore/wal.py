"""Upstream's write-ahead log (`<checkpoints>/<cluster>/<host>/current.wal`, spec §12.5).

Written only with `checkpoints.file-format: "wal"`, byte-compatible with cc-metric-store so a
site can move between the Go and the Python daemon without losing the data since the last
binary snapshot. Little-endian:

    file header  u32 0xCC1DA701
    record       u32 0xCC1DA7A1 | u32 payload_len | payload | u32 CRC32-IEEE(payload)
    payload      i64 ts | u16 metric_len | metric | u8 nsel | nsel x (u8 len | bytes) | u32 f32 bits

The writer takes decoded batches from the ingestion path: with the C accelerator it encodes
them right there (about 0.1 µs per record) into one buffered file per host; without it a
background thread encodes them. Either way a background thread flushes every second (and on
pause/close), as upstream does. Durability of acknowledged writes is the job of the journal
(`journal.py`); this log exists for compatibility with upstream's restart procedure.
"""

from __future__ import annotations

import collections
import logging
import struct
import threading
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cccommon.lineprotocol import StoreBatch

try:  # C encoder of the records (libs/cccommon/setup.py); the Python loop below is the fallback
    from cccommon._lpscan import wal_records as _wal_records_c
    from cccommon._lpscan import wal_records_sids as _wal_records_sids_c
except ImportError:  # pragma: no cover
    _wal_records_c = None
    _wal_records_sids_c = None

log = logging.getLogger("ccmetricstore.wal")

FILE_MAGIC = 0xCC1DA701
RECORD_MAGIC = 0xCC1DA7A1
MAX_PAYLOAD = 1 << 20
WAL_NAME = "current.wal"

_FILE_HEADER = struct.pack("<I", FILE_MAGIC)
_REC_HEAD = struct.Struct("<II")
_CRC = struct.Struct("<I")
_TS = struct.Struct("<q")
_U16 = struct.Struct("<H")

# Pending rows above this are dropped (counted, logged) instead of growing without bound when
# the disk cannot keep up; upstream drops when its 65 536-record queue is full.
MAX_PENDING_ROWS = 4_000_000


class WalError(Exception):
    """A WAL file that cannot be replayed at all (wrong header)."""


def encode_selector(metric: str, selector: list[str] | tuple[str, ...]) -> bytes:
    """The middle of a payload: u16 metric_len | metric | u8 nsel | (u8 len | bytes)*."""
    mb = metric.encode()
    parts = [_U16.pack(len(mb)), mb, bytes((len(selector),))]
    for s in selector:
        sb = s.encode()
        if len(sb) > 255:
            raise ValueError(f"selector component longer than 255 bytes: {s[:40]!r}...")
        parts.append(bytes((len(sb),)))
        parts.append(sb)
    return b"".join(parts)


def encode_record(ts: int, metric: str, selector: list[str] | tuple[str, ...], value: float) -> bytes:
    payload = _TS.pack(ts) + encode_selector(metric, selector) + struct.pack("<f", value)
    return _REC_HEAD.pack(RECORD_MAGIC, len(payload)) + payload + _CRC.pack(zlib.crc32(payload))


def _split_key(key: str) -> tuple[str, str, bytes]:
    """(cluster, host, payload middle) of a store key `metric\\0cluster\\0host\\0type\\0stype`."""
    metric, cluster, host, typ, styp = key.split("\x00")
    sel = [typ] if typ else []
    if typ and styp:
        sel.append(styp)
    return cluster, host, encode_selector(metric, sel)


def read_records(path: Path) -> list[tuple[int, str, list[str], float]]:
    """All intact records of a WAL file: (ts, metric, selector, value); stops at the first bad one."""
    data = Path(path).read_bytes()
    if len(data) < 4 or _CRC.unpack_from(data, 0)[0] != FILE_MAGIC:
        raise WalError(f"{path}: not a WAL file (bad header)")
    out: list[tuple[int, str, list[str], float]] = []
    pos = 4
    n = len(data)
    while pos + 8 <= n:
        magic, plen = _REC_HEAD.unpack_from(data, pos)
        if magic != RECORD_MAGIC or plen > MAX_PAYLOAD or pos + 8 + plen + 4 > n:
            break
        payload = data[pos + 8 : pos + 8 + plen]
        if zlib.crc32(payload) != _CRC.unpack_from(data, pos + 8 + plen)[0]:
            break
        pos += 12 + plen
        try:
            ts = _TS.unpack_from(payload, 0)[0]
            mlen = _U16.unpack_from(payload, 8)[0]
            p = 10
            metric = payload[p : p + mlen].decode()
            p += mlen
            nsel = payload[p]
            p += 1
            sel = []
            for _ in range(nsel):
                ln = payload[p]
                sel.append(payload[p + 1 : p + 1 + ln].decode())
                p += 1 + ln
            if p + 4 != plen:
                break
            value = struct.unpack_from("<f", payload, p)[0]
        except (IndexError, struct.error, UnicodeDecodeError):
            break
        out.append((ts, metric, sel, value))
    return out


def replay_wal(path: Path, window: int) -> StoreBatch:
    """A store batch of the records of `<cluster>/<host>/current.wal` not older than `window`."""
    path = Path(path)
    host = path.parent.name
    cluster = path.parent.parent.name
    recs = read_records(path)
    keys: list[str] = []
    vals: list[float] = []
    times: list[int] = []
    for ts, metric, sel, value in recs:
        if ts < window:
            continue
        typ = sel[0] if sel else ""
        styp = sel[1] if len(sel) > 1 else ""
        if len(sel) > 2:  # deeper than the store's levels: not something we wrote
            continue
        keys.append(f"{metric}\x00{cluster}\x00{host}\x00{typ}\x00{styp}")
        vals.append(value)
        times.append(ts)
    return StoreBatch(keys, np.array(vals, dtype=np.float64), np.array(times, dtype=np.int64))


class WalStats:
    def __init__(self) -> None:
        self.records = 0
        self.dropped = 0
        self.rotations = 0
        self.errors = 0


class WalWriter:
    """Background writer of per-host `current.wal` files."""

    def __init__(
        self, checkpoint_dir: Path, max_wal_size: int = 0, flush_interval: float = 1.0, inline: bool = True
    ) -> None:
        self.dir = Path(checkpoint_dir)
        #: encode and buffer on the caller's thread (the background thread then only flushes)
        self.inline = inline
        self.max_wal_size = max_wal_size
        self.flush_interval = flush_interval
        self.stats = WalStats()
        self._queue: collections.deque[tuple[list[str], np.ndarray, np.ndarray]] = collections.deque()
        self._pending_rows = 0
        self._cv = threading.Condition()
        self._io = threading.Lock()  # guards _files against remove_host_wal during writes
        self._files: dict[tuple[str, str], tuple[BinaryIO, int]] = {}
        self._prefix: dict[str, tuple[str, str, bytes]] = {}
        self._gcache: dict[str, tuple[int, bytes]] = {}  # key -> (group id, payload middle)
        self._groups: dict[tuple[str, str], int] = {}
        self._group_names: list[tuple[str, str]] = []
        #: series id -> (group id, payload middle), for batches decoded through the store's index
        self._by_sid: list[tuple[int, bytes] | None] = []
        self._paused = False
        self._closing = False
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="ccms-wal", daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- producer side

    def append_batch(self, batch: StoreBatch) -> None:
        n = len(batch.keys)
        if n == 0 or self._closing:
            return
        if self._paused:
            return  # upstream: records arriving during a snapshot live in memory only
        if self.inline and _wal_records_c is not None:
            # encoding takes ~0.1 us per record in C and the write goes to a 1 MiB buffer: cheaper
            # here than handing the batch to the writer thread (which then only flushes)
            try:
                sids = getattr(batch, "sids", None)
                if sids is not None and _wal_records_sids_c is not None:
                    self._write_sids(batch, np.asarray(sids, dtype="<i8"))
                else:
                    self._write([(batch.keys, batch.times, batch.values)])
            except Exception:  # noqa: BLE001 - the WAL must never fail a write
                self.stats.errors += 1
                log.exception("WAL write failed")
            return
        with self._cv:
            if self._pending_rows + n > MAX_PENDING_ROWS:
                self.stats.dropped += n
                if self.stats.dropped % 10_000 < n:
                    log.warning("WAL queue full: %d records dropped so far", self.stats.dropped)
                return
            self._queue.append((batch.keys, batch.times, batch.values))
            self._pending_rows += n
            self._idle.clear()
            self._cv.notify()

    def pause(self) -> None:
        """Stop accepting records and wait until the queued ones are on disk (before a snapshot)."""
        self._paused = True
        self.flush()

    def resume(self) -> None:
        self._paused = False

    def flush(self, timeout: float = 60.0) -> None:
        with self._cv:
            self._cv.notify()
        self._idle.wait(timeout)
        with self._io:
            for f, _ in self._files.values():
                f.flush()

    def remove_host_wal(self, cluster: str, host: str) -> None:
        """Delete a host's log after its snapshot was written; the next record starts a new one."""
        with self._io:
            entry = self._files.pop((cluster, host), None)
            if entry is not None:
                entry[0].close()
            try:
                (self.dir / cluster / host / WAL_NAME).unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                log.error("cannot remove %s/%s/%s: %s", cluster, host, WAL_NAME, e)

    def close(self) -> None:
        self.flush()
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout=30)
        with self._io:
            for f, _ in self._files.values():
                try:
                    f.close()
                except OSError as e:
                    log.error("closing WAL file failed: %s", e)
            self._files.clear()

    # -------------------------------------------------------------- writer thread

    def _run(self) -> None:
        while True:
            with self._cv:
                if not self._queue and not self._closing:
                    self._idle.set()
                    self._cv.wait(self.flush_interval)
                items = list(self._queue)
                self._queue.clear()
                self._pending_rows = 0
                closing = self._closing
            if items:
                try:
                    self._write(items)
                except Exception:  # noqa: BLE001 - the writer must survive disk errors
                    self.stats.errors += 1
                    log.exception("WAL write failed")
            with self._io:
                for f, _ in self._files.values():
                    try:
                        f.flush()
                    except OSError as e:
                        self.stats.errors += 1
                        log.error("WAL flush failed: %s", e)
            if closing and not self._queue:
                self._idle.set()
                return
            with self._cv:
                if not self._queue:
                    self._idle.set()

    def _encode_c(
        self, items: list[tuple[list[str], np.ndarray, np.ndarray]]
    ) -> dict[tuple[str, str], list[bytes]]:
        per_host: dict[tuple[str, str], list[bytes]] = {}
        gcache = self._gcache
        for keys, times, values in items:
            tsb = np.asarray(times, dtype="<i8").tobytes()
            vb = np.asarray(values, dtype="<f4").tobytes()
            keys = keys if isinstance(keys, list) else list(keys)
            while True:
                out = _wal_records_c(keys, gcache, tsb, vb, len(self._group_names))
                if not isinstance(out, str):
                    break
                self._cache_key(out, keys)
            for gid, data in enumerate(out):
                if data is not None:
                    per_host.setdefault(self._group_names[gid], []).append(data)
        return per_host

    def _entry(self, key: str) -> tuple[int, bytes]:
        """(group id, payload middle) of a store key; unencodable keys get a discarded group."""
        try:
            cluster, host, mid = _split_key(key)
        except ValueError as e:
            log.warning("record not written to the WAL: %s", e)
            cluster, host, mid = "\x00", "\x00", b""
        gid = self._groups.get((cluster, host))
        if gid is None:
            gid = self._groups[(cluster, host)] = len(self._group_names)
            self._group_names.append((cluster, host))
        return gid, mid

    def _cache_key(self, key: str, keys: list[str]) -> None:
        """Add `key` (and the other new keys of the batch) to the encoder's cache."""
        gcache = self._gcache
        if len(gcache) > 2_000_000:
            gcache.clear()
        for k in [key] + [k for k in dict.fromkeys(keys) if k not in gcache]:
            if k not in gcache:
                gcache[k] = self._entry(k)

    def forget_series(self, sid: int) -> None:
        """The store released series `sid`; the id may come back for another series."""
        if sid < len(self._by_sid):
            self._by_sid[sid] = None

    def _write_sids(self, batch: StoreBatch, sids: np.ndarray) -> None:
        """Encode a batch by series id: a list lookup per record instead of hashing its key."""
        tsb = np.asarray(batch.times, dtype="<i8").tobytes()
        vb = np.asarray(batch.values, dtype="<f4").tobytes()
        sb = sids.tobytes()
        table = self._by_sid
        while True:
            out = _wal_records_sids_c(sb, table, tsb, vb, len(self._group_names))
            if not isinstance(out, int):
                break
            # series this writer has not seen (new, or first since start): their keys, once
            keys = batch.keys
            top = int(sids.max()) + 1
            if len(table) < top:
                table.extend([None] * (top - len(table)))
            for i, sid in enumerate(sids.tolist()):
                if table[sid] is None:
                    table[sid] = self._entry(keys[i])
        per_host: dict[tuple[str, str], list[bytes]] = {}
        for gid, data in enumerate(out):
            if data is not None:
                per_host.setdefault(self._group_names[gid], []).append(data)
        per_host.pop(("\x00", "\x00"), None)
        self._store(per_host, len(sids))

    def _write(self, items: list[tuple[list[str], np.ndarray, np.ndarray]]) -> None:
        if _wal_records_c is not None:
            per_host = self._encode_c(items)
            per_host.pop(("\x00", "\x00"), None)
            self._store(per_host, sum(len(k) for k, _, _ in items))
            return
        per_host = {}
        prefix = self._prefix
        pack_head = _REC_HEAD.pack
        pack_crc = _CRC.pack
        crc32 = zlib.crc32
        for keys, times, values in items:
            tsb = np.asarray(times, dtype="<i8").tobytes()
            vb = np.asarray(values, dtype="<f4").tobytes()
            for i, key in enumerate(keys):
                p = prefix.get(key)
                if p is None:
                    if len(prefix) > 2_000_000:
                        prefix.clear()
                    try:
                        p = prefix[key] = _split_key(key)
                    except ValueError as e:
                        log.warning("record not written to the WAL: %s", e)
                        continue
                payload = tsb[8 * i : 8 * i + 8] + p[2] + vb[4 * i : 4 * i + 4]
                rec = pack_head(RECORD_MAGIC, len(payload)) + payload + pack_crc(crc32(payload))
                lst = per_host.get((p[0], p[1]))
                if lst is None:
                    lst = per_host[(p[0], p[1])] = []
                lst.append(rec)
        self._store(per_host, sum(len(k) for k, _, _ in items))

    def _store(self, per_host: dict[tuple[str, str], list[bytes]], nrecords: int) -> None:
        with self._io:
            for ch, recs in per_host.items():
                data = b"".join(recs)
                f, size = self._open(ch)
                if self.max_wal_size > 0 and size + len(data) > self.max_wal_size and size > 4:
                    f.close()
                    self.stats.rotations += 1
                    log.warning(
                        "WAL of %s/%s exceeds max-wal-size (%d bytes): restarted",
                        ch[0],
                        ch[1],
                        self.max_wal_size,
                    )
                    del self._files[ch]
                    f, size = self._open(ch, truncate=True)
                f.write(data)
                self._files[ch] = (f, size + len(data))
            self.stats.records += nrecords

    def _open(self, ch: tuple[str, str], truncate: bool = False) -> tuple[BinaryIO, int]:
        entry = self._files.get(ch)
        if entry is not None:
            return entry
        d = self.dir / ch[0] / ch[1]
        d.mkdir(parents=True, exist_ok=True, mode=0o755)
        path = d / WAL_NAME
        size = 0 if truncate else (path.stat().st_size if path.exists() else 0)
        if size >= 4:
            with open(path, "rb") as h:
                if h.read(4) != _FILE_HEADER:
                    log.warning("%s has no WAL header: started anew", path)
                    size = 0
        if size < 4:
            f = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - kept open across writes
            f.write(_FILE_HEADER)
            size = 4
        else:
            f = open(path, "ab", buffering=1 << 20)  # noqa: SIM115
        self._files[ch] = (f, size)
        return f, size
