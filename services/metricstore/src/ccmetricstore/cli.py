"""`cc-metric-store`: command line and server lifecycle (spec §11.5, §12.8)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import sys
import time
from collections.abc import Sequence

from aiohttp import web

from cccommon.cliutil import GoFlagParser
from cccommon.config import ConfigError
from cccommon.logging import get_logger, setup_logging
from cccommon.privileges import PrivilegeError, drop_privileges
from cccommon.systemd import notify

from . import __version__
from .config import Settings, load_settings

log = get_logger("metricstore")


def build_parser() -> GoFlagParser:
    p = GoFlagParser(prog="cc-metric-store", description="ClusterCockpit metric store (Python)")
    p.add_flag("config", default="./config.json", metavar="PATH", help="config file (default ./config.json)")
    p.add_flag("dev", action="store_true", help="serve the OpenAPI document and Swagger UI under /swagger/")
    p.add_flag("loglevel", default="info", metavar="LEVEL", help="debug|info|warn|err|crit (default info)")
    p.add_flag("logdate", action="store_true", help="prefix log lines with date and time")
    p.add_flag("version", action="store_true", help="print the version and exit")
    p.add_flag("gops", action="store_true", help="accepted for compatibility; no effect")
    p.add_flag(
        "cleanup-checkpoints",
        action="store_true",
        help="run one cleanup pass of old checkpoint files (delete/archive as configured) and exit",
    )
    return p


async def serve(settings: Settings, dev: bool = False, ready: asyncio.Event | None = None) -> None:
    """Run the daemon until SIGTERM/SIGINT; write the final checkpoint on the way out."""
    from .api import make_app
    from .natsrecv import NatsReceiver
    from .service import MetricStoreService

    service = MetricStoreService(settings)
    await service.open()
    app = make_app(service, dev=dev)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=30)
    await runner.setup()
    ctx = None
    if settings.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(settings.https_cert_file, settings.https_key_file)
    site = web.TCPSite(
        runner, settings.host, settings.port, ssl_context=ctx, backlog=1024, reuse_address=True
    )
    try:
        await site.start()
    except OSError as e:
        await service.close()
        raise SystemExit(
            f"cc-metric-store: cannot listen on {settings.host}:{settings.port}: {e.strerror or e}"
        ) from None
    drop_privileges(settings.user, settings.group)
    service.start_workers()
    nats = NatsReceiver(service, settings.nats)
    nats.start()
    scheme = "https" if ctx else "http"
    log.info("API %s endpoint listening on '%s:%d'", scheme, settings.host, settings.port)
    notify("READY=1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down: closing NATS, finishing HTTP requests, writing the final checkpoint")
    notify("STOPPING=1")
    await nats.close()
    await runner.cleanup()
    await service.close()
    log.info("shutdown complete")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"cc-metric-store (ClusterCockpit in Python) {__version__}")
        return
    setup_logging(args.loglevel, args.logdate, component="metricstore")
    try:
        settings = load_settings(args.config)
    except ConfigError as e:
        print(f"cc-metric-store: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.cleanup_checkpoints:
        from .service import MetricStoreService

        service = MetricStoreService(settings)
        cutoff = int(time.time() - settings.cleanup_interval)
        n = service.cleanup_sync(cutoff)
        service.pool.shutdown()
        print(f"{n} checkpoint files older than {cutoff} handled ({settings.cleanup_mode})")
        return
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(settings, dev=args.dev))
    except PrivilegeError as e:
        print(f"cc-metric-store: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
