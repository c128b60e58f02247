"""What every sink implements, the sink registry, and the manager that fans messages out.

A sink is created once per `sinks.json` entry by `create_sink(name, config)`: its constructor
decodes and checks the options (raising `SinkError` with a message naming the sink and the key)
and `await sink.start()` opens what needs the event loop (HTTP sessions, NATS connection,
listening sockets; the influx sinks ping their server there). After that:

* `write(msg)` is synchronous and never blocks or raises: it applies the sink's own
  `process_messages` rules and `meta_as_tags`, encodes, and appends to an in-memory batch;
  network I/O happens in background tasks (spec collector §7.0).
* `await flush()` hands everything buffered to the peer now (and waits for one delivery round).
* `await close()` flushes one last time and releases sockets and files.

Options common to every sink (spec §7.0):

* `type` — the registered sink type (`stdout`, `http`, `nats`, `influxdb`, `influxasync`,
  `prometheus`, `ganglia`, `libganglia`).
* `meta_as_tags` — list of meta keys moved into the tags before encoding (classic use: `["unit"]`).
* `process_messages` — the sink's own rules engine (object, or PX-5 list). The engine itself is
  not part of this package: the caller passes a `processor_factory` (to `create_sink`,
  `SinkManager`, or once via `set_processor_factory`) that turns the configuration into an
  object with `process(msg) -> CCMessage | None`. Without a factory a non-empty
  `process_messages` makes the sink fail to start with an explanation.

Option keys match case-insensitively like Go's JSON decoder (§3.4); strict sinks reject unknown
keys. `sinks.json` is an object *name → config*; the `SinkManager` also accepts a list of configs
(each may carry a `name`; otherwise `<type><index>` is used).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from cccommon.message import CCMessage

from ..components import ComponentOptions, LimitedLog, MessageProcessor, ProcessorFactory, named_configs

__all__ = [
    "SinkError",
    "MessageProcessor",
    "ProcessorFactory",
    "SinkOptions",
    "Sink",
    "REGISTRY",
    "register",
    "load_all",
    "create_sink",
    "set_processor_factory",
    "SinkManager",
    "COMMON_OPTIONS",
]

log = logging.getLogger("SinkManager")

COMMON_OPTIONS = frozenset({"type", "meta_as_tags", "process_messages"})


class SinkError(Exception):
    """A sink cannot be created or started (bad option, unreachable peer at start-up)."""


_default_factory: ProcessorFactory | None = None


def set_processor_factory(factory: ProcessorFactory | None) -> None:
    """Register the rules engine used for `process_messages` when none is passed explicitly."""
    global _default_factory
    _default_factory = factory


# ----------------------------------------------------------------------------- options


class SinkOptions(ComponentOptions):
    """The decoded option object of one sink: case-insensitive keys, typed getters, clear errors."""

    error = SinkError
    common = COMMON_OPTIONS
    default_log = log


# ----------------------------------------------------------------------------- the sink interface


class Sink:
    """Base class: option decoding, message preparation, counters and the async life cycle."""

    #: key in sinks.json
    type: ClassVar[str] = ""
    #: upstream component name, used in log lines as `<label>(<name>)`
    label: ClassVar[str] = "Sink"
    #: option keys besides the common ones
    options: ClassVar[frozenset[str]] = frozenset()
    #: other spelling → canonical key
    aliases: ClassVar[Mapping[str, str]] = {}
    #: strict sinks reject unknown keys (all upstream sinks are strict)
    strict: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any] | None,
        processor_factory: ProcessorFactory | None = None,
    ) -> None:
        self.name = name
        self.log = logging.getLogger(f"{self.label}({name})")
        self.limited = LimitedLog(self.log)
        opts = SinkOptions(f"{self.label}({name})", config, self.options, self.aliases, self.strict, self.log)
        self.opts = opts
        self.meta_as_tags = opts.get_list("meta_as_tags")
        self.processor: MessageProcessor | None = None
        pm = opts.raw("process_messages")
        if pm not in (None, {}, []):
            factory = processor_factory or _default_factory
            if factory is None:
                raise SinkError(
                    f"{self.label}({name}): 'process_messages' needs the rules engine, "
                    "but no message processor was registered (set_processor_factory)"
                )
            try:
                self.processor = factory(pm)
            except Exception as e:
                raise SinkError(f"{self.label}({name}): bad 'process_messages': {e}") from e
        #: messages handed to write(), lines/messages delivered, dropped (encoding, overflow, rejects)
        self.received = 0
        self.sent = 0
        self.dropped = 0
        self.closed = False
        self.configure(opts)

    # ----------------------------------------------------------------- for subclasses

    def configure(self, opts: SinkOptions) -> None:
        """Read the sink's own options (called from __init__); raise SinkError on bad values."""

    def _write(self, msg: CCMessage) -> None:
        """Accept one prepared message (own copy, rules applied, meta moved); must not block."""
        raise NotImplementedError

    async def start(self) -> None:
        """Open connections/sockets; raise SinkError if the sink cannot work at all."""

    async def flush(self) -> None:
        """Deliver what is buffered now."""

    async def close(self) -> None:
        """Final flush, then release resources."""
        self.closed = True

    # ----------------------------------------------------------------- message path

    def prepare(self, msg: CCMessage) -> CCMessage | None:
        """The sink's view of a message: its own rules, then meta keys moved into tags."""
        if self.processor is None and not self.meta_as_tags:
            return msg
        m = msg.copy()
        if self.processor is not None:
            out = self.processor.process(m)
            if out is None:
                return None
            m = out
        for key in self.meta_as_tags:
            if key in m.meta:
                m.tags[key] = m.meta.pop(key)
        return m

    def write(self, msg: CCMessage) -> None:
        """Queue one message; never raises, never blocks."""
        self.received += 1
        if self.closed:
            self.dropped += 1
            self.limited(logging.ERROR, "closed", "write after close: message dropped")
            return
        try:
            m = self.prepare(msg)
            if m is not None:
                self._write(m)
        except Exception as e:  # a sink must never take the collector down
            self.dropped += 1
            self.limited(logging.ERROR, "write", "write of %r failed: %s", getattr(msg, "name", msg), e)

    def write_many(self, msgs: list[CCMessage]) -> None:
        """Queue the messages of one collector read or receiver batch; never raises, never blocks."""
        if self.closed or self.processor is not None or self.meta_as_tags:
            for m in msgs:
                self.write(m)
            return
        self.received += len(msgs)
        try:
            self._write_many(msgs)
        except Exception as e:  # a sink must never take the collector down
            self.dropped += len(msgs)
            self.limited(logging.ERROR, "write", "write of %d messages failed: %s", len(msgs), e)

    def _write_many(self, msgs: list[CCMessage]) -> None:
        """Accept several messages (shared with other sinks: do not change them). Sinks that
        encode whole batches at once override this; the default writes them one by one."""
        for m in msgs:
            try:
                self._write(m)
            except Exception as e:
                self.dropped += 1
                self.limited(logging.ERROR, "write", "write of %r failed: %s", m.name, e)

    def stats(self) -> dict[str, int]:
        return {"received": self.received, "sent": self.sent, "dropped": self.dropped, "buffered": 0}

    def __repr__(self) -> str:
        return f"{self.label}({self.name})"


