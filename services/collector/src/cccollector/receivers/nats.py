"""`nats` receiver: line protocol from a NATS subject, as published by nats sinks (spec collector §8.2).

Options (lenient: unknown keys such as the example config's `database` are ignored with a warning):

* `address` (`localhost`) — server host; a scheme is stripped (`nats://my-url` → `my-url`;
  `tls://host` also switches TLS on). A comma-separated list is a server pool (every host on
  `port` unless it names its own `host:port`).
* `port` (`"4222"`, string or number).
* `subject` (required) — subject to subscribe to; NATS wildcards (`metrics.*`, `metrics.>`) work.
* `queue_group` — PX-14: subscribe in this queue group, so that several aggregators share the
  messages (each message goes to one member); without it every subscriber gets every message.
* `user`, `password` — user/password authentication, used when both are non-empty; `username`
  is an alias of `user` (PX-11).
* `nkey_file` — a NATS credentials (`.creds`) file used when no user/password is given; it must
  exist (and needs the Python package `nkeys`).
* `ssl`, `ssl_cert`, `ssl_key`, `ssl_ca` — PX-11 TLS: `ssl: true` verifies the server with the
  system CAs or `ssl_ca`; `ssl_cert` + `ssl_key` present a client certificate (and imply TLS).
* `precision` (`auto`) — PX-3: timestamp unit `s`, `ms`, `us`, `ns`, or `auto` (by magnitude);
  lines without timestamp get the arrival time.
* `process_messages` — the receiver's own rules (common option).

Behaviour: `start()` never fails on an unreachable server: a background task connects and
nats-py reconnects forever, re-subscribing after every reconnect; connection state changes
(cannot connect, connected, disconnected, reconnected) are logged once each, not per attempt.
Every NATS message is decoded line by line (large payloads in a worker thread); each message
gets meta `source=NatsReceiver(<name>)`, goes through the receiver's rules and on to the router.
The first bad line drops the rest of that NATS message with an error log (the lines before it are
forwarded). `close()` drains the subscription (messages already received are still handled),
then closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ..natsclient import connect_args, connect_forever, tls_context
from .base import Receiver, ReceiverError, ReceiverOptions, register

__all__ = ["NatsReceiver", "server_urls"]


def server_urls(address: str, port: str, tls: bool) -> list[str]:
    """`nats://a,b:4223,[::1]` → one URL per host (scheme stripped, `port` where none is given)."""
    scheme = "tls" if tls else "nats"
    out: list[str] = []
    for h in address.split(","):
        h = h.strip()
        if "://" in h:
            h = h.split("://", 1)[1]
        h = h.rstrip("/")
        if not h:
            continue
        if h.startswith("["):  # [v6] or [v6]:port
            out.append(f"{scheme}://{h}" if "]:" in h else f"{scheme}://{h}:{port}")
        elif h.count(":") == 1:
            out.append(f"{scheme}://{h}")
        elif ":" in h:  # a bare IPv6 address
            out.append(f"{scheme}://[{h}]:{port}")
        else:
            out.append(f"{scheme}://{h}:{port}")
    return out


@register
class NatsReceiver(Receiver):
    type = "nats"
    label = "NatsReceiver"
    options = frozenset(
        {
            "address",
            "port",
            "subject",
            "queue_group",
            "user",
            "password",
            "nkey_file",
            "ssl",
            "ssl_cert",
            "ssl_key",
            "ssl_ca",
            "precision",
        }
    )
    aliases = {"username": "user"}
    #: pause between connection attempts to the same server (nats-py `reconnect_time_wait`)
    reconnect_time_wait = 1.0
    #: seconds that close() gives the drain
    drain_timeout = 5.0

    def configure(self, opts: ReceiverOptions) -> None:
        address = opts.get_str("address", "") or "localhost"
        port = opts.get_port("port", "4222") or "4222"
        subject = opts.get_str("subject")
        if not subject:
            raise ReceiverError(
                f"{self}: not all configuration variables set required by NatsReceiver (subject)"
            )
        self.subject = subject
        self.queue_group = opts.get_str("queue_group", "") or ""
        self.user = opts.get_str("user") or ""
        self.password = opts.get_str("password") or ""
        self.nkey_file = opts.get_str("nkey_file") or ""
        if self.nkey_file and not (self.user and self.password):
            if not os.path.exists(self.nkey_file):
                raise ReceiverError(f"{self}: NKEY file {self.nkey_file!r} does not exist")
            try:
                import nkeys  # noqa: F401
            except ImportError:
                raise ReceiverError(f"{self}: 'nkey_file' needs the Python package 'nkeys'") from None
        self.tls = tls_context(opts, str(self), force=address.strip().lower().startswith("tls://"))
        self.servers = server_urls(address, port, self.tls is not None)
        if not self.servers:
            raise ReceiverError(f"{self}: 'address' names no server")
        self.unit_ns = opts.get_precision()
        self._nc: NATS | None = None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._error_logged = False
        self.nats_messages = 0

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected and self._sub is not None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name=f"{self} connect")

    async def wait_ready(self) -> None:
        """Wait until subscribed and the server has seen the subscription (wrap in asyncio.timeout)."""
        while True:
            await self._ready.wait()
            nc = self._nc
            if nc is not None and nc.is_connected:
                await nc.flush()
                return
            await asyncio.sleep(0.05)

    def _connect_args(self) -> dict[str, Any]:
        return connect_args(
            self.servers,
            self.source,
            self.reconnect_time_wait,
            self.tls,
            self.user,
            self.password,
            self.nkey_file,
            self,
        )

    async def _connect(self) -> None:
        async def subscribe(nc: NATS) -> None:
            self._nc = nc
            self._sub = await nc.subscribe(self.subject, queue=self.queue_group, cb=self._on_msg)

        async def failed(e: Exception) -> None:
            await self._on_error(e)
            self._nc = self._sub = None

        nc = await connect_forever(
            self._connect_args, lambda: self.closed, failed, self.reconnect_time_wait, after=subscribe
        )
        if nc is None:
            return
        self._error_logged = False
        self._ready.set()
        url = nc.connected_url.netloc if nc.connected_url else ",".join(self.servers)
        group = f" in queue group {self.queue_group!r}" if self.queue_group else ""
        self.log.info("connected to %s, subscribed to %r%s", url, self.subject, group)

    async def _on_error(self, e: Exception) -> None:
        if self.closed:
            return
        connected = self._nc is not None and self._nc.is_connected
        if not connected and not self._error_logged:
            self._error_logged = True
            self.log.error(
                "cannot connect to %s: %s; retrying", ",".join(self.servers), str(e) or type(e).__name__
            )
        else:
            self.log.debug("NATS error: %r", e)

    async def _on_disconnected(self) -> None:
        if not self.closed:
            self.log.warning("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        self._error_logged = False
        nc = self._nc
        url = nc.connected_url.netloc if nc is not None and nc.connected_url else "?"
        self.log.info("reconnected to %s", url)

    # ----------------------------------------------------------------- messages

    async def _on_msg(self, msg: Msg) -> None:
        self.nats_messages += 1
        data = msg.data
        if not data:
            return
        now = time.time_ns()
        try:
            msgs, err = await self.decode(data.split(b"\n"), 1, self.unit_ns, now, len(data))
            for m in msgs:
                await self.forward(m)
        except Exception as e:  # never let one payload stop the subscription
            self.limited(logging.ERROR, "handle", "handling a message on %r failed: %r", msg.subject, e)
            return
        if err is not None:
            self.errors += 1
            self.limited(
                logging.ERROR,
                "decode",
                "bad line protocol on %r: %s; the rest of that NATS message is dropped",
                msg.subject,
                err,
            )

    async def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        nc, self._nc, self._sub = self._nc, None, None
        if nc is None:
            return
        try:
            if nc.is_connected:
                await asyncio.wait_for(nc.drain(), self.drain_timeout)
            else:
                await nc.close()
        except Exception as e:
            self.log.debug("closing the NATS connection: %r", e)
            with contextlib.suppress(Exception):
                await nc.close()
