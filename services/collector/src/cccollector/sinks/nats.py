"""`nats` sink: batches of line protocol published to one NATS subject (spec collector §7.3).

Options (strict):

* `host` (required) — server host name; PX-11: a comma-separated list is a server pool (every
  host on `port`; an entry may carry its own `:port` or a full `nats://`/`tls://` URL).
* `port` (`"4222"`).
* `subject` (required) — subject of every batch; `database` is accepted as an alias (PX-11).
* `user`, `password` — user/password authentication, used when both are set; `username` is an
  alias of `user` (PX-11, the how-to).
* `nkey_file` — a NATS `.creds` file (JWT + NKey seed) used when no user/password is given; it
  must exist (needs the `nkeys` package).
* `ssl`, `ssl_cert`, `ssl_key`, `ssl_ca` — PX-11 TLS: `ssl: true` uses `tls://` and verifies
  the server with the system CAs or `ssl_ca`; `ssl_cert` + `ssl_key` present a client
  certificate (and imply TLS).
* `flush_delay` (`5s`) — batching window; `0` publishes at every write.
* `precision` (`s`) — timestamp precision of the lines.
* `meta_as_tags`, `process_messages` — common options; the processed message is encoded (PX-13).

Behaviour: the connection is made in the background and retried forever, so an unreachable server
at start does not fail the sink; until it is connected (and while nats-py reconnects) batches stay
in the sink's bounded buffer. A batch is published in as many messages as needed to stay below
the server's `max_payload` (PX-12; a single longer line is dropped with an error), then a flush
(PING/PONG) confirms the server got them; a failure keeps the batch for the next try. `close()`
publishes what is buffered, then drains and closes the connection (upstream loses the pending
batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import nats
from nats.aio.client import Client as NATS

from cccommon.message import CCMessage

from ..natsclient import connect_args, connect_forever, tls_context
from ._batch import BatchingSink, SendError
from ._encode import line_b, lines_b, parse_precision
from .base import SinkError, SinkOptions, register

__all__ = ["NatsSink"]


def server_urls(host: str, port: str, scheme: str = "nats") -> list[str]:
    """`nats1,nats2:4223,tls://x:1` → one URL per entry, `port` where none is given."""
    out: list[str] = []
    for h in host.split(","):
        h = h.strip()
        if not h:
            continue
        if "://" in h:
            out.append(h)
        elif h.startswith("["):  # [v6] or [v6]:port
            out.append(f"{scheme}://{h}" if "]:" in h else f"{scheme}://{h}:{port}")
        elif h.count(":") == 1:
            out.append(f"{scheme}://{h}")
        elif ":" in h:  # bare IPv6 address
            out.append(f"{scheme}://[{h}]:{port}")
        else:
            out.append(f"{scheme}://{h}:{port}")
    return out


@register
class NatsSink(BatchingSink):
    type = "nats"
    label = "NatsSink"
    options = frozenset(
        {
            "host",
            "port",
            "subject",
            "user",
            "password",
            "nkey_file",
            "flush_delay",
            "precision",
            "ssl",
            "ssl_cert",
            "ssl_key",
            "ssl_ca",
        }
    )
    aliases = {"database": "subject", "username": "user"}
    #: seconds for the PING/PONG that confirms a published batch
    flush_timeout = 5.0
    #: nats-py's pause between connection attempts to the same server
    reconnect_time_wait = 1.0

    def configure(self, opts: SinkOptions) -> None:
        host = opts.get_str("host")
        subject = opts.get_str("subject")
        port = opts.get_port("port", "4222")
        if not host or not port or not subject:
            raise SinkError(
                f"{self}: not all configuration variables set required by NatsSink (host, port, subject)"
            )
        self.subject = subject
        self.user = opts.get_str("user") or ""
        self.password = opts.get_str("password") or ""
        self.nkey_file = opts.get_str("nkey_file") or ""
        if self.nkey_file and not (self.user and self.password):
            if not os.path.exists(self.nkey_file):
                raise SinkError(f"{self}: NKEY file {self.nkey_file!r} does not exist")
            try:
                import nkeys  # noqa: F401
            except ImportError:
                raise SinkError(f"{self}: 'nkey_file' needs the Python package 'nkeys'") from None
        self.tls = tls_context(opts, str(self))
        self.servers = server_urls(host, port, "tls" if self.tls is not None else "nats")
        if not self.servers:
            raise SinkError(f"{self}: 'host' names no server")
        self.flush_delay = opts.get_duration("flush_delay", 5.0) or 0.0
        self.precision, self._unit = parse_precision(opts.get_str("precision"), self.log)
        self._nc: NATS | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._conn_error_logged = False

    @property
    def peer(self) -> str:
        return f"NATS {','.join(self.servers)} subject {self.subject!r}"

    def _encode(self, msg: CCMessage) -> str:
        return line_b(msg, self._unit)

    def _encode_many(self, msgs: list[CCMessage]) -> list[str]:
        return lines_b(msgs, self._unit, self._encode_failed)

    # ----------------------------------------------------------------- connection

    async def _open(self) -> None:
        if self._connect_task is None:
            self._connect_task = asyncio.create_task(self._connect(), name=f"{self} connect")

    def _connect_args(self) -> dict[str, Any]:
        return connect_args(
            self.servers,
            self.name,
            self.reconnect_time_wait,
            self.tls,
            self.user,
            self.password,
            self.nkey_file,
            self,
        )

    async def _connect(self) -> None:
        nc = await connect_forever(
            self._connect_args, lambda: self.closed, self._on_error, self.reconnect_time_wait
        )
        if nc is None:
            return
        self._nc = nc
        self._connected.set()
        self._conn_error_logged = False
        self.log.info("connected to %s", nc.connected_url.netloc if nc.connected_url else self.servers)

    async def _on_error(self, e: Exception) -> None:
        connected = self._nc is not None and self._nc.is_connected
        if not connected and not self._conn_error_logged:
            self._conn_error_logged = True
            self.log.error(
                "cannot connect to %s: %s; retrying", ",".join(self.servers), e or type(e).__name__
            )
        else:
            self.log.debug("NATS error: %r", e)

    async def _on_disconnected(self) -> None:
        self._connected.clear()
        if not self.closed:
            self.log.warning("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        self._connected.set()
        self._conn_error_logged = False
        nc = self._nc
        url = nc.connected_url.netloc if nc is not None and nc.connected_url else "?"
        self.log.info("reconnected to %s", url)

    # ----------------------------------------------------------------- delivery

    async def _send(self, body: bytes, lines: int) -> int | None:
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise SendError("not connected to NATS")
        limit = nc.max_payload or (1 << 20)
        chunks, skipped = self._split(body, limit)
        try:
            for chunk in chunks:
                await nc.publish(self.subject, chunk)
            await nc.flush(timeout=self.flush_timeout)  # type: ignore[arg-type]
        except (TimeoutError, nats.errors.Error, OSError) as e:
            raise SendError(f"publish failed: {type(e).__name__} {e}") from e
        return skipped

    def _split(self, body: bytes, limit: int) -> tuple[list[bytes], int]:
        """Pieces of `body` cut at line ends, each at most `limit` bytes; overlong lines dropped."""
        if len(body) <= limit:
            return [body], 0
        chunks: list[bytes] = []
        cur: list[bytes] = []
        size = skipped = 0
        for line in body.splitlines(keepends=True):
            if len(line) > limit:
                skipped += 1
                self.limited(
                    logging.ERROR,
                    "payload",
                    "a line of %d bytes exceeds max_payload %d: dropped",
                    len(line),
                    limit,
                )
                continue
            if size + len(line) > limit:
                chunks.append(b"".join(cur))
                cur, size = [], 0
            cur.append(line)
            size += len(line)
        if cur:
            chunks.append(b"".join(cur))
        return chunks, skipped

    async def _backoff(self, delay: float) -> None:
        nc = self._nc
        if nc is not None and nc.is_connected:
            await super()._backoff(delay)
            return
        # not connected: wait for the connection (or close) rather than polling
        waits = [asyncio.ensure_future(self._connected.wait()), asyncio.ensure_future(self._retry_now.wait())]
        try:
            await asyncio.wait(waits, timeout=max(delay, self.retry_max), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _close_transport(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connect_task
            self._connect_task = None
        nc = self._nc
        self._nc = None
        if nc is None:
            return
        try:
            if nc.is_connected:
                await asyncio.wait_for(nc.drain(), 5.0)
            else:
                await nc.close()
        except Exception as e:
            self.log.debug("closing the NATS connection: %r", e)
            with contextlib.suppress(Exception):
                await nc.close()
