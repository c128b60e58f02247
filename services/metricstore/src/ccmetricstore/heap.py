"""Giving freed heap memory back to the OS (glibc `malloc_trim`).

Ingest allocates and frees large transient buffers (request bodies, per-batch columns) between
long-lived index objects; glibc keeps the freed pages resident inside its heap until asked.
`HeapTrimmer.maybe_trim` returns them at most once per interval; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable

log = logging.getLogger("ccmetricstore.heap")


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        fn = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


_malloc_trim = _load_trim()


def trim() -> bool:
    """Release free heap pages now; False where the C library cannot."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


class HeapTrimmer:
    """Calls `trim` when at least `interval` seconds passed since the last call."""

    def __init__(self, interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last = clock()
        self.count = 0
        self.seconds = 0.0  # spent in trim calls (they run on the caller's thread)

    def maybe_trim(self) -> bool:
        now = self._clock()
        if now - self._last < self.interval:
            return False
        self._last = now
        t = time.perf_counter()
        if not trim():
            return False
        took = time.perf_counter() - t
        self.count += 1
        self.seconds += took
        if took > 0.05:
            log.debug("heap trim took %.3f s", took)
        return True
