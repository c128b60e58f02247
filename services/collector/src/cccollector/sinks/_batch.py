"""Batching, bounded buffering and retry with back-off, shared by the network sinks.

`write` encodes a message into one line and appends it to the current batch. The batch is cut
(spec collector §7.0) when the one-shot `flush_delay` timer started by the first write after a
cut fires (later writes do not extend it), at once when `flush_delay` is 0, or when `batch_size`
lines are buffered. Cut batches wait in a queue for one sender task per sink, which may join
several queued batches into one request (up to `max_request_lines`/`max_request_bytes`).

Delivery: a round is `attempts` tries with `attempt_delay × k` pauses (the http sink's quick
retries). A permanent error (the peer refuses the data, e.g. HTTP 400) drops the batch. A
transient error (peer unreachable, 5xx, 401 …) puts it back at the head of the queue and the
sender waits with exponential back-off (`retry_initial`·`retry_factor`ⁿ, at most `retry_max`)
before the next round, so nothing is lost while the peer is down, up to `max_buffered_lines`:
beyond that the oldest batches are dropped with an error log. Subclasses may give up on a batch
earlier (`_give_up`, influxasync's retry limits). Only state changes are logged (peer down,
peer back), plus rate-limited lines for dropped data; never one line per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cccommon.message import CCMessage

from ._encode import LineError
from .base import ProcessorFactory, Sink

__all__ = ["BatchingSink", "SendError"]


class SendError(Exception):
    """A delivery failed; `permanent` means retrying cannot help (the batch is dropped)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass
class _Batch:
    lines: list[str]
    nbytes: int
    failures: int = 0
    first_failure: float = 0.0


