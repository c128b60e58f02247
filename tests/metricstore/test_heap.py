"""Returning freed heap pages to the OS: rate limit and effect on a real glibc heap."""

from __future__ import annotations

import platform

import pytest

from ccmetricstore import heap


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_trimmer_runs_at_most_once_per_interval():
    now = [100.0]
    t = heap.HeapTrimmer(interval=5.0, clock=lambda: now[0])
    assert not t.maybe_trim()
    now[0] = 104.9
    assert not t.maybe_trim()
    now[0] = 105.0
    assert t.maybe_trim() == (heap._malloc_trim is not None)
    assert not t.maybe_trim()
    now[0] = 111.0
    t.maybe_trim()
    assert t.count == (2 if heap._malloc_trim is not None else 0)


@pytest.mark.skipif(platform.system() != "Linux" or heap._malloc_trim is None, reason="glibc only")
def test_trim_returns_freed_heap_memory():
    # many mid-sized blocks (below the mmap threshold) with a survivor at the heap top
    blocks = [bytearray(64 * 1024) for _ in range(800)]
    for b in blocks:
        b[::4096] = b"x" * len(b[::4096])
    keep = bytearray(64 * 1024)
    del blocks
    before = rss()
    assert heap.trim()
    after = rss()
    assert before - after > 20 * 1024 * 1024
    del keep
