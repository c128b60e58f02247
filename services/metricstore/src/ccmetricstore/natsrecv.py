"""NATS ingestion (spec §10): one subscription per configured subject, each with its cluster tag.

The connection is retried until it succeeds (upstream gives up at start) and reconnects forever
after a server restart. Each message is applied on the event loop and journaled without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from cccommon.logging import get_logger

from .config import NatsSettings
from .service import MetricStoreService

log = get_logger("metricstore")


class NatsReceiver:
    def __init__(self, service: MetricStoreService, settings: NatsSettings, retry_wait: float = 2.0) -> None:
        self.service = service
        self.settings = settings
        self.retry_wait = retry_wait
        self.nc: Any = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self._errors = 0

    def _options(self) -> dict[str, Any]:
        s = self.settings
        opts: dict[str, Any] = {
            "servers": [a.strip() for a in s.address.split(",") if a.strip()],
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": self.retry_wait,
            "connect_timeout": 5,
            "allow_reconnect": True,
            "name": "cc-metric-store",
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnect,
            "reconnected_cb": self._on_reconnect,
        }
        if s.username and s.password:
            opts["user"] = s.username
            opts["password"] = s.password
        if s.creds_file:
            opts["user_credentials"] = s.creds_file
        return opts

    async def _on_error(self, e: Exception) -> None:
        # nats-py keeps retrying the first connection itself and reports each failure here:
        # one line for the first failure and then one per 30 attempts, not one per attempt
        self._errors += 1
        if self._errors == 1 or self._errors % 30 == 0:
            if self.connected.is_set():
                log.warning("NATS: %s (%d errors so far)", e, self._errors)
            else:
                log.warning(
                    "NATS: cannot connect to %s (%s); retrying every %.0fs",
                    self.settings.address,
                    e,
                    self.retry_wait,
                )

    async def _on_disconnect(self) -> None:
        log.warning("NATS: disconnected from %s", self.settings.address)

    async def _on_reconnect(self) -> None:
        self._errors = 0
        log.info("NATS: reconnected to %s", self.settings.address)

    def _handler(self, subject: str, cluster_tag: str) -> Any:
        service = self.service
        counter = service.stats.nats_messages.labels(subject)

        async def on_message(msg: Any) -> None:
            counter.inc()
            try:
                res = await service.ingest(msg.data, cluster_tag, "nats", durable=False)
            except Exception:  # noqa: BLE001 - one bad message must not stop the subscription
                log.exception("NATS message on %s could not be applied", msg.subject)
                return
            if res.errors:
                log.warning("NATS message on %s: %s", msg.subject, res.error_message())

        return on_message

    async def _run(self) -> None:
        import nats

        attempt = 0
        while True:
            try:
                self.nc = await nats.connect(**self._options())
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001
                attempt += 1
                if attempt == 1 or attempt % 30 == 0:
                    log.warning(
                        "NATS: cannot connect to %s (%s); retrying every %.0fs",
                        self.settings.address,
                        e,
                        self.retry_wait,
                    )
                await asyncio.sleep(self.retry_wait)
        for subject, tag in self.settings.subscriptions:
            await self.nc.subscribe(subject, cb=self._handler(subject, tag), pending_msgs_limit=65536)
            log.info("NATS: subscribed to '%s' (cluster-tag '%s')", subject, tag)
        self._errors = 0
        self.connected.set()

    def start(self) -> None:
        if not self.settings.address:
            if self.settings.subscriptions:
                log.warning("NATS subscriptions configured but no NATS address; NATS ingestion disabled")
            return
        if not self.settings.subscriptions:
            log.info("NATS address configured without subscriptions; nothing to receive")
            return
        self._task = asyncio.create_task(self._run(), name="nats")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
            with contextlib.suppress(Exception):
                await self.nc.close()