class BatchingSink(Sink):
    """A sink that encodes to lines, batches them and delivers batches from a background task."""

    #: seconds from the first write after a cut to the next cut; 0 = cut at every write
    flush_delay: float = 5.0
    #: cut as soon as this many lines are buffered (None = no limit)
    batch_size: int | None = None
    #: bound of everything buffered (current batch + queue); the oldest batches go first
    max_buffered_lines: int = 100_000
    #: limits when joining queued batches into one request
    max_request_lines: int | None = None
    max_request_bytes: int = 8 << 20
    #: tries per delivery round and the pause factor between them (seconds × try number)
    attempts: int = 1
    attempt_delay: float = 0.5
    #: back-off between rounds after a transient failure
    retry_initial: float = 1.0
    retry_factor: float = 2.0
    retry_max: float = 30.0
    #: how long close() waits for the final delivery
    close_timeout: float = 10.0

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any] | None,
        processor_factory: ProcessorFactory | None = None,
    ) -> None:
        self._buf: list[str] = []
        self._buf_bytes = 0
        self._pending: deque[_Batch] = deque()
        self._pending_lines = 0
        self._inflight = 0
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._round_failed = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._down = False
        self._down_since = 0.0
        self._failed_rounds = 0
        self._overflow = 0
        super().__init__(name, config, processor_factory)

    # ----------------------------------------------------------------- for subclasses

    @property
    def peer(self) -> str:
        """Where the data goes, for log lines."""
        return "peer"

    def _encode(self, msg: CCMessage) -> str:
        """One line without newline; raise LineError to drop the message."""
        raise NotImplementedError

    def _encode_many(self, msgs: list[CCMessage]) -> list[str]:
        """The lines of several messages, leaving out (and reporting) those that cannot be
        written. Sinks with a batch encoder (`_encode.lines_b`) override this."""
        out = []
        for m in msgs:
            try:
                out.append(self._encode(m))
            except LineError as e:
                self._encode_failed(m, e)
        return out

    def _encode_failed(self, msg: CCMessage, e: LineError) -> None:
        self.dropped += 1
        self.limited(logging.ERROR, "encode", "cannot encode %r, dropped: %s", msg.name, e)

    async def _send(self, body: bytes, lines: int) -> int | None:
        """Deliver one request; raise SendError. May return the number of lines it had to drop."""
        raise NotImplementedError

    def _give_up(self, batch: _Batch) -> bool:
        """True to drop a batch after a transient failure instead of retrying it."""
        return False

    async def _open(self) -> None:
        """Open the transport (called by start)."""

    async def _close_transport(self) -> None:
        """Release the transport (called by close after the final delivery)."""

    async def _backoff(self, delay: float) -> None:
        """Wait before the next delivery round; returns early when close() asks for a last try."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._retry_now.wait(), delay)

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        await self._open()
        if self._task is None:
            self._task = asyncio.create_task(self._sender(), name=f"{self} sender")

    async def flush(self) -> None:
        """Cut the current batch and wait until the queue is delivered or one round failed.

        While the peer is down this skips the rest of the back-off pause: one round now.
        """
        self._cut()
        if self._task is None or self._idle.is_set():
            return
        self._round_failed.clear()
        self._retry_now.set()
        await self._wait_round(None)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._cut()
        if self._task is not None:
            if not self._idle.is_set():
                self._round_failed.clear()
                self._retry_now.set()  # a last try now instead of after the back-off
                await self._wait_round(self.close_timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        lost = self._pending_lines + self._inflight + len(self._buf)
        if lost:
            self.dropped += lost
            self.log.error("closing with %d undelivered lines for %s; they are lost", lost, self.peer)
        self._pending.clear()
        self._pending_lines = self._inflight = 0
        await self._close_transport()

    async def _wait_round(self, limit: float | None) -> None:
        assert self._task is not None
        waits = [
            asyncio.ensure_future(self._idle.wait()),
            asyncio.ensure_future(self._round_failed.wait()),
        ]
        try:
            await asyncio.wait([*waits, self._task], timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def stats(self) -> dict[str, int]:
        s = super().stats()
        s["buffered"] = self._pending_lines + self._inflight + len(self._buf)
        return s

    # ----------------------------------------------------------------- batching

    def _write(self, msg: CCMessage) -> None:
        try:
            line = self._encode(msg)
        except LineError as e:
            self._encode_failed(msg, e)
            return
        self._add(line)

    def _write_many(self, msgs: list[CCMessage]) -> None:
        lines = self._encode_many(msgs)
        if not lines:
            return
        if (
            self.flush_delay > 0
            and self.batch_size is None
            and len(self._buf) + len(lines) < self.max_buffered_lines
        ):  # no cut can fall inside this run of lines
            self._buf.extend(lines)
            self._buf_bytes += sum(map(len, lines)) + len(lines)
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self.flush_delay, self._on_timer)
            return
        for line in lines:
            self._add(line)

    def _add(self, line: str) -> None:
        self._buf.append(line)
        self._buf_bytes += len(line) + 1
        n = len(self._buf)
        if (
            self.flush_delay <= 0
            or (self.batch_size is not None and n >= self.batch_size)
            or n >= self.max_buffered_lines
        ):
            self._cut()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._cut()

    def _cut(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buf:
            return
        self._pending.append(_Batch(self._buf, self._buf_bytes))
        self._pending_lines += len(self._buf)
        self._buf = []
        self._buf_bytes = 0
        self._idle.clear()
        self._enforce_bound()
        self._wake.set()

    def _enforce_bound(self) -> None:
        dropped = 0
        while self._pending_lines + self._inflight > self.max_buffered_lines and len(self._pending) > 1:
            old = self._pending.popleft()
            self._pending_lines -= len(old.lines)
            dropped += len(old.lines)
        if dropped:
            self.dropped += dropped
            self._overflow += dropped
            self.limited(
                logging.ERROR,
                "overflow",
                "buffer for %s full (%d lines): dropped the oldest %d lines",
                self.peer,
                self.max_buffered_lines,
                dropped,
            )

    def _take(self) -> _Batch:
        """The head batch, joined with the following fresh ones within the request limits."""
        b = self._pending.popleft()
        self._pending_lines -= len(b.lines)
        if b.failures or not self._pending:
            return b
        lines, nbytes = list(b.lines), b.nbytes
        while self._pending:
            nxt = self._pending[0]
            if nxt.failures:
                break
            if self.max_request_lines is not None and len(lines) + len(nxt.lines) > self.max_request_lines:
                break
            if nbytes + nxt.nbytes > self.max_request_bytes:
                break
            self._pending.popleft()
            self._pending_lines -= len(nxt.lines)
            lines.extend(nxt.lines)
            nbytes += nxt.nbytes
        return _Batch(lines, nbytes)

    # ----------------------------------------------------------------- delivery

    async def _sender(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                await self._wake.wait()
                self._wake.clear()
                continue
            batch = self._take()
            self._inflight = len(batch.lines)
            body = ("\n".join(batch.lines) + "\n").encode()
            err, skipped = await self._deliver(body, len(batch.lines))
            self._inflight = 0
            if err is None:
                self.sent += len(batch.lines) - skipped
                self.dropped += skipped
                if self._down:
                    self._down = False
                    self.log.info(
                        "%s reachable again after %.0fs; delivering %d buffered lines%s",
                        self.peer,
                        time.monotonic() - self._down_since,
                        self._pending_lines + len(batch.lines),
                        f" ({self._overflow} lines were dropped because the buffer was full)"
                        if self._overflow
                        else "",
                    )
                    self._overflow = 0
                self._failed_rounds = 0
                continue
            if err.permanent:
                self.dropped += len(batch.lines)
                self.limited(
                    logging.ERROR,
                    "rejected",
                    "%s refused %d lines, dropped: %s",
                    self.peer,
                    len(batch.lines),
                    err,
                )
                continue
            batch.failures += 1
            if not batch.first_failure:
                batch.first_failure = time.monotonic()
            if self._give_up(batch):
                self.dropped += len(batch.lines)
            else:
                self._pending.appendleft(batch)
                self._pending_lines += len(batch.lines)
                self._enforce_bound()
            self._failed_rounds += 1
            if not self._down:
                self._down = True
                self._down_since = time.monotonic()
                self.log.error(
                    "cannot deliver to %s: %s; buffering up to %d lines and retrying with back-off",
                    self.peer,
                    err,
                    self.max_buffered_lines,
                )
            else:
                self.log.debug("delivery to %s failed again: %s", self.peer, err)
            self._round_failed.set()
            if self.closed:  # the last try of close() failed: wait to be cancelled
                await asyncio.sleep(3600)
                continue
            exponent = min(self._failed_rounds - 1, 60)
            delay = min(self.retry_initial * self.retry_factor**exponent, self.retry_max)
            self._retry_now.clear()
            await self._backoff(delay)

    async def _deliver(self, body: bytes, lines: int) -> tuple[SendError | None, int]:
        """One round of tries: (None, lines dropped by _send) on success, else (last error, 0)."""
        last: SendError | None = None
        for k in range(max(1, self.attempts)):
            try:
                return None, await self._send(body, lines) or 0
            except SendError as e:
                last = e
            except Exception as e:  # any transport problem is a transient failure
                last = SendError(f"{type(e).__name__}: {e}")
            if last.permanent:
                return last, 0
            if k + 1 < max(1, self.attempts):
                self.log.debug("try %d to %s failed: %s", k + 1, self.peer, last)
                await asyncio.sleep(self.attempt_delay * (k + 1))
        return last, 0
