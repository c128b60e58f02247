"""`http` receiver: line protocol POSTed by http sinks of other collectors (spec collector §8.1).

Options (lenient: unknown keys are ignored with a warning):

* `address` (`""` = all interfaces) — listen address.
* `port` (`"8080"`, a string or, PX-2, a number; must not be empty) — listen port.
* `path` (`""`) — URL path, a leading `/` is added. `"/"` (the default) accepts every path; a path
  ending in `/` accepts everything below it; any other path only matches exactly (Go ServeMux
  rules). Other paths get `404`.
* `idle_timeout` (`120s`) — how long an idle keep-alive connection stays open.
* `keep_alives_enabled` (`true`) — `false` closes the connection after every response.
* `username`, `password` — HTTP basic auth; both are required if one is given; a mismatch or a
  missing `Authorization` header gets `401`.
* `precision` (`auto`) — PX-3: timestamp unit `s`, `ms`, `us`, `ns`, or `auto` (by magnitude);
  lines without timestamp get the arrival time.
* `process_messages` — the receiver's own rules (common option).

Only `POST` is handled (`405 Method Not Allowed` otherwise). The body is read as a stream and
decoded line by line (big chunks in a worker thread), so its size is not limited and memory stays
bounded; every message gets meta `source=HttpReceiver(<name>)`, goes through the receiver's rules
and on to the router. Success is `200` with an empty body. At the first bad line the request is
answered `400` with the error text (line, column, reason); the lines before it are already
forwarded. Upstream answers `500` here; 400 is used because the data, not the server, is at
fault and because senders such as our http sink retry 5xx answers, which would forward the good
lines again. A body that cannot be read (connection lost mid-way) is answered `400` too; an
internal failure `500`. A JWT (`Authorization: Bearer`) sent by an http sink is ignored. Each
receiver runs its own server (upstream shares one handler table between receivers).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from cccommon.lineprotocol import LineProtocolError
from cccommon.message import CCMessage

from .base import Receiver, ReceiverError, ReceiverOptions, register

__all__ = ["HttpReceiver"]

#: a request body that could not be read completely (client gone, bad chunking or compression)
_BODY_ERRORS = (ClientPayloadError, HttpProcessingError, EOFError, ConnectionResetError)


@register
class HttpReceiver(Receiver):
    type = "http"
    label = "HttpReceiver"
    options = frozenset(
        {
            "address",
            "port",
            "path",
            "idle_timeout",
            "keep_alives_enabled",
            "username",
            "password",
            "precision",
        }
    )
    default_port = "8080"
    #: body bytes decoded per step (at line boundaries)
    chunk_bytes = 256 << 10
    #: seconds that close() waits for requests in flight
    shutdown_timeout = 5.0

    def configure(self, opts: ReceiverOptions) -> None:
        self.address = opts.get_str("address", "") or ""
        port = opts.get_port("port", self.default_port)
        if not port:
            raise opts.err("port", "must not be empty")
        self.port = int(port)
        path = opts.get_str("path", "") or ""
        self.path = path if path.startswith("/") else "/" + path
        self.idle_timeout = opts.get_duration("idle_timeout", 120.0)
        self.keep_alives = opts.get_bool("keep_alives_enabled", True)
        user = opts.get_str("username") or None  # empty strings mean "no auth", as upstream
        password = opts.get_str("password") or None
        if (user is None) != (password is None):
            raise ReceiverError(f"{self}: basic auth needs both 'username' and 'password'")
        self._auth: tuple[bytes, bytes] | None = None
        if user is not None and password is not None:
            self._auth = (user.encode(), password.encode())
        self.unit_ns = opts.get_precision()
        self._runner: web.ServerRunner | None = None
        self.requests = 0

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        server = web.Server(self._handle, keepalive_timeout=self.idle_timeout, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=self.shutdown_timeout)
        await runner.setup()
        site = web.TCPSite(runner, self.address or None, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise ReceiverError(f"{self}: cannot listen on {self.address or '*'}:{self.port}: {e}") from e
        self._runner = runner
        self.log.info("listening on %s:%d path %s", self.address or "*", self.port, self.path)

    async def close(self) -> None:
        self.closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        """The URL senders should use (for logs and tests)."""
        host = self.address or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.path}"

    # ----------------------------------------------------------------- request handling

    def path_matches(self, path: str) -> bool:
        if self.path == "/" or path == self.path:
            return True
        return self.path.endswith("/") and path.startswith(self.path)

    def _authorized(self, request: web.BaseRequest) -> bool:
        assert self._auth is not None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        ok_user = hmac.compare_digest(user, self._auth[0])
        ok_password = hmac.compare_digest(password, self._auth[1])
        return bool(sep) and ok_user and ok_password

    def _reply(self, status: int, text: str = "", headers: dict[str, str] | None = None) -> web.Response:
        resp = web.Response(status=status, text=text, headers=headers)
        if not self.keep_alives:
            resp.force_close()
        return resp

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if not self.path_matches(request.path):
            return self._reply(404, "404 page not found\n")
        if request.method != "POST":
            return self._reply(405, "Method Not Allowed\n", {"Allow": "POST"})
        if self._auth is not None and not self._authorized(request):
            return self._reply(
                401, "Unauthorized\n", {"WWW-Authenticate": 'Basic realm="cc-metric-collector"'}
            )
        self.requests += 1
        try:
            err = await self._consume(request)
        except _BODY_ERRORS as e:
            self.limited(logging.WARNING, "body", "reading a request body failed: %s", e)
            return self._reply(400, f"reading the request body failed: {e}\n")
        except Exception as e:
            self.log.exception("handling a request failed")
            return self._reply(500, f"internal error: {e!r}\n")
        if err is not None:
            self.errors += 1
            self.limited(logging.ERROR, "decode", "bad line protocol from %s: %s", request.remote, err)
            return self._reply(400, f"line protocol decode error {err}\n")
        return self._reply(200)

    async def _consume(self, request: web.BaseRequest) -> LineProtocolError | None:
        """Decode and forward the body step by step; the error of the first bad line, if any."""
        now = time.time_ns()
        buf = bytearray()
        lineno = 1
        async for chunk in request.content.iter_chunked(self.chunk_bytes):
            buf += chunk
            if len(buf) < self.chunk_bytes:
                continue
            cut = buf.rfind(b"\n")
            if cut < 0:  # one very long line: keep reading
                continue
            lines = bytes(buf[:cut]).split(b"\n")
            del buf[: cut + 1]
            err = await self._decode_forward(lines, lineno, now, cut)
            if err is not None:
                return err
            lineno += len(lines)
        if buf:
            return await self._decode_forward(bytes(buf).split(b"\n"), lineno, now, len(buf))
        return None

    async def _decode_forward(
        self, lines: list[bytes], lineno: int, now: int, size: int
    ) -> LineProtocolError | None:
        msgs, err = await self.decode(lines, lineno, self.unit_ns, now, size)
        for m in msgs:
            await self.handle_message(m)
        return err

    async def handle_message(self, msg: CCMessage) -> None:
        """One decoded message; subclasses (eecpt) look at it before it is forwarded."""
        await self.forward(msg)
