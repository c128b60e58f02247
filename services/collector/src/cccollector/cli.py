"""`cc-metric-collector`: command line, wiring and shutdown (spec collector §1, §2, §9).

    cc-metric-collector -config /etc/cc-metric-collector/config.json [-once] [-loglevel info] [-log FILE]

Start order: router, sink manager, collector manager, receive manager; the ticker calls the
router (tick time, cache, aggregates) before the collectors. SIGTERM/SIGINT (or the end of
`-once`, 1.2 intervals after start) stops the ticker, waits for a running collection, closes the
receivers, and flushes and closes the sinks within 15 s. A second signal exits at once.
Configuration errors exit with status 2 and a message naming the file and field.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from cccommon.cliutil import GoFlagParser
from cccommon.config import ConfigError
from cccommon.logging import setup_logging
from cccommon.systemd import notify

from . import __version__
from .config import CollectorConfig, load_config
from .processor import MessageProcessor, ProcessorConfigError

log = logging.getLogger("collector")

SHUTDOWN_LIMIT = 15.0


def build_parser() -> GoFlagParser:
    p = GoFlagParser(prog="cc-metric-collector", description="ClusterCockpit node metric collector (Python)")
    p.add_flag(
        "config", default="./config.json", metavar="PATH", help="main config file (default ./config.json)"
    )
    p.add_flag(
        "log", default="stderr", metavar="FILE", help="stderr (default) or a file to append log lines to"
    )
    p.add_flag("loglevel", default="info", metavar="LEVEL", help="debug|info|warn|err|crit (default info)")
    p.add_flag("once", action="store_true", help="collect once, flush every sink, exit")
    p.add_flag("version", action="store_true", help="print the version and exit")
    return p


def _processor_factory(where: str, functions: dict[str, Any]) -> Any:
    def make(config: Any) -> MessageProcessor:
        return MessageProcessor.from_config(config, where, functions)

    return make


class Collector:
    """The running daemon: router, sinks, collectors, receivers, ticker."""

    def __init__(self, cfg: CollectorConfig, root: str = "/") -> None:
        from .manager import CollectorManager, Ticker
        from .router import Router
        from .sinks.base import SinkManager, load_all
        from .topology import TopologyError, read_topology, topology_constants, topology_functions

        self.cfg = cfg
        try:
            topo = read_topology(root)
        except TopologyError as e:
            log.warning("topology not available (%s); topology functions return -1", e)
            topo = None
        functions = topology_functions(topo) if topo is not None else {}
        load_all()
        self.sinks = SinkManager(cfg.sinks, _processor_factory("sink", functions))
        self.router = Router(
            cfg.router,
            self.sinks.write,
            constants=topology_constants(topo),
            functions=functions,
            out_many=self.sinks.write_many,
        )
        self.ticker = Ticker(cfg.interval)
        self.ticker.add(self.router.on_tick)
        self.collectors = CollectorManager(
            cfg.collectors, self.router.from_collector, cfg.duration, root=root
        )
        self.ticker.add(self.collectors.on_tick)
        self.receivers: Any = None
        if cfg.receivers:
            from .receivers.base import ReceiveManager

            self.receivers = ReceiveManager(
                cfg.receivers, self.router.from_receiver, _processor_factory("receiver", functions)
            )
        self.metrics_runner: Any = None

    async def start(self) -> None:
        await self.sinks.start()
        if self.receivers is not None:
            await self.receivers.start()
        if self.cfg.metrics_address:
            await self._start_metrics(self.cfg.metrics_address)
        self.ticker.start()
        log.info(
            "collector running: interval %gs, %d collector(s), %d sink(s), %d receiver(s)",
            self.cfg.interval,
            len(self.collectors.collectors),
            len(self.sinks.sinks),
            len(getattr(self.receivers, "receivers", {}) or {}),
        )

    async def _start_metrics(self, address: str) -> None:
        from aiohttp import web
        from prometheus_client import CollectorRegistry, Gauge

        from cccommon.promutil import add_metrics_route

        reg = CollectorRegistry()
        g = Gauge("cccollector_messages", "messages handled by the router", ["state"], registry=reg)
        g.labels("forwarded").set_function(lambda: self.router.forwarded)
        g.labels("dropped").set_function(lambda: self.router.dropped)
        Gauge("cccollector_ticks", "ticks since start", registry=reg).set_function(lambda: self.ticker.ticks)
        app = web.Application()
        add_metrics_route(app, reg)
        host, _, port = address.rpartition(":")
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host or "0.0.0.0", int(port)).start()
        self.metrics_runner = runner
        log.info("self metrics at http://%s/metrics", address)

    async def stop(self) -> None:
        """Stop within SHUTDOWN_LIMIT in total: collectors, then receivers, then the final flush."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_LIMIT
        await self.ticker.stop()
        try:
            async with asyncio.timeout_at(deadline - 5):  # keep 5 s for the sinks
                await self.collectors.wait_idle()
        except TimeoutError:
            log.warning("collectors still busy at shutdown; their messages of this tick are lost")
        self.collectors.close()
        if self.receivers is not None:
            try:
                async with asyncio.timeout_at(deadline - 4):
                    await self.receivers.close()
            except (TimeoutError, Exception) as e:  # noqa: BLE001 - shutdown goes on
                log.warning("receivers did not close cleanly: %s", e or "timeout")
        await self.sinks.close(grace=max(1.0, deadline - loop.time()))
        if self.metrics_runner is not None:
            await self.metrics_runner.cleanup()


async def run(cfg: CollectorConfig, once: bool = False, root: str = "/") -> int:
    try:
        daemon = Collector(cfg, root=root)
    except (ProcessorConfigError, ValueError) as e:
        # router errors start with "router"; sink/receiver errors are logged and skip the component
        print(f"cc-metric-collector: {cfg.origin.get('router', cfg.file)}: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # SinkError: no usable sink
        print(f"cc-metric-collector: {e}", file=sys.stderr)
        return 1
    try:
        await daemon.start()
    except Exception as e:  # noqa: BLE001
        print(f"cc-metric-collector: {e}", file=sys.stderr)
        await daemon.stop()
        return 1
    # Everything allocated so far (modules, configuration, compiled rules) lives until exit: keep
    # the garbage collector from scanning it again at every full collection.
    gc.freeze()
    notify("READY=1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second signal: exiting immediately")
            os._exit(1)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    if once:
        loop.call_later(1.2 * cfg.interval, stop.set)
    await stop.wait()
    log.info("shutting down")
    notify("STOPPING=1")
    await daemon.stop()
    log.info("shutdown complete")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"cc-metric-collector {__version__} (Python)")
        return
    stream = None
    if args.log and args.log != "stderr":
        try:
            stream = open(args.log, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
        except OSError as e:
            print(f"cc-metric-collector: -log {args.log}: {e.strerror}", file=sys.stderr)
            raise SystemExit(2) from None
    setup_logging(args.loglevel, component="", stream=stream)
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"cc-metric-collector: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        import uvloop  # a dependency on Linux; elsewhere the standard loop does the same work
    except ImportError:
        raise SystemExit(asyncio.run(run(cfg, once=args.once))) from None
    raise SystemExit(uvloop.run(run(cfg, once=args.once)))


if __name__ == "__main__":
    main()
