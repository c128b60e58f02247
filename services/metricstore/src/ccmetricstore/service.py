"""The running metric store: memory, ingestion, persistence and the background workers.

One event loop owns the `MemoryStore`. File work (encoding, fsync, Parquet) runs in threads on
copies the loop hands out, so ingestion and queries continue while checkpoints are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cccommon.lineprotocol import LineProtocolError, StoreBatch, decode_store_batch
from cccommon.logging import get_logger

from .config import Settings
from .metrics import StoreMetrics
from .store import MemoryStore

log = get_logger("metricstore")

MAX_REPORTED_ERRORS = 10


@dataclass
class IngestResult:
    written: int = 0
    errors: list[LineProtocolError] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def error_message(self) -> str:
        shown = "; ".join(str(e) for e in self.errors[:MAX_REPORTED_ERRORS])
        more = len(self.errors) - MAX_REPORTED_ERRORS
        if more > 0:
            shown += f"; and {more} more bad line(s)"
        return f"{len(self.errors)} line(s) rejected, the other lines were stored: {shown}"


class _RateLimitedWarning:
    """One warning line per interval for a recurring condition, with the count since the last."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self.last = 0.0
        self.count = 0

    def __call__(self, n: int, msg: str) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            log.warning(msg, self.count)
            self.last = now
            self.count = 0


