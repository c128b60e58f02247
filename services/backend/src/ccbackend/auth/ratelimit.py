"""Login rate limit: a token bucket per (client IP, username), 5 attempts, one more every 3 minutes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LoginRateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class LoginRateLimiter:
    """Upstream's limiter: burst `burst`, refill one attempt per `refill_seconds`; idle entries expire."""

    def __init__(
        self,
        burst: int = 5,
        refill_seconds: float = 180.0,
        idle_seconds: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._last_sweep = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, ip: str, username: str) -> bool:
        """Take one attempt from the bucket of (ip, username); False when none is left."""
        now = self._clock()
        self._sweep(now)
        key = (ip, username)
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            b.tokens = min(float(self.burst), b.tokens + (now - b.updated) / self.refill_seconds)
            b.updated = now
        if b.tokens < 1.0:
            return False
        b.tokens -= 1.0
        return True

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < 600:
            return
        self._last_sweep = now
        stale = [k for k, b in self._buckets.items() if now - b.updated > self.idle_seconds]
        for k in stale:
            del self._buckets[k]
