"""Wiring of the cc-backend server: context, aiohttp application, background workers, lifecycle.

`serve()` is what `cc-backend -server` runs: it opens the database and the archive, loads the cluster
configurations, starts the archiver and the periodic workers, binds the HTTP(S) listener, drops
privileges when `main.user`/`main.group` are set, tells systemd it is ready, and on SIGTERM/SIGINT
stops accepting requests, drains the archiving queue (up to 60 s) and closes the database (which
checkpoints the SQLite WAL so the .db file alone is a complete backup).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cccommon.durations import parse_duration
from cccommon.privileges import drop_privileges
from cccommon.systemd import notify

from . import __version__
from .api.common import MAX_BODY
from .api.rest import ApiHandlers, error_middleware_factory, routes
from .context import BackendContext

__all__ = ["CTX_KEY", "HANDLERS_KEY", "ROUTES_KEY", "build_app", "build_context", "serve"]

log = logging.getLogger("ccbackend.server")

ARCHIVER_DRAIN_SECONDS = 60.0

CTX_KEY = web.AppKey("ctx", BackendContext)
HANDLERS_KEY = web.AppKey("handlers", ApiHandlers)
ROUTES_KEY = web.AppKey("routes", list)


async def build_context(cfg: Any, env: Any) -> BackendContext:
    """Open database, archive, cluster registry, metric-data dispatcher and archiver."""
    from .archive import open_archive
    from .archiver import Archiver
    from .clusters import ClusterRegistry
    from .metricdata import MetricDataDispatcher
    from .nodestate import NodeStateService
    from .repository import open_repository

    repo = await open_repository(cfg.main.db_driver, cfg.main.db, options=cfg.main.db_config.model_dump())
    try:
        archive = await asyncio.to_thread(open_archive, cfg.archive)
        registry = await asyncio.to_thread(ClusterRegistry.from_archive, archive)
    except BaseException:
        await repo.close()
        raise
    log.info("job archive loaded: %d clusters (%s)", len(registry.names()), ", ".join(registry.names()))
    if cfg.metric_store and not cfg.metric_store_external:
        log.warning(
            "config: the embedded metric store (section metric-store) is not part of this server; "
            "run cc-metric-store and list it under metric-store-external"
        )
    elif not cfg.metric_store_external:
        log.warning("config: no metric-store-external entry: running jobs will show no metric data")
    dispatcher = MetricDataDispatcher(registry, cfg.metric_store_external)
    ctx = BackendContext(config=cfg, env=env, repo=repo, archive=archive, registry=registry, dispatcher=dispatcher)
    ctx.archiver = Archiver(repo, archive, dispatcher, registry)
    ctx.nodestates = NodeStateService(repo, registry, dispatcher)
    return ctx


GZIP_MIN_BYTES = 1024


@web.middleware
async def gzip_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Compress larger responses for clients that accept gzip (job lists, metric data)."""
    response = await handler(request)
    if (
        isinstance(response, web.Response)
        and "gzip" in request.headers.get("Accept-Encoding", "")
        and response.body is not None
        and len(response.body) >= GZIP_MIN_BYTES  # type: ignore[arg-type]
    ):
        response.enable_compression(web.ContentCoding.gzip)
    return response


