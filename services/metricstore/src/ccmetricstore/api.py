"""HTTP API of cc-metric-store (spec §3.6, §4–§9) on aiohttp."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from cccommon.jwt import TokenCache, TokenError, load_public_key
from cccommon.logging import get_logger
from cccommon.promutil import metrics_route

from . import __version__
from .query import BadRequest, decode_json_body, dumps, execute, parse_query_request, request_from_url
from .service import MetricStoreService
from .store import StoreError

log = get_logger("metricstore")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVICE: web.AppKey[MetricStoreService] = web.AppKey("service", MetricStoreService)


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """Upstream's error shape `{"status": "<reason>", "error": "<message>"}` plus newline."""
    body = orjson.dumps({"status": HTTPStatus(status).phrase, "error": message}) + b"\n"
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


class BodyTooLarge(Exception):
    pass


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def raw_query_param(request: web.Request, name: str) -> str | None:
    """First `name=` of the raw query string, not percent-decoded (upstream reads it so)."""
    for part in request.query_string.split("&"):
        key, eq, value = part.partition("=")
        if key == name:
            return value if eq else ""
    return None


def _endpoint(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:3]) if path.startswith("/api/") else path


def make_app(service: MetricStoreService, dev: bool = False) -> web.Application:
    settings = service.settings
    key = load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None
    tokens = TokenCache()
    limit = settings.max_body_size
    stats = service.stats

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = _endpoint(request.path)
        try:
            if key is not None and request.path.startswith("/api/"):
                auth = request.headers.get("Authorization", "")
                if not auth.startswith("Bearer "):
                    resp: web.StreamResponse = json_error(401, "Use JWT Authentication")
                else:
                    try:
                        tokens.verify(auth[len("Bearer ") :], key)
                        resp = await handler(request)
                    except TokenError as e:
                        resp = json_error(401, str(e))
            else:
                resp = await handler(request)
        except web.HTTPException as e:
            if e.status in (404, 405):
                msg = "404 page not found" if e.status == 404 else f"method {request.method} not allowed"
                resp = json_error(
                    e.status, msg, headers={"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
                )
            else:
                raise
        except BodyTooLarge:
            resp = json_error(
                413, f"request body larger than the limit of {limit} bytes (main.max-body-size)"
            )
        except BadRequest as e:
            resp = json_error(400, str(e))
        stats.requests.labels(endpoint, str(resp.status)).inc()
        return resp

    async def write(request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        body = await read_body(request, limit)
        cluster = raw_query_param(request, "cluster") or ""
        res = await service.ingest(body, cluster, "http", durable=True)
        stats.write_seconds.observe(time.perf_counter() - t0)
        if res.errors:
            log.warning("write from %s: %s", request.remote, res.error_message())
            return json_error(400, res.error_message())
        return web.Response(status=200, content_type="application/json")

    async def query(request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        body = await read_body(request, limit)
        if not body.strip() and request.query.get("cluster") is not None:
            req = request_from_url(request.query, service.store)
        else:
            req = parse_query_request(body)
        out = execute(service.store, req)
        stats.query_seconds.observe(time.perf_counter() - t0)
        return web.Response(body=dumps(out), content_type="application/json")

    async def free(request: web.Request) -> web.Response:
        to_raw = request.query.get("to", "")
        if not to_raw:
            raise BadRequest("'to' is a required query parameter")
        try:
            to = int(to_raw)
        except ValueError:
            raise BadRequest(f'strconv.ParseInt: parsing "{to_raw}": invalid syntax') from None
        body = await read_body(request, limit)
        sels = decode_json_body(body)
        if not isinstance(sels, list) or not all(
            isinstance(s, list) and all(isinstance(x, str) for x in s) for s in sels
        ):
            raise BadRequest("json: cannot unmarshal request body into Go value of type [][]string")
        for s in sels:
            if any(x in ("", ".", "..") or "/" in x or "\\" in x for x in s[:2]):
                raise BadRequest(f"invalid selector {s!r}: empty or unsafe cluster/host name")
        n = 0
        for s in sels:
            n += service.store.free(s, to)
        stats.freed.inc(n)
        service.update_gauges()
        return web.Response(text=f"buffers freed: {n}\n")

    async def debug(request: web.Request) -> web.Response:
        sel_raw = request.query.get("selector")
        sel = sel_raw.split(":") if sel_raw else None
        try:
            tree = service.store.debug_tree(sel)
        except StoreError as e:
            return json_error(400, str(e))
        return web.Response(
            body=orjson.dumps({"data": tree}, option=orjson.OPT_INDENT_2), content_type="application/json"
        )

    async def healthcheck(request: web.Request) -> web.Response:
        body = await read_body(request, limit)
        try:
            obj = decode_json_body(body)
        except BadRequest as e:
            raise BadRequest(f"parsing request body failed: {e}") from None
        if not isinstance(obj, dict):
            raise BadRequest(
                "parsing request body failed: json: cannot unmarshal into Go value of type HealthCheckReq"
            )
        allowed = {"cluster": str, "nodes": list, "metric-names": list}
        lowered = {k.lower(): k for k in allowed}
        args: dict[str, Any] = {"cluster": "", "nodes": [], "metric-names": []}
        for k, v in obj.items():
            name = lowered.get(k.lower())
            if name is None:
                raise BadRequest(f'parsing request body failed: json: unknown field "{k}"')
            if v is None:
                continue
            if not isinstance(v, allowed[name]) or (
                isinstance(v, list) and not all(isinstance(x, str) for x in v)
            ):
                raise BadRequest(f'parsing request body failed: json: wrong type for field "{name}"')
            args[name] = v
        res = service.store.health(args["cluster"], args["nodes"], args["metric-names"], int(time.time()))
        out = {
            node: {
                "State": state,
                "HealthMetrics": orjson.dumps(hm).decode() if hm is not None else "",
            }
            for node, (state, hm) in res.items()
        }
        return web.Response(body=orjson.dumps(out) + b"\n", content_type="application/json")

    app = web.Application(middlewares=[middleware], client_max_size=limit)
    app[SERVICE] = service
    r = app.router
    for path in ("/api/write", "/api/write/", "/api/write/{tail:.+}"):
        r.add_post(path, write)
    for path in ("/api/query", "/api/query/", "/api/query/{tail:.+}"):
        r.add_get(path, query)
        r.add_post(path, query)
    for path in ("/api/free", "/api/free/", "/api/free/{tail:.+}"):
        r.add_post(path, free)
    for path in ("/api/debug", "/api/debug/", "/api/debug/{tail:.+}"):
        r.add_get(path, debug)
    for path in ("/api/healthcheck", "/api/healthcheck/", "/api/healthcheck/{tail:.+}"):
        r.add_get(path, healthcheck)
        r.add_post(path, healthcheck)
    r.add_get("/metrics", metrics_route(service.stats.registry))
    if dev:
        from cccommon.openapi import add_swagger_routes

        from .openapi import openapi_spec

        add_swagger_routes(app, openapi_spec(__version__))
    return app
