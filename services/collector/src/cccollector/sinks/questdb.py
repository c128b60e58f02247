"""`questdb` sink: InfluxDB line protocol (ILP) over HTTP to QuestDB's `/write` (spec collector §7.9).

Options (strict):

* `address` (`localhost:9000`) — host:port of QuestDB's HTTP endpoint.
* `username`, `password` — HTTP basic auth (both or neither).
* `bearer_token` — token auth (not together with basic auth).
* `auto_flush_interval` (`5s`) — time-based flush.
* `auto_flush_rows` (none) — send as soon as this many rows are buffered.
* `use_tls` (`false`) — https.
* `meta_as_tags`, `process_messages` — common options.

Rows: table = message name; every tag becomes a symbol column whose name is rewritten as the Go
client does (`-id` → `ID`, then `-` → `_`: `type-id` → `typeID`); float fields are doubles,
int/uint fields longs (`5i`), strings strings; bool fields are logged and skipped (spec); the
designated timestamp is the message time in nanoseconds. Delivery, buffering and retries as the
http sink: 400/413/422 drop the batch (QuestDB refused the rows), anything else is retried.
"""

from __future__ import annotations

import logging

import aiohttp

from cccommon.lineprotocol import format_line
from cccommon.message import CCMessage, UInt

from ._batch import BatchingSink, SendError
from ._encode import LineError
from .base import SinkError, SinkOptions, register
from .http import basic_auth

__all__ = ["QuestDBSink", "column_name"]

_PERMANENT = frozenset({400, 413, 422})


def column_name(tag: str) -> str:
    """QuestDB symbol column of a tag key: `type-id` → `typeID`, `stype-id` → `stypeID`."""
    return tag.replace("-id", "ID").replace("-", "_")


@register
class QuestDBSink(BatchingSink):
    type = "questdb"
    label = "QuestDBSink"
    options = frozenset(
        {
            "address",
            "username",
            "password",
            "bearer_token",
            "auto_flush_interval",
            "auto_flush_rows",
            "use_tls",
        }
    )

    def configure(self, opts: SinkOptions) -> None:
        address = opts.get_str("address", "localhost:9000") or "localhost:9000"
        scheme = "https" if opts.get_bool("use_tls") else "http"
        self.url = f"{scheme}://{address}/write"
        user = opts.get_str("username") or ""
        password = opts.get_str("password") or ""
        token = opts.get_str("bearer_token") or ""
        if (user or password) and not (user and password):
            raise SinkError(f"{self}: basic authentication requires both 'username' and 'password'")
        if token and user:
            raise SinkError(f"{self}: use either 'bearer_token' or 'username'/'password', not both")
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif user:
            headers["Authorization"] = basic_auth(user, password)
        self._headers = headers
        self.flush_delay = opts.get_duration("auto_flush_interval", 5.0) or 0.0
        rows = opts.get_int("auto_flush_rows")
        self.batch_size = rows if rows and rows > 0 else None
        self.max_request_lines = self.batch_size
        self._session: aiohttp.ClientSession | None = None

    @property
    def peer(self) -> str:
        return self.url

    def _encode(self, msg: CCMessage) -> str:
        fields: dict[str, float | int | str] = {}
        for k, v in msg.fields.items():
            if isinstance(v, bool):
                self.limited(
                    logging.WARNING, "bool", "field %r of %r is a bool: not written to QuestDB", k, msg.name
                )
                continue
            fields[k] = int(v) if isinstance(v, UInt) else v
        if not fields:
            raise LineError(f"{msg.name}: no field QuestDB can store")
        tags = {column_name(k): v for k, v in msg.tags.items()}
        return format_line(msg.name, tags, fields, msg.time)

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), headers=self._headers)

    async def _open(self) -> None:
        if self._session is None:
            self._session = self._new_session()

    async def _send(self, body: bytes, lines: int) -> int | None:
        if self._session is None:
            self._session = self._new_session()
        async with self._session.post(self.url, params={"precision": "n"}, data=body) as r:
            if 200 <= r.status < 300:
                await r.read()
                return None
            text = (await r.text(errors="replace")).strip()[:200]
            raise SendError(f"HTTP {r.status} {r.reason}: {text}", permanent=r.status in _PERMANENT)

    async def _close_transport(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