def build_app(ctx: BackendContext, *, dev: bool = False) -> web.Application:
    """The aiohttp application with every route, the auth layer and the middlewares."""
    from .auth import AuthService, AuthSettings, RouteGroup, auth_group, setup_auth

    cfg = ctx.config
    app = web.Application(client_max_size=MAX_BODY, middlewares=[gzip_middleware])
    app[CTX_KEY] = ctx
    handlers = ApiHandlers(ctx)
    app[HANDLERS_KEY] = handlers
    table = routes(
        handlers,
        job_events_via_nats=cfg.main.api_subjects is not None,
        machine_state=bool(cfg.main.machine_state_dir),
    )
    if ctx.auth is None:
        settings = AuthSettings.from_config(cfg.raw, file=cfg.file or "config.json")
        ctx.auth = AuthService.from_env(settings, ctx.env, ctx.repo)
    setup_auth(app, ctx.auth, routes=not ctx.auth.settings.disable_authentication)
    # innermost: handler errors become upstream's error JSON and still pass the security headers
    app.middlewares.append(error_middleware_factory())
    for r in table:
        app.router.add_route(r.method, r.path, r.handler)
    app[ROUTES_KEY] = table

    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    @auth_group(RouteGroup.PUBLIC)  # Prometheus scrapes without credentials, as with the other daemons
    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest()
        if ctx.archiver is not None:
            body += generate_latest(ctx.archiver.metrics_registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics)
    if dev:
        from cccommon.openapi import add_swagger_routes

        from .api.openapi import openapi_spec

        add_swagger_routes(app, openapi_spec(table, __version__))
    return app


async def _every(interval: float, what: str, fn: Callable[[], Awaitable[Any]]) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", what)


def _start_workers(ctx: BackendContext) -> list[asyncio.Task[None]]:
    cfg = ctx.config
    tasks: list[asyncio.Task[None]] = []

    async def durations() -> None:
        n = await ctx.repo.update_running_durations(int(time.time()))
        log.debug("duration worker: updated %d running jobs", n)

    tasks.append(asyncio.create_task(_every(parse_duration(cfg.cron.duration_worker), "duration worker", durations)))

    grace = int(cfg.main.stop_jobs_exceeding_walltime or 0)
    if grace > 0:

        async def walltime() -> None:
            n = await ctx.repo.stop_jobs_exceeding_walltime(int(time.time()), grace)
            if n:
                log.warning("walltime watchdog: %d running jobs exceeded their walltime and were marked failed", n)

        tasks.append(asyncio.create_task(_every(86400.0, "walltime watchdog", walltime)))
    return tasks


def _split_addr(addr: str) -> tuple[str | None, int]:
    host, _, port = addr.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"main.addr: expected host:port, got {addr!r}")
    host = host.strip("[]")
    return (host or None), int(port)


async def serve(cfg: Any, env: Any, *, dev: bool = False, ready: asyncio.Event | None = None) -> None:
    """Run the server until SIGTERM/SIGINT (or until the task is cancelled)."""
    ctx = await build_context(cfg, env)
    if ctx.archiver is not None:
        ctx.archiver.start()
    workers = _start_workers(ctx)
    app = build_app(ctx, dev=dev)
    nats_api = None
    if cfg.main.api_subjects is not None:
        if cfg.nats is None:
            log.error("main.api-subjects is set but there is no nats section: job events cannot arrive")
        else:
            from .natsapi import NatsJobApi

            nats_api = NatsJobApi(app[HANDLERS_KEY], cfg.nats, cfg.main.api_subjects)
            await nats_api.start()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        host, port = _split_addr(cfg.main.addr)
        ssl_ctx = None
        if cfg.main.https_cert_file and cfg.main.https_key_file:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ssl_ctx.load_cert_chain(cfg.main.https_cert_file, cfg.main.https_key_file)
        site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx, shutdown_timeout=5.0)
        await site.start()
        drop_privileges(cfg.main.user or None, cfg.main.group or None)
        scheme = "https" if ssl_ctx else "http"
        log.info("HTTP server listening at %s (%s)", cfg.main.addr, scheme)
        notify("READY=1")
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutdown requested: stopping the HTTP server")
    finally:
        notify("STOPPING=1")
        await runner.cleanup()
        if nats_api is not None:
            await nats_api.stop()
        for t in workers:
            t.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if ctx.archiver is not None:
            await ctx.archiver.drain(ARCHIVER_DRAIN_SECONDS)
        await ctx.dispatcher.close()
        await ctx.repo.close()
        log.info("shutdown complete")