#: sinks.json type → class; filled by `register`
REGISTRY: dict[str, type[Sink]] = {}


def register(cls: type[Sink]) -> type[Sink]:
    REGISTRY[cls.type] = cls
    return cls


def load_all() -> dict[str, type[Sink]]:
    """Import every sink module of this package (each registers itself) and return the registry."""
    pkg = importlib.import_module(__name__.rsplit(".", 1)[0])
    return pkg.load_all()  # type: ignore[no-any-return]


def create_sink(
    name: str, config: Mapping[str, Any] | None, processor_factory: ProcessorFactory | None = None
) -> Sink:
    """A configured (not yet started) sink; SinkError for an unknown type or bad options."""
    if not isinstance(config, Mapping):
        raise SinkError(f"sink {name!r}: the configuration must be a JSON object")
    typ = None
    for k, v in config.items():
        if isinstance(k, str) and k.lower() == "type":
            typ = v
    if not isinstance(typ, str) or not typ:
        raise SinkError(f"sink {name!r}: missing 'type'")
    if typ not in REGISTRY:
        load_all()
    cls = REGISTRY.get(typ)
    if cls is None:
        raise SinkError(f"sink {name!r}: unknown sink type {typ!r} (known: {', '.join(sorted(REGISTRY))})")
    return cls(name, config, processor_factory)


