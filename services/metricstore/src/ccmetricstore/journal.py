"""The write journal: zero loss of acknowledged writes (beyond upstream).

Every accepted `/api/write` body (and every NATS message) is appended, as received, to the
current segment `<journal-dir>/journal-<seq>.log` before the HTTP reply. With `fsync` on (the
default) the reply waits for `fdatasync`; concurrent writers share one sync (group commit), so
the cost is one disk flush per batch of requests, not per request. Without `fsync` the record
is in the page cache when the reply leaves: it survives `kill -9` of the daemon, not a power cut.

A checkpoint calls `rotate()` before it snapshots memory and `release(token)` once every host
file is written: the segments before the token are then covered by checkpoint files and deleted.
On start, `replay()` hands the records of the remaining segments back to the store, in order.

Segment layout, little-endian:

    header  8 bytes  b"CCJRNL01"
    record  u32 magic 0xCC10A7A1 | u32 rest_len | i64 received (unix s) | u16 cluster_len |
            cluster | body | u32 CRC32 of (received .. body)

A torn record at the end of a segment (crash during the write) ends the replay of that segment;
it was never acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("ccmetricstore.journal")

HEADER = b"CCJRNL01"
MAGIC = 0xCC10A7A1
_HEAD = struct.Struct("<IIqH")  # magic, rest_len, received, cluster_len
_CRC = struct.Struct("<I")
_SEG_RE = re.compile(r"^journal-(\d{12})\.log$")


class JournalStats:
    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0
        self.fsyncs = 0
        self.segments_released = 0


def encode_record(received: int, cluster: str, body: bytes) -> bytes:
    cb = cluster.encode()
    rest = len(cb) + len(body) + 8 + 2 + 4
    head = _HEAD.pack(MAGIC, rest, received, len(cb))
    crc = zlib.crc32(body, zlib.crc32(cb, zlib.crc32(head[8:])))
    return b"".join((head, cb, body, _CRC.pack(crc)))


def read_segment(path: Path) -> tuple[list[tuple[int, str, bytes]], int]:
    """Intact records of a segment and the number of trailing bytes that were not."""
    data = Path(path).read_bytes()
    if not data.startswith(HEADER):
        return [], len(data)
    pos = len(HEADER)
    n = len(data)
    out: list[tuple[int, str, bytes]] = []
    while pos + _HEAD.size <= n:
        magic, rest, received, clen = _HEAD.unpack_from(data, pos)
        end = pos + 8 + rest
        if magic != MAGIC or rest < 14 + clen or end > n:
            break
        cstart = pos + _HEAD.size
        bstart = cstart + clen
        crc = zlib.crc32(data[pos + 8 : end - 4])
        if crc != _CRC.unpack_from(data, end - 4)[0]:
            break
        try:
            cluster = data[cstart:bstart].decode()
        except UnicodeDecodeError:
            break
        out.append((received, cluster, data[bstart : end - 4]))
        pos = end
    return out, n - pos


class Journal:
    def __init__(self, directory: Path, fsync: bool = True, sync_interval: float = 1.0) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.fsync = fsync
        self.sync_interval = sync_interval
        self.stats = JournalStats()
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._segments: list[tuple[int, Path]] = self._list_segments()
        self._seq = (self._segments[-1][0] + 1) if self._segments else 1
        self._fd = -1
        self._open_segment()
        self._written = 0  # records written so far
        self._synced = 0  # records known to be on disk
        self._dirty: set[int] = set()
        self._retired: list[int] = []  # fds of rotated segments, closed after their last sync
        self._sync_wanted = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closed = False
        self._sync_error: OSError | None = None
        self._thread = threading.Thread(target=self._sync_loop, name="ccms-journal", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ files

    def _list_segments(self) -> list[tuple[int, Path]]:
        segs = []
        for p in self.dir.iterdir():
            m = _SEG_RE.match(p.name)
            if m:
                segs.append((int(m.group(1)), p))
        segs.sort()
        return segs

    def _open_segment(self) -> None:
        path = self.dir / f"journal-{self._seq:012d}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
        os.write(fd, HEADER)
        if self.fsync:
            # the new file's directory entry must survive a crash too
            os.fsync(fd)
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self._fd = fd
        self._segments.append((self._seq, path))

    # ------------------------------------------------------------------ writing

    def _write(self, body: bytes, cluster: str, received: int | None) -> int:
        rec = encode_record(int(time.time()) if received is None else received, cluster, body)
        with self._lock:
            if self._closed:
                raise RuntimeError("journal is closed")
            view = memoryview(rec)
            while view:
                done = os.write(self._fd, view)
                view = view[done:]
            self._dirty.add(self._fd)
            self._written += 1
            self.stats.records += 1
            self.stats.bytes += len(rec)
            return self._written

    async def append(self, body: bytes, cluster: str, received: int | None = None) -> None:
        """Append a record; returns once it is on disk (with fsync) or in the page cache."""
        n = self._write(body, cluster, received)
        if not self.fsync:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._cv:
            if self._synced >= n:
                return
            self._waiters.append((n, fut))
            self._sync_wanted = True
            self._cv.notify()
        await fut

    def append_nowait(self, body: bytes, cluster: str, received: int | None = None) -> None:
        """Append without waiting for the disk (NATS: there is nobody to answer)."""
        self._write(body, cluster, received)

    def _sync_loop(self) -> None:
        while True:
            with self._cv:
                if not self._sync_wanted and not self._closed:
                    self._cv.wait(self.sync_interval)
                self._sync_wanted = False
                target = self._written
                dirty = list(self._dirty)
                self._dirty.clear()
                retired = self._retired
                self._retired = []
                closed = self._closed
            err: OSError | None = None
            if self.fsync:
                for fd in dirty:
                    try:
                        os.fdatasync(fd)
                    except OSError as e:
                        err = e
                if dirty:
                    self.stats.fsyncs += 1
            for fd in retired:
                try:
                    os.close(fd)
                except OSError:
                    pass
            with self._cv:
                if err is None:
                    self._synced = max(self._synced, target)
                ready = [(n, f) for n, f in self._waiters if n <= target]
                self._waiters = [(n, f) for n, f in self._waiters if n > target]
            if err is not None:
                log.error("journal fdatasync failed: %s; the affected writes are answered with an error", err)
            for _, fut in ready:
                fut.get_loop().call_soon_threadsafe(_resolve, fut, err)
            if closed:
                return

    # ------------------------------------------------------------------ checkpoints

    def rotate(self) -> int:
        """Start a new segment; the returned token releases everything before it."""
        with self._lock:
            old = self._fd
            self._seq += 1
            self._open_segment()
            if self.fsync:
                self._retired.append(old)  # closed by the sync thread after its last fdatasync
                self._dirty.add(old)
                self._sync_wanted = True
                self._cv.notify()
            else:
                os.close(old)
                self._dirty.discard(old)
            return self._seq

    def release(self, token: int) -> int:
        """Delete the segments written before `rotate()` returned `token`."""
        with self._lock:
            keep, drop = [], []
            for seq, path in self._segments:
                (drop if seq < token else keep).append((seq, path))
            self._segments = keep
        for _, path in drop:
            try:
                path.unlink()
                self.stats.segments_released += 1
            except FileNotFoundError:
                pass
            except OSError as e:
                log.error("cannot delete journal segment %s: %s", path, e)
        return len(drop)

    # ------------------------------------------------------------------ restore

    def replay(self, handler: Callable[[int, str, bytes], None]) -> int:
        """Hand the records of the segments from before this start to `handler`, oldest first."""
        count = 0
        with self._lock:
            segs = [(s, p) for s, p in self._segments if s < self._seq]
        for _, path in segs:
            try:
                recs, torn = read_segment(path)
            except OSError as e:
                log.error("journal segment %s cannot be read: %s", path, e)
                continue
            if torn:
                log.warning("journal segment %s: %d bytes after the last intact record ignored", path, torn)
            for received, cluster, body in recs:
                try:
                    handler(received, cluster, body)
                except Exception:  # noqa: BLE001 - one bad record must not stop the restore
                    log.exception("journal record of %s (received %d) not replayed", path, received)
                count += 1
        return count

    def pending_segments(self) -> list[Path]:
        with self._lock:
            return [p for _, p in self._segments]

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._dirty.add(self._fd)
            self._retired.append(self._fd)
            self._sync_wanted = True
            self._cv.notify()
        self._thread.join(timeout=60)


def _resolve(fut: asyncio.Future[None], err: OSError | None) -> None:
    if fut.done():
        return
    if err is None:
        fut.set_result(None)
    else:
        fut.set_exception(err)
