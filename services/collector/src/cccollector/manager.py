"""Ticker and collector manager (spec collector §1, §6.0).

The ticker fires at `start + k * interval` (k = 1, 2, ...) on the monotonic clock and calls its
consumers in registration order: the router (tick time, cache rotation and aggregates) first,
then the collector manager. A tick that comes while the previous collection still runs is
skipped for the collectors (logged at debug), as upstream coalesces Go ticker ticks.

Per tick the collector manager runs every parallel collector at the same time (each `read` in a
worker thread), waits for all of them, then runs the serial ones (likwid, nvidia, rocm_smi) one
after another, and hands the messages of each collector to `emit` on the event loop. Collectors
that only read /proc (`inline = True`: cpustat, memstat, loadavg, ...) run directly on the event
loop first: their reads take microseconds, less than handing them to a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cccommon.message import CCMessage

from .collectors import REGISTRY, CollectorInitError, MetricCollector, load_all

log = logging.getLogger("collector")

TickConsumer = Callable[[float], Awaitable[None] | None]


class Ticker:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.consumers: list[TickConsumer] = []
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    def add(self, consumer: TickConsumer) -> None:
        self.consumers.append(consumer)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        while True:
            k += 1
            due = start + k * self.interval
            delay = due - loop.time()
            if delay < 0:
                # we are behind (a slow consumer or a suspended machine): coalesce to the next slot
                missed = int(-delay // self.interval) + 1
                k += missed
                due = start + k * self.interval
                delay = due - loop.time()
                log.debug("ticker: %d tick(s) skipped", missed)
            await asyncio.sleep(delay)
            self.ticks += 1
            now = time.time()
            for consumer in self.consumers:
                try:
                    r = consumer(now)
                    if asyncio.iscoroutine(r):
                        await r
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a consumer must not stop the ticker
                    log.exception("tick consumer failed")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ticker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


class CollectorManager:
    """Creates the collectors of collectors.json and runs them on every tick."""

    def __init__(
        self,
        config: Mapping[str, Any],
        emit: Callable[[list[CCMessage]], Any],
        duration: float = 0.0,
        root: str = "/",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.duration = duration
        self.emit = emit
        self.collectors: list[MetricCollector] = []
        self._running: asyncio.Task[None] | None = None
        self.runs = 0
        registry = load_all() if not REGISTRY else REGISTRY
        for name, options in config.items():
            cls = registry.get(name)
            if cls is None:
                log.error(
                    "collectors: unknown collector type %r skipped (known: %s)",
                    name,
                    ", ".join(sorted(registry)),
                )
                continue
            coll = cls(root=root, env=env)
            try:
                coll.init(options if options is not None else {})
            except CollectorInitError as e:
                log.error("collector %s not started: %s", name, e)
                continue
            except Exception as e:  # noqa: BLE001 - a broken collector must not stop the others
                log.error("collector %s not started: %s: %s", name, type(e).__name__, e)
                continue
            self.collectors.append(coll)
            log.info("collector %s started (%s)", name, "parallel" if cls.parallel else "serial")

    @staticmethod
    def _read(coll: MetricCollector, duration: float) -> list[CCMessage]:
        out: list[CCMessage] = []
        coll.read(duration, out.append)
        return out

    async def _read_one(self, coll: MetricCollector) -> None:
        try:
            msgs = await asyncio.to_thread(self._read, coll, self.duration)
        except Exception as e:  # noqa: BLE001 - read errors are logged per read (spec §9.2)
            log.error("collector %s: read failed: %s: %s", coll.type, type(e).__name__, e)
            return
        if msgs:
            r = self.emit(msgs)
            if asyncio.iscoroutine(r):
                await r

    def _read_inline(self, colls: list[MetricCollector]) -> None:
        """Read the inline collectors one after another and route their messages together (one
        pass through the router and each sink's encoder per tick instead of one per collector)."""
        msgs: list[CCMessage] = []
        for coll in colls:
            mark = len(msgs)
            try:
                coll.read(self.duration, msgs.append)
            except Exception as e:  # noqa: BLE001 - read errors are logged per read (spec §9.2)
                del msgs[mark:]  # a failed read sends nothing, as the threaded ones
                log.error("collector %s: read failed: %s: %s", coll.type, type(e).__name__, e)
        if msgs:
            r = self.emit(msgs)
            if asyncio.iscoroutine(r):
                r.close()
                raise TypeError("emit must be synchronous for inline collectors")

    async def collect_once(self) -> None:
        parallel = [c for c in self.collectors if c.parallel and not c.inline]
        serial = [c for c in self.collectors if not c.parallel]
        inline = [c for c in self.collectors if c.parallel and c.inline]
        if inline:
            self._read_inline(inline)
        if parallel:
            await asyncio.gather(*(self._read_one(c) for c in parallel))
        for c in serial:
            await self._read_one(c)
        self.runs += 1

    def on_tick(self, now: float) -> None:
        if self._running is not None and not self._running.done():
            log.debug("collectors still busy with the previous tick: tick skipped")
            return
        self._running = asyncio.create_task(self.collect_once(), name="collect")

    async def wait_idle(self) -> None:
        """Wait for a running collection (callers bound the wait with asyncio.timeout)."""
        if self._running is not None and not self._running.done():
            await asyncio.shield(self._running)

    def close(self) -> None:
        for c in self.collectors:
            try:
                c.close()
            except Exception as e:  # noqa: BLE001
                log.error("collector %s: close failed: %s", c.type, e)
        self.collectors.clear()