# ----------------------------------------------------------------------------- the manager


def _named_configs(config: Any) -> list[tuple[str, Any]]:
    return named_configs(config, "sink", SinkError)


class SinkManager:
    """Creates the sinks of `sinks.json` and hands every message to each of them."""

    #: messages taken from the input queue per wake-up besides the first (upstream SINK_MAX_FORWARD)
    max_forward = 50
    #: period of the info line with per-sink counts ("sent …")
    stats_interval = 60.0

    def __init__(self, config: Any, processor_factory: ProcessorFactory | None = None) -> None:
        self.sinks: dict[str, Sink] = {}
        for name, cfg in _named_configs(config):
            try:
                self.sinks[name] = create_sink(name, cfg, processor_factory)
            except SinkError as e:
                log.error("SKIP %s: initialization failed: %s", name, e)
            except Exception as e:  # a buggy sink must not stop the others
                log.error("SKIP %s: initialization failed: %r", name, e)
        if not self.sinks:
            raise SinkError("found no usable sinks")
        self._input: asyncio.Queue[CCMessage] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._last: dict[str, dict[str, int]] = {}

    def add_input(self, queue: asyncio.Queue[CCMessage]) -> None:
        self._input = queue

    async def start(self) -> None:
        """Start every sink; sinks that fail are dropped. SinkError if none is left."""
        names = list(self.sinks)
        results = await asyncio.gather(*(self.sinks[n].start() for n in names), return_exceptions=True)
        for n, r in zip(names, results, strict=True):
            if isinstance(r, BaseException):
                log.error("SKIP %s: start failed: %s", n, r)
                sink = self.sinks.pop(n)
                try:
                    await sink.close()
                except Exception:  # noqa: S110 - already reported
                    pass
        if not self.sinks:
            raise SinkError("found no usable sinks")
        if self._input is not None:
            self._task = asyncio.create_task(self._run(self._input), name="SinkManager")
        self._stats_task = asyncio.create_task(self._report(), name="SinkManager stats")

    def write(self, msg: CCMessage) -> None:
        for s in self.sinks.values():
            try:
                s.write(msg)
            except Exception as e:  # Sink.write does not raise; a subclass might
                log.error("WRITE %s: write failed: %s", s, e)

    def write_many(self, msgs: list[CCMessage]) -> None:
        for s in self.sinks.values():
            try:
                s.write_many(msgs)
            except Exception as e:  # Sink.write_many does not raise; a subclass might
                log.error("WRITE %s: write failed: %s", s, e)

    async def _run(self, queue: asyncio.Queue[CCMessage]) -> None:
        while True:
            msg = await queue.get()
            self.write(msg)
            for _ in range(self.max_forward):
                try:
                    msg = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                self.write(msg)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            self.report()

    def report(self) -> None:
        """One info line per sink with what it sent since the last report."""
        for name, s in self.sinks.items():
            now = s.stats()
            last = self._last.get(name, {})
            d = {k: now[k] - last.get(k, 0) for k in ("received", "sent", "dropped")}
            if any(d.values()) or now.get("buffered"):
                log.info(
                    "%s: sent %d, received %d, dropped %d messages in the last %gs (%d buffered)",
                    s,
                    d["sent"],
                    d["received"],
                    d["dropped"],
                    self.stats_interval,
                    now.get("buffered", 0),
                )
            self._last[name] = now

    async def flush(self) -> None:
        await asyncio.gather(*(s.flush() for s in self.sinks.values()), return_exceptions=True)

    async def close(self, grace: float = 15.0) -> None:
        """Write what is still queued, then close every sink (final flush) within `grace` seconds."""
        for t in (self._task, self._stats_task):
            if t is not None:
                t.cancel()
                try:
                    await t
                except asyncio.CancelledError:
                    pass
        self._task = self._stats_task = None
        if self._input is not None:
            while True:
                try:
                    self.write(self._input.get_nowait())
                except asyncio.QueueEmpty:
                    break
        sinks = list(self.sinks.values())
        done, pending = await asyncio.wait(
            [asyncio.create_task(s.close(), name=f"close {s}") for s in sinks], timeout=grace
        )
        for t in done:
            if t.exception() is not None:
                log.error("CLOSE: %s", t.exception())
        for t in pending:
            t.cancel()
            log.error("CLOSE: %s did not finish within %gs", t.get_name(), grace)
