"""`stdout` sink: every message as one line-protocol line (writer A, nanoseconds), spec §7.1.

Options (strict):

* `output_file` (default `stdout`) — `stdout`, `stderr` (any case) or a file path. A file is
  opened write-only in append mode (upstream writes from offset 0 over old content; fixed) and
  created with mode 0600.
* `meta_as_tags`, `process_messages` — common options (base module).

Lines are written in the order they arrive by a background task (file writes above 256 KiB run in a
worker thread, so a slow disk does not block the event loop). `flush()` waits until everything is written
and fsyncs a file; `close()` flushes and closes a file (never stdout/stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from typing import TextIO

from cccommon.message import CCMessage

from ._encode import line_a, text_a
from .base import Sink, SinkError, SinkOptions, register

__all__ = ["StdoutSink"]

#: smaller writes go straight to the page cache from the event loop (a thread hand-off costs more)
INLINE_WRITE = 256 * 1024


@register
class StdoutSink(Sink):
    type = "stdout"
    label = "StdoutSink"
    options = frozenset({"output_file"})

    def configure(self, opts: SinkOptions) -> None:
        self.output_file = opts.get_str("output_file", "stdout") or "stdout"
        self._fd: int | None = None
        #: text not yet written (lines or runs of lines) and the number of lines in it
        self._lines: list[str] = []
        self._nlines = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def _stream(self) -> TextIO | None:
        target = self.output_file.lower()
        if target == "stdout":
            return sys.stdout
        if target == "stderr":
            return sys.stderr
        return None

    async def start(self) -> None:
        if self._stream() is None and self._fd is None:
            try:
                self._fd = os.open(self.output_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as e:
                raise SinkError(f"{self}: cannot open output file {self.output_file!r}: {e}") from e
        if self._task is None:
            self._task = asyncio.create_task(self._writer(), name=f"{self} writer")

    def _write(self, msg: CCMessage) -> None:
        self._lines.append(line_a(msg) + "\n")
        self._nlines += 1
        if not self._wake.is_set():
            self._idle.clear()
            self._wake.set()

    def _write_many(self, msgs: list[CCMessage]) -> None:
        if not msgs:
            return
        self._lines.append(text_a(msgs))
        self._nlines += len(msgs)
        if not self._wake.is_set():
            self._idle.clear()
            self._wake.set()

    def _emit(self, text: str) -> None:
        stream = self._stream()
        if stream is not None:
            stream.write(text)
            stream.flush()
            return
        assert self._fd is not None
        data = text.encode()
        while data:
            n = os.write(self._fd, data)
            data = data[n:]

    async def _writer(self) -> None:
        while True:
            if not self._lines:
                self._idle.set()
                await self._wake.wait()
                self._wake.clear()
                continue
            lines, self._lines = self._lines, []
            count, self._nlines = self._nlines, 0
            try:
                text = "".join(lines)
                if self._fd is None or len(text) < INLINE_WRITE:
                    self._emit(text)
                else:
                    await asyncio.to_thread(self._emit, text)
                self.sent += count
            except (OSError, ValueError) as e:
                self.dropped += count
                self.limited(logging.ERROR, "io", "writing to %s failed: %s", self.output_file, e)

    async def flush(self) -> None:
        if self._task is not None and not self._idle.is_set():
            idle = asyncio.ensure_future(self._idle.wait())
            await asyncio.wait([idle, self._task], return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.fsync, self._fd)

    async def close(self) -> None:
        if self.closed:
            return
        if self._task is None and self._lines:
            self._emit("".join(self._lines))  # never started: write synchronously
            self.sent += self._nlines
            self._lines = []
            self._nlines = 0
        await self.flush()
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def stats(self) -> dict[str, int]:
        s = super().stats()
        s["buffered"] = self._nlines
        return s
