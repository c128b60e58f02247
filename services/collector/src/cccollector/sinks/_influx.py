"""InfluxDB write endpoints over aiohttp, shared by the `influxdb` and `influxasync` sinks.

Connection options read here: `host`, `port`, `database` (the bucket, or the 1.x database),
`organization`, `user`, `password` (the token), `ssl` (https without certificate verification,
as upstream), `precision`.

`start` pings `GET /ping`, which must answer 204. The server's `X-Influxdb-Version` header picks
the write API:

* InfluxDB 2.x (or no header): `POST /api/v2/write?org=<organization>&bucket=<database>&precision=<p>`
  with `Authorization: Token <password>` (or `Token <user>:<password>` when `user` is set, the
  InfluxDB 1.8 compatibility form, as upstream). `organization` is required.
* InfluxDB 1.x (Python extension; upstream only speaks v2, which 1.x before 1.8 lacks):
  `POST /write?db=<database>&precision=<s|ms|u|ns>` with basic auth `user`/`password`, or
  `Authorization: Token <password>` without `user`. `organization` is not needed.
"""

from __future__ import annotations

import gzip
import ssl
from urllib.parse import urlencode

import aiohttp

from ._batch import BatchingSink, SendError
from ._encode import parse_precision
from .base import Sink, SinkError, SinkOptions
from .http import basic_auth

__all__ = ["InfluxTarget", "INFLUX_OPTIONS"]

INFLUX_OPTIONS = frozenset(
    {"host", "port", "database", "organization", "user", "password", "ssl", "precision"}
)

_V1_PRECISION = {"s": "s", "ms": "ms", "us": "u", "ns": "ns"}
_PERMANENT = frozenset({400, 413, 422})


class InfluxTarget:
    """Where and how to write: URLs, auth header, API version, the HTTP session."""

    def __init__(self, sink: Sink, opts: SinkOptions, require_host: bool = True) -> None:
        self.sink = sink
        self.host = opts.get_str("host") or ""
        self.port = opts.get_port("port") or ""
        self.database = opts.get_str("database") or ""
        self.organization = opts.get_str("organization") or ""
        self.user = opts.get_str("user") or ""
        self.password = opts.get_str("password") or ""
        self.ssl = opts.get_bool("ssl")
        for key, value in (
            ("host", self.host if require_host else "x"),
            ("port", self.port),
            ("database", self.database),
            ("password", self.password),
        ):
            if not value:
                raise SinkError(f"{sink}: missing {key} configuration required by {sink.label}")
        self.precision, self.unit_ns = parse_precision(opts.get_str("precision"), sink.log)
        scheme = "https" if self.ssl else "http"
        self.base = f"{scheme}://{self.host or 'localhost'}:{self.port}"
        self.api = "v2"
        self.version = ""
        self.gzip = False
        self.timeout: float | None = 20.0
        self._session: aiohttp.ClientSession | None = None

    # ----------------------------------------------------------------- session

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ctx: ssl.SSLContext | bool = False if self.ssl else True  # no verification, as upstream
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ctx),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ----------------------------------------------------------------- endpoints

    async def ping(self) -> None:
        """GET /ping must answer 204; the version header selects the write API."""
        try:
            async with self.session().get(self.base + "/ping") as r:
                await r.read()
                status = r.status
                self.version = r.headers.get("X-Influxdb-Version", "")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            await self.close()
            raise SinkError(f"{self.sink}: unable to connect to {self.base}: {e or type(e).__name__}") from e
        if status != 204:
            await self.close()
            raise SinkError(f"{self.sink}: connection to {self.base} not healthy (HTTP {status})")
        self.api = "v1" if self.version.lstrip("v").startswith("1.") else "v2"
        if self.api == "v2" and not self.organization:
            await self.close()
            raise SinkError(f"{self.sink}: missing organization configuration required by {self.sink.label}")

    def write_url(self) -> str:
        if self.api == "v1":
            q = {"db": self.database, "precision": _V1_PRECISION[self.precision]}
            return f"{self.base}/write?{urlencode(q)}"
        q = {"org": self.organization, "bucket": self.database, "precision": self.precision}
        return f"{self.base}/api/v2/write?{urlencode(q)}"

    def headers(self) -> dict[str, str]:
        h = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            h["Content-Encoding"] = "gzip"
        if self.api == "v1":
            h["Authorization"] = (
                basic_auth(self.user, self.password) if self.user else f"Token {self.password}"
            )
        else:
            token = f"{self.user}:{self.password}" if self.user else self.password
            h["Authorization"] = f"Token {token}"
        return h

    async def write(self, body: bytes) -> None:
        """POST one batch; SendError (permanent for 400/413/422)."""
        data = gzip.compress(body) if self.gzip else body
        async with self.session().post(self.write_url(), data=data, headers=self.headers()) as r:
            if 200 <= r.status < 300:
                await r.read()
                return
            text = (await r.text(errors="replace")).strip()[:300]
            raise SendError(f"HTTP {r.status} {r.reason}: {text}", permanent=r.status in _PERMANENT)


class InfluxBatchingSink(BatchingSink):
    """What the influxdb and influxasync sinks share: the target, its ping at start, delivery."""

    target: InfluxTarget

    @property
    def peer(self) -> str:
        return f"InfluxDB {self.target.base} ({self.target.database})"

    async def _open(self) -> None:
        await self.target.ping()
        self.log.info(
            "connected to %s (InfluxDB %s, %s write API)",
            self.target.base,
            self.target.version or "?",
            self.target.api,
        )

    async def _send(self, body: bytes, lines: int) -> int | None:
        await self.target.write(body)
        return None
