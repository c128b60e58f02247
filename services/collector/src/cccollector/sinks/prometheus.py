"""`prometheus` sink: the latest value of every metric as a gauge on a scrape endpoint
(spec collector §7.6).

Options (strict):

* `host` (`""` = all addresses) — bind address.
* `port` (required) — listen port (string upstream; numbers accepted).
* `path` (`""`) — metrics are served at `/<path>`.
* `group_as_namespace` (`false`; `group_as_name_space` accepted too) — the gauge name becomes
  `<lower-case meta group>_<name>`.
* `meta_as_tags`, `process_messages` — common options (the processed message is used; upstream
  uses the unprocessed one, which differs only when a rule renames).

Each metric name is one gauge in the sink's own registry. Labels: when the message has both
`type` and `type-id` tags, one label named after the value of `type` holding the type-id
(`cpu_user{hwthread="3"}`), plus `device` from the tag or meta `device`; other tags are not
exported. A message whose label names differ from the first one of that name, a non-numeric
value, or a name that is not a valid Prometheus name is skipped with a (rate-limited) error.
Node-level gauges are updated on every write (upstream keeps the first value). Messages that
are not metrics (events, logs) are ignored.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from cccommon.message import CCMessage

from .base import Sink, SinkError, SinkOptions, register

__all__ = ["PrometheusSink"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


@register
class PrometheusSink(Sink):
    type = "prometheus"
    label = "PrometheusSink"
    options = frozenset({"host", "port", "path", "group_as_namespace"})
    aliases = {"group_as_name_space": "group_as_namespace"}

    def configure(self, opts: SinkOptions) -> None:
        port = opts.get_port("port")
        if not port:
            raise SinkError(f"{self}: not all configuration variables set required by PrometheusSink (port)")
        self.port = int(port)
        self.host = opts.get_str("host") or ""
        self.path = "/" + (opts.get_str("path") or "").lstrip("/")
        self.group_as_namespace = opts.get_bool("group_as_namespace")
        self.registry = CollectorRegistry(auto_describe=True)
        self._gauges: dict[str, tuple[Gauge, tuple[str, ...]]] = {}
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(self.path, self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host or None, self.port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise SinkError(f"{self}: cannot listen on {self.host or '*'}:{self.port}: {e}") from e
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
        self.log.info("serving Prometheus metrics at %s:%s%s", self.host or "*", self.bound_port, self.path)

    async def _handle(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def _write(self, msg: CCMessage) -> None:
        if msg.category != "metric":
            return
        value = msg.fields.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.dropped += 1
            self.limited(
                logging.ERROR,
                f"value:{msg.name}",
                "metric %s with value %r cannot be casted to float64",
                msg.name,
                value,
            )
            return
        names: list[str] = []
        values: list[str] = []
        typ, tid = msg.tags.get("type"), msg.tags.get("type-id")
        if typ is not None and tid is not None:
            names.append(typ)
            values.append(tid)
        device = msg.tags.get("device", msg.meta.get("device"))
        if device is not None:
            names.append("device")
            values.append(device)
        name = msg.name
        if self.group_as_namespace and msg.meta.get("group"):
            name = f"{msg.meta['group'].lower()}_{name}"
        entry = self._gauges.get(name)
        if entry is None:
            if not _NAME.match(name):
                self.dropped += 1
                self.limited(logging.ERROR, f"name:{name}", "%r is not a valid Prometheus metric name", name)
                return
            bad = [n for n in names if not _LABEL.match(n) or n.startswith("__")]
            if bad or len(set(names)) != len(names):
                self.dropped += 1
                self.limited(
                    logging.ERROR, f"labels:{name}", "cannot use label names %s for metric %s", names, name
                )
                return
            entry = (Gauge(name, "", names, registry=self.registry), tuple(names))
            self._gauges[name] = entry
        gauge, registered = entry
        if registered != tuple(names):
            self.dropped += 1
            self.limited(
                logging.ERROR,
                f"mismatch:{name}",
                "metric %s has labels %s, but was registered with %s: skipped",
                name,
                names,
                list(registered),
            )
            return
        (gauge.labels(*values) if names else gauge).set(float(value))
        self.sent += 1

    async def close(self) -> None:
        self.closed = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