class MetricStoreService:
    def __init__(self, settings: Settings, metrics: StoreMetrics | None = None) -> None:
        self.settings = settings
        self.store = MemoryStore(settings.metrics)
        self.metric_index = self.store.metric_index
        self.stats = metrics or StoreMetrics()
        self.pool = ThreadPoolExecutor(max_workers=max(1, settings.num_workers), thread_name_prefix="ccms-io")
        self.journal: Any = None
        self.wal: Any = None
        self.last_checkpoint = int(time.time())
        self._tasks: list[asyncio.Task[Any]] = []
        self._checkpoint_lock = asyncio.Lock()
        self._warn_no_host = _RateLimitedWarning()
        self._warn_unsafe = _RateLimitedWarning()
        self._closed = False
        # Oldest timestamp written (or replayed from the WAL/journal) since the last checkpoint.
        # A checkpoint starts there when that is before the end of the previous one, so
        # back-filled data reaches a file before the logs that hold it are deleted.
        self._dirty_min: int | None = None

    # ------------------------------------------------------------------ ingestion

    def apply(
        self, body: bytes, default_cluster: str, source: str = "http", now: int | None = None
    ) -> IngestResult:
        """Decode a line-protocol body and write it into memory (and the upstream WAL)."""
        batch = decode_store_batch(
            body, self.metric_index, default_cluster, int(time.time()) if now is None else now
        )
        return self.apply_batch(batch, source)

    def apply_batch(self, batch: StoreBatch, source: str) -> IngestResult:
        res = IngestResult(errors=batch.errors)
        wr = self.store.write_batch(batch)
        res.written = wr.written
        skipped = {
            "unknown_metric": batch.unknown_metric,
            "no_cluster_or_host": batch.no_cluster_or_host,
            "unsafe_name": batch.unsafe_name,
            "syntax_error": len(batch.errors),
            "from_past": wr.from_past,
        }
        res.skipped = skipped
        st = self.stats
        if wr.written:
            st.lines.labels(source).inc(wr.written)
        for reason, n in skipped.items():
            if n:
                st.skipped.labels(reason).inc(n)
        if batch.no_cluster_or_host:
            self._warn_no_host(
                batch.no_cluster_or_host,
                "%d line(s) without cluster or host tag skipped (use ?cluster= or the cluster-tag of the subscription)",
            )
        if batch.unsafe_name:
            self._warn_unsafe(
                batch.unsafe_name, "%d line(s) skipped: cluster or host contains '..', '/' or '\\'"
            )
        if wr.written:
            self._note_written(batch)
        if self.wal is not None and len(batch.keys):
            self.wal.append_batch(batch)
        return res

    async def ingest(
        self, body: bytes, default_cluster: str, source: str = "http", durable: bool = True
    ) -> IngestResult:
        """Apply a body; with `durable` return only once the journal has it on disk."""
        res = self.apply(body, default_cluster, source)
        if self.journal is not None and (res.written or res.skipped.get("from_past")):
            if durable:
                await self.journal.append(body, default_cluster)
            else:
                self.journal.append_nowait(body, default_cluster)
        return res

    # ------------------------------------------------------------------ restore

    async def restore(self) -> None:
        """Load checkpoint files of the restore window, then the upstream WAL, then our journal."""
        from . import files

        s = self.settings
        t0 = time.monotonic()
        window = int(time.time() - s.restore_window) if s.restore_window > 0 else 0
        since = _dt.datetime.fromtimestamp(window).astimezone().isoformat(timespec="seconds")
        log.info("Loading checkpoints newer than %s", since)
        loop = asyncio.get_running_loop()
        nfiles = 0
        nbytes = 0
        hosts = await loop.run_in_executor(self.pool, files.list_host_dirs, s.checkpoint_dir)

        def load_host(host_dir: Path) -> list[tuple[Path, int, Any]]:
            out = []
            for path in files.select_restore_files(host_dir, window):
                try:
                    snap = files.load_snapshot_file(path)
                except Exception as e:  # noqa: BLE001 - a bad file must not stop the daemon
                    log.error("checkpoint file %s cannot be loaded, skipped: %s", path, e)
                    continue
                out.append((path, os.path.getsize(path), snap))
            return out

        futures = [(c, h, loop.run_in_executor(self.pool, load_host, d)) for c, h, d in hosts]
        for cluster, host, fut in futures:
            for path, size, snap in await fut:
                if snap.to and snap.to < window:
                    continue
                try:
                    self.store.load_snapshot(cluster, host, snap)
                except Exception as e:  # noqa: BLE001
                    log.error(
                        "checkpoint file %s does not fit the data loaded before it, skipped: %s", path, e
                    )
                    continue
                nfiles += 1
                nbytes += size
        if s.checkpoint_format == "wal":
            await self._replay_wal(hosts, window)
        if self.journal is not None:
            await self._replay_journal()
        took = time.monotonic() - t0
        log.info(
            "Checkpoints loaded (%d files, %d MB, that took %.6fs)",
            nfiles,
            round(nbytes / 1e6),
            took,
        )
        self.update_gauges()

    async def _replay_wal(self, hosts: list[tuple[str, str, Path]], window: int) -> None:
        from . import wal

        loop = asyncio.get_running_loop()
        total = 0
        for _cluster, _host, d in hosts:
            path = d / "current.wal"
            if not path.exists():
                continue
            try:
                batch = await loop.run_in_executor(self.pool, wal.replay_wal, path, window)
            except Exception as e:  # noqa: BLE001
                log.warning("WAL %s not replayed: %s", path, e)
                continue
            res = self.store.write_batch(batch)
            total += res.written
            self._note_written(batch)
        if total:
            log.info("WAL replay: %d samples restored", total)

    async def _replay_journal(self) -> None:
        count = 0
        samples = 0

        def handler(received: int, cluster: str, body: bytes) -> None:
            nonlocal count, samples
            batch = decode_store_batch(body, self.metric_index, cluster, received)
            samples += self.store.write_batch(batch).written
            self._note_written(batch)
            count += 1

        await asyncio.get_running_loop().run_in_executor(None, lambda: None)
        self.journal.replay(handler)
        if count:
            log.info("journal replay: %d acknowledged writes, %d samples restored", count, samples)

    def _note_written(self, batch: StoreBatch) -> None:
        if len(batch.times):
            t = int(np.min(batch.times))
            self._dirty_min = t if self._dirty_min is None else min(t, self._dirty_min)

    # ------------------------------------------------------------------ checkpoints

    async def checkpoint(self, final: bool = False) -> int:
        """Write every host's data since the last checkpoint; returns the number of files."""
        from . import files

        s = self.settings
        async with self._checkpoint_lock:
            t0 = time.monotonic()
            to = int(time.time())
            dirty = self._dirty_min
            self._dirty_min = None
            from_ = self.last_checkpoint if dirty is None else min(self.last_checkpoint, dirty)
            token = self.journal.rotate() if self.journal is not None else None
            if self.wal is not None:
                self.wal.pause()
            loop = asyncio.get_running_loop()
            fmt = "bin" if s.checkpoint_format == "wal" else "json"
            written: list[tuple[str, str]] = []
            failed = 0
            pending: list[tuple[str, str, asyncio.Future[Any]]] = []
            try:
                for i, (cluster, host) in enumerate(self.store.host_levels()):
                    snap = self.store.snapshot_host(cluster, host, from_, to)
                    if snap is not None and not snap.is_empty():
                        fut = loop.run_in_executor(
                            self.pool,
                            files.write_snapshot_file,
                            s.checkpoint_dir,
                            cluster,
                            host,
                            from_,
                            snap,
                            fmt,
                        )
                        pending.append((cluster, host, fut))
                    if i % 16 == 15:
                        await asyncio.sleep(0)  # let ingestion and queries run between hosts
                for cluster, host, fut in pending:
                    try:
                        await fut
                        written.append((cluster, host))
                    except Exception as e:  # noqa: BLE001
                        failed += 1
                        log.error("checkpoint of %s/%s failed: %s", cluster, host, e)
                if self.wal is not None:
                    for cluster, host in written:
                        self.wal.remove_host_wal(cluster, host)
            finally:
                if self.wal is not None and not final:
                    self.wal.resume()
            if failed == 0 or (fmt == "bin" and written):
                self.last_checkpoint = to
            else:
                self._dirty_min = from_ if self._dirty_min is None else min(from_, self._dirty_min)
            if failed == 0 and token is not None:
                self.journal.release(token)
            took = time.monotonic() - t0
            self.stats.checkpoints.inc(len(written))
            self.stats.checkpoint_seconds.set(took)
            log.info(
                "checkpoint %s: %d files written, %d failed, covering %d..%d (%.2fs)",
                "(final)" if final else "done",
                len(written),
                failed,
                from_,
                to,
                took,
            )
            return len(written)

    # ------------------------------------------------------------------ retention, memory, cleanup

    async def _used_nodes(self, t: int) -> dict[str, list[str]] | None:
        import aiohttp

        url = self.settings.backend_url.rstrip("/") + f"/api/jobs/used_nodes?ts={t}"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as sess:
                async with sess.get(url) as resp:
                    if resp.status != 200:
                        log.error("node provider %s answered %d; retention pass skipped", url, resp.status)
                        return None
                    data = await resp.json(content_type=None)
        except Exception as e:  # noqa: BLE001
            log.error("node provider %s failed: %s; retention pass skipped", url, e)
            return None
        return data if isinstance(data, dict) else {}

    async def retention_pass(self, now: float | None = None) -> int:
        s = self.settings
        t = int((time.time() if now is None else now) - s.retention)
        freed = 0
        if s.backend_url:
            used = await self._used_nodes(t)
            if used is None:
                return 0
            for cluster, host in self.store.host_levels():
                if host not in set(used.get(cluster, ())):
                    freed += self.store.free([cluster, host], t)
        else:
            freed = self.store.free([], t)
        self.stats.freed.inc(freed)
        if freed:
            log.info("retention: %d chunks older than %d freed", freed, t)
        self.update_gauges()
        return freed

    def memory_pass(self, now: float | None = None) -> int:
        cap = self.settings.memory_cap_bytes
        if cap <= 0:
            return 0
        now = time.time() if now is None else now
        freed = 0
        for frac in (0.75, 0.5, 0.25):
            if self.store.size_in_bytes() <= cap:
                break
            freed += self.store.free([], int(now - frac * self.settings.retention))
        if self.store.size_in_bytes() > cap:
            log.warning(
                "memory cap: %d bytes still held after freeing (cap %d bytes)",
                self.store.size_in_bytes(),
                cap,
            )
        if freed:
            log.warning("memory cap reached: %d chunks freed", freed)
            self.stats.freed.inc(freed)
        self.update_gauges()
        return freed

    def cleanup_sync(self, cutoff: int) -> int:
        from . import archive

        s = self.settings
        if s.cleanup_mode == "archive" and s.cleanup_dir is not None:
            return archive.cleanup_parquet(s.checkpoint_dir, s.cleanup_dir, cutoff)
        if s.cleanup_mode == "zip" and s.cleanup_dir is not None:
            return archive.cleanup_zip(s.checkpoint_dir, s.cleanup_dir, cutoff)
        return archive.cleanup_delete(s.checkpoint_dir, cutoff)

    async def cleanup_pass(self) -> int:
        cutoff = int(time.time() - self.settings.cleanup_interval)
        n = await asyncio.get_running_loop().run_in_executor(self.pool, self.cleanup_sync, cutoff)
        log.info(
            "cleanup (%s): %d checkpoint files older than %d handled", self.settings.cleanup_mode, n, cutoff
        )
        return n

    def update_gauges(self) -> None:
        st = self.stats
        st.samples.set(self.store.sample_count())
        st.series.set(self.store.series_count())
        st.bytes.set(self.store.size_in_bytes())
        if self.journal is not None:
            jc = getattr(self.journal, "stats", None)
            if jc is not None:
                st.journal_fsyncs.set(getattr(jc, "fsyncs", 0))
                st.journal_records.set(getattr(jc, "records", 0))

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        s = self.settings
        s.checkpoint_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        if s.journal_enabled:
            from .journal import Journal

            self.journal = Journal(s.journal_dir, fsync=s.journal_fsync)
        await self.restore()
        if s.checkpoint_format == "wal":
            from .wal import WalWriter

            self.wal = WalWriter(s.checkpoint_dir, max_wal_size=s.max_wal_size)
            self.store.release_hooks.append(self.wal.forget_series)
        self.last_checkpoint = int(time.time())

    def start_workers(self) -> None:
        s = self.settings

        def every(seconds: float, fn: Callable[[], Any], name: str) -> None:
            async def loop() -> None:
                while True:
                    await asyncio.sleep(seconds)
                    try:
                        r = fn()
                        if asyncio.iscoroutine(r):
                            await r
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # noqa: BLE001
                        log.exception("%s worker failed", name)

            self._tasks.append(asyncio.create_task(loop(), name=name))

        if s.retention > 0:
            every(max(s.retention / 2, 1.0), self.retention_pass, "retention")
        if s.checkpoint_interval > 0:
            every(s.checkpoint_interval, self.checkpoint, "checkpoint")
        if s.cleanup_interval > 0:
            every(s.cleanup_interval, self.cleanup_pass, "cleanup")
        if s.memory_cap_bytes > 0:

            async def memory_loop() -> None:
                while True:
                    high = self.store.size_in_bytes() > 0.8 * s.memory_cap_bytes
                    await asyncio.sleep(30 if high else 300)
                    self.memory_pass()

            self._tasks.append(asyncio.create_task(memory_loop(), name="memory-cap"))

        async def gauges() -> None:
            while True:
                await asyncio.sleep(10)
                self.update_gauges()

        self._tasks.append(asyncio.create_task(gauges(), name="gauges"))

    async def close(self) -> None:
        """Stop workers, write the final checkpoint, flush and close the logs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if self.settings.checkpoint_interval > 0 or not self.settings.legacy:
            try:
                await self.checkpoint(final=True)
            except Exception:  # noqa: BLE001
                log.exception("final checkpoint failed; the journal keeps the data for the next start")
        if self.wal is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.wal.close)
        if self.journal is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.journal.close)
        self.pool.shutdown(wait=True)


def empty_batch() -> StoreBatch:
    return StoreBatch([], np.zeros(0), np.zeros(0, dtype=np.int64), [], 0, 0, 0)
