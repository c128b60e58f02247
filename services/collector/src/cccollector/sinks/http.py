"""`http` sink: batches of line protocol POSTed to an HTTP endpoint such as cc-metric-store's
`/api/write` (spec collector §7.2).

Options (strict):

* `url` — full endpoint, e.g. `http://ccms:8082/api/write?cluster=fritz`.
* `host`, `port`, `path`, `database`, `ssl` — PX-10, the how-to's form:
  `http[s]://<host>:<port><path>` (`path` gets a leading `/`; without `path` but with
  `database`: `/<database>`; neither: `/`). `url` together with `host` is an error; one of the
  two forms is required.
* `jwt` — sent as `Authorization: Bearer <jwt>`.
* `username`, `password` — HTTP basic auth (both or neither).
* `timeout` (`5s`) — per request.
* `idle_connection_timeout` (`120s`) — keep-alive time of the idle connection.
* `flush_delay` (`5s`) — batching window; `0` sends at every write.
* `batch_size` (unlimited) — PX-10: send as soon as this many lines are buffered.
* `max_retries` (`3`) — tries per delivery round on transport errors (at least one), pausing
  0.5 s × try number in between.
* `precision` (`s`) — `s`, `ms`, `us`, `ns` (anything else: `s`).
* `meta_as_tags`, `process_messages` — common options.

Responses: 2xx = delivered. 400, 413 and 422 mean the peer refuses this data: the batch is
dropped with an error log (retrying cannot help). Any other status (401/403 from a bad token,
404, 5xx) and transport errors keep the batch buffered and retry with back-off (base module
`_batch`), so a collector whose peer is down or refuses its credentials keeps collecting and
delivers once the peer accepts again. Upstream drops the batch after `max_retries`; this keeps
it, bounded by the sink's buffer (decisions: "Rejected credentials").
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import aiohttp

from cccommon.message import CCMessage

from ._batch import BatchingSink, SendError
from ._encode import line_b, lines_b, parse_precision
from .base import SinkError, SinkOptions, register

__all__ = ["HttpSink"]

_PERMANENT = frozenset({400, 413, 422})


def basic_auth(user: str, password: str) -> str:
    """The `Authorization` value of HTTP basic authentication."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@register
class HttpSink(BatchingSink):
    type = "http"
    label = "HttpSink"
    options = frozenset(
        {
            "url",
            "jwt",
            "username",
            "password",
            "timeout",
            "idle_connection_timeout",
            "flush_delay",
            "max_retries",
            "precision",
            "host",
            "port",
            "path",
            "database",
            "ssl",
            "batch_size",
        }
    )
    attempts = 3

    def configure(self, opts: SinkOptions) -> None:
        url = opts.get_str("url")
        host = opts.get_str("host")
        if url and host:
            raise SinkError(f"{self}: give either 'url' or 'host'/'port'/'path', not both")
        if not url:
            if not host:
                raise SinkError(
                    f"{self}: `url` config option is required for HTTP sink (or 'host' and 'port')"
                )
            port = opts.get_port("port")
            path = opts.get_str("path") or ""
            database = opts.get_str("database") or ""
            if not path and database:
                path = database
            if not path.startswith("/"):
                path = "/" + path
            scheme = "https" if opts.get_bool("ssl") else "http"
            url = f"{scheme}://{host}:{port}{path}" if port else f"{scheme}://{host}{path}"
        elif opts.has("port") or opts.has("path") or opts.has("database"):
            self.log.warning("'port', 'path' and 'database' are ignored when 'url' is given")
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SinkError(f"{self}: {url!r} is not an http:// or https:// URL")
        self.url = url
        self.jwt = opts.get_str("jwt") or ""
        user = opts.get_str("username") or ""
        password = opts.get_str("password") or ""
        if (user or password) and not (user and password):
            raise SinkError(f"{self}: basic authentication requires both 'username' and 'password'")
        self.timeout = opts.get_duration("timeout", 5.0)  # 0 = no limit, as in Go
        self.idle_timeout = opts.get_duration("idle_connection_timeout", 120.0) or 0.0
        self.flush_delay = opts.get_duration("flush_delay", 5.0) or 0.0
        self.batch_size = opts.get_int("batch_size")
        if self.batch_size is not None and self.batch_size <= 0:
            self.batch_size = None
        self.max_request_lines = self.batch_size
        retries = opts.get_int("max_retries", 3)
        self.attempts = max(1, retries or 0)
        self.precision, self._unit = parse_precision(opts.get_str("precision"), self.log)
        self._session: aiohttp.ClientSession | None = None
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.jwt:
            headers["Authorization"] = f"Bearer {self.jwt}"
        if user:  # basic auth wins over the token, as Go's SetBasicAuth runs last
            headers["Authorization"] = basic_auth(user, password)
        self._headers = headers

    @property
    def peer(self) -> str:
        return self.url

    def _encode(self, msg: CCMessage) -> str:
        return line_b(msg, self._unit)

    def _encode_many(self, msgs: list[CCMessage]) -> list[str]:
        return lines_b(msgs, self._unit, self._encode_failed)

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=self.idle_timeout or None)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout or None),
            headers=self._headers,
        )

    async def _open(self) -> None:
        if self._session is None:
            self._session = self._new_session()

    async def _send(self, body: bytes, lines: int) -> int | None:
        if self._session is None:
            self._session = self._new_session()
        async with self._session.post(self.url, data=body) as r:
            if 200 <= r.status < 300:
                await r.read()
                return
            text = (await r.text(errors="replace")).strip()[:200]
            raise SendError(f"HTTP {r.status} {r.reason}: {text}", permanent=r.status in _PERMANENT)

    async def _close_transport(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
