"""What every receiver implements, the receiver registry, and the manager that runs them.

A receiver is created once per `receivers.json` entry by `create_receiver(name, config, sink)`:
its constructor decodes and checks the options (raising `ReceiverError` with a message naming
the receiver and the key), `await receiver.start()` binds sockets or starts its background
tasks, and `await receiver.close()` stops them. Every received message goes through the
receiver's own rules (`process_messages`) and then to `sink(msg)`, the router's input. The sink
may be a plain function or return an awaitable (a queue's `put`), which is awaited so a full
queue slows the receiver down instead of growing memory (spec collector §1).

Options common to every receiver (spec §8.0):

* `type` — the registered receiver type (`http`, `nats`, `prometheus`, `eecpt`, `ipmi`,
  `redfish`).
* `process_messages` — the receiver's own rules engine (object, or PX-5 list). The engine is
  not part of this package: the caller passes a `processor_factory` (to `create_receiver`,
  `ReceiveManager`, or once via `set_processor_factory`) that turns the value into an object with
  `process(msg) -> CCMessage | None`. Without a factory a non-empty `process_messages` makes the
  receiver fail to start with an explanation.
* `precision` — line-protocol receivers only (PX-3): `s`, `ms`, `us`, `ns` or `auto` (default):
  a timestamp `t` is seconds if `|t| < 1e11`, milliseconds if `< 1e14`, microseconds if
  `< 1e17`, else nanoseconds; a line without timestamp gets the arrival time.

Every message carries meta `source=<Class>(<name>)` (`HttpReceiver(rack1)`,
`NatsReceiver(nats_rack1)`, ...). Upstream adds it to http/nats/eecpt messages through an
`add_meta` rule of the receiver's rules engine; here it is set when the message is created,
which gives the same messages (the only difference: a `drop_messages_if` condition also sees it).

Option keys match case-insensitively like Go's JSON decoder (§3.4). Strict receivers (`ipmi`,
`redfish`) reject unknown keys; lenient ones (`http`, `nats`, `prometheus`, `eecpt`) ignore them
with a warning. `receivers.json` is an object *name → config*; a failing receiver is skipped with
an error log and never fails the collector (§8.0, §9.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from cccommon.lineprotocol import LineProtocolError, parse_line
from cccommon.message import CCMessage, MessageError, new_message

from ..components import ComponentOptions, LimitedLog, MessageProcessor, ProcessorFactory, named_configs

__all__ = [
    "ReceiverError",
    "MessageProcessor",
    "ProcessorFactory",
    "SinkFunc",
    "ReceiverOptions",
    "Receiver",
    "REGISTRY",
    "register",
    "load_all",
    "create_receiver",
    "set_processor_factory",
    "ReceiveManager",
    "COMMON_OPTIONS",
    "PRECISIONS",
    "to_ns",
    "decode_lines",
]

log = logging.getLogger("ReceiveManager")

COMMON_OPTIONS = frozenset({"type", "process_messages"})


class ReceiverError(Exception):
    """A receiver cannot be created or started (bad option, port in use, missing program)."""


#: where received messages go (the router); may return an awaitable for back-pressure
SinkFunc = Callable[[CCMessage], Awaitable[Any] | None]

_default_factory: ProcessorFactory | None = None


def set_processor_factory(factory: ProcessorFactory | None) -> None:
    """Register the rules engine used for `process_messages` when none is passed explicitly."""
    global _default_factory
    _default_factory = factory


# ----------------------------------------------------------------------------- timestamps

#: precision option → nanoseconds per unit; None = detect by magnitude
PRECISIONS: dict[str, int | None] = {
    "auto": None,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "\u00b5s": 1_000,
    "u": 1_000,
    "ns": 1,
    "n": 1,
}
_INT64 = 1 << 63


def to_ns(ts: int, unit_ns: int | None) -> int:
    """Nanoseconds of a line-protocol timestamp in `unit_ns` (None: s/ms/us/ns by magnitude, PX-3)."""
    if unit_ns is None:
        a = abs(ts)
        if a < 100_000_000_000:  # 1e11
            unit_ns = 1_000_000_000
        elif a < 100_000_000_000_000:  # 1e14
            unit_ns = 1_000_000
        elif a < 100_000_000_000_000_000:  # 1e17
            unit_ns = 1_000
        else:
            unit_ns = 1
    return ts * unit_ns


def decode_lines(
    lines: Sequence[bytes],
    first_lineno: int,
    unit_ns: int | None,
    now_ns: int,
    meta: Mapping[str, str],
) -> tuple[list[CCMessage], LineProtocolError | None]:
    """Messages of `lines` up to the first bad one, and that line's error (spec §4.6).

    Pure and thread-safe, so large bodies can be decoded in a worker thread.
    """
    out: list[CCMessage] = []
    for i, raw in enumerate(lines):
        no = first_lineno + i
        try:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise LineProtocolError(no, e.start + 1, "invalid UTF-8") from None
            if text.endswith("\r"):
                text = text[:-1]
            line = parse_line(text, no)
            if line is None:
                continue
            ts = now_ns if line.time is None else to_ns(line.time, unit_ns)
            if not -_INT64 <= ts < _INT64:
                raise LineProtocolError(no, 1, f"timestamp {line.time} out of range for the precision")
            try:
                msg = new_message(line.measurement, line.tags, meta, line.fields, ts)
            except MessageError as e:
                raise LineProtocolError(no, 1, str(e)) from None
        except LineProtocolError as e:
            return out, e
        out.append(msg)
    return out, None


# ----------------------------------------------------------------------------- options


class ReceiverOptions(ComponentOptions):
    """The decoded option object of one receiver: case-insensitive keys, typed getters, clear errors."""

    error = ReceiverError
    common = COMMON_OPTIONS
    default_log = log

    def get_precision(self, key: str = "precision") -> int | None:
        """Nanoseconds per timestamp unit of the `precision` option; None = auto (PX-3)."""
        value = self.get_str(key, "auto") or "auto"
        p = value.strip().lower()
        if p not in PRECISIONS:
            raise self.err(key, f"must be one of s, ms, us, ns, auto, not {value!r}")
        return PRECISIONS[p]


# ----------------------------------------------------------------------------- the receiver interface


class Receiver:
    """Base class: option decoding, the receiver's rules, forwarding, counters and the life cycle."""

    #: key in receivers.json
    type: ClassVar[str] = ""
    #: upstream component name; meta `source` and log lines read `<label>(<name>)`
    label: ClassVar[str] = "Receiver"
    #: option keys besides the common ones
    options: ClassVar[frozenset[str]] = frozenset()
    #: other spelling → canonical key
    aliases: ClassVar[Mapping[str, str]] = {}
    #: strict receivers reject unknown keys
    strict: ClassVar[bool] = False
    #: bodies/payloads above this many bytes are decoded in a worker thread
    thread_threshold: ClassVar[int] = 64 << 10

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any] | None,
        sink: SinkFunc,
        processor_factory: ProcessorFactory | None = None,
    ) -> None:
        self.name = name
        self.sink = sink
        self.source = f"{self.label}({name})"
        self.meta = {"source": self.source}
        self.log = logging.getLogger(self.source)
        self.limited = LimitedLog(self.log)
        self.processor_factory = processor_factory or _default_factory
        opts = ReceiverOptions(self.source, config, self.options, self.aliases, self.strict, self.log)
        self.opts = opts
        self.processor = self.make_processor(opts.raw("process_messages"), "process_messages")
        #: messages forwarded to the sink, dropped by the rules or a failing sink, decode errors
        self.received = 0
        self.dropped = 0
        self.errors = 0
        self.closed = False
        self.configure(opts)

    def make_processor(self, config: Any, where: str) -> MessageProcessor | None:
        """A rules engine for a `process_messages` value, None when there are no rules."""
        if config in (None, {}, []):
            return None
        if self.processor_factory is None:
            raise ReceiverError(
                f"{self.source}: {where!r} needs the rules engine, but no message processor was "
                "registered (pass processor_factory or call set_processor_factory)"
            )
        try:
            return self.processor_factory(config)
        except Exception as e:
            raise ReceiverError(f"{self.source}: bad {where!r}: {e}") from e

    # ----------------------------------------------------------------- for subclasses

    def configure(self, opts: ReceiverOptions) -> None:
        """Read the receiver's own options (called from __init__); raise ReceiverError on bad values."""

    async def start(self) -> None:
        """Bind sockets / start background tasks; raise ReceiverError if the receiver cannot work."""

    async def close(self) -> None:
        """Stop receiving and release resources."""
        self.closed = True

    # ----------------------------------------------------------------- message path

    def process(self, msg: CCMessage) -> CCMessage | None:
        """The receiver's own rules (a drop or a failing rule returns None)."""
        if self.processor is None:
            return msg
        try:
            return self.processor.process(msg)
        except Exception as e:
            self.limited(logging.ERROR, "process", "process_messages failed on %r: %s", msg.name, e)
            return None

    async def forward(self, msg: CCMessage) -> bool:
        """Apply the rules and hand the message to the sink; False when it was dropped."""
        m = self.process(msg)
        if m is None:
            self.dropped += 1
            return False
        try:
            r = self.sink(m)
            if inspect.isawaitable(r):
                await r
        except Exception as e:  # the router must not take a receiver down
            self.dropped += 1
            self.limited(logging.ERROR, "sink", "forwarding %r failed: %s", m.name, e)
            return False
        self.received += 1
        return True

    async def forward_all(self, msgs: Iterable[CCMessage]) -> None:
        for m in msgs:
            await self.forward(m)

    async def decode(
        self, lines: Sequence[bytes], first_lineno: int, unit_ns: int | None, now_ns: int, size: int
    ) -> tuple[list[CCMessage], LineProtocolError | None]:
        """`decode_lines` with this receiver's meta, in a worker thread for large inputs."""
        if size > self.thread_threshold:
            return await asyncio.to_thread(decode_lines, lines, first_lineno, unit_ns, now_ns, self.meta)
        return decode_lines(lines, first_lineno, unit_ns, now_ns, self.meta)

    def stats(self) -> dict[str, int]:
        return {"received": self.received, "dropped": self.dropped, "errors": self.errors}

    def __repr__(self) -> str:
        return self.source


class PollingReceiver(Receiver):
    """A receiver that polls a peer every `interval` seconds from a background task."""

    #: seconds between polls (set by `configure`)
    interval: float = 30.0
    #: poll once at start (True) or first after one interval (False)
    poll_at_start: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._task: asyncio.Task[None] | None = None
        self.polls = 0
        super().__init__(*args, **kwargs)

    async def poll(self) -> None:
        """One round of reading the peer(s) and forwarding the messages; must not raise."""
        raise NotImplementedError

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self} poll")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + (0.0 if self.poll_at_start else self.interval)
        while not self.closed:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a bug in one poll must not end the receiver
                self.limited(logging.ERROR, "poll", "poll failed: %r", e)
            self.polls += 1
            due += self.interval
            behind = loop.time() - due
            if behind > 0:  # the poll took longer than an interval: skip the missed slots
                missed = math.ceil(behind / self.interval)
                due += missed * self.interval
                self.log.info("poll took longer than the interval; %d poll(s) skipped", missed)

    async def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


#: receivers.json type → class; filled by `register`
REGISTRY: dict[str, type[Receiver]] = {}


def register(cls: type[Receiver]) -> type[Receiver]:
    REGISTRY[cls.type] = cls
    return cls


def load_all() -> dict[str, type[Receiver]]:
    """Import every receiver module of this package (each registers itself) and return the registry."""
    pkg = importlib.import_module(__name__.rsplit(".", 1)[0])
    return pkg.load_all()  # type: ignore[no-any-return]


def create_receiver(
    name: str,
    config: Mapping[str, Any] | None,
    sink: SinkFunc,
    processor_factory: ProcessorFactory | None = None,
) -> Receiver:
    """A configured (not yet started) receiver; ReceiverError for an unknown type or bad options."""
    if not isinstance(config, Mapping):
        raise ReceiverError(f"receiver {name!r}: the configuration must be a JSON object")
    typ = None
    for k, v in config.items():
        if isinstance(k, str) and k.lower() == "type":
            typ = v
    if not isinstance(typ, str) or not typ:
        raise ReceiverError(f"receiver {name!r}: missing 'type'")
    if typ not in REGISTRY:
        load_all()
    cls = REGISTRY.get(typ)
    if cls is None:
        raise ReceiverError(
            f"receiver {name!r}: unknown receiver type {typ!r} (known: {', '.join(sorted(REGISTRY))})"
        )
    return cls(name, config, sink, processor_factory)


# ----------------------------------------------------------------------------- the manager


def _named_configs(config: Any) -> list[tuple[str, Any]]:
    return named_configs(config, "receiver", ReceiverError, none_ok=True)


class ReceiveManager:
    """Creates the receivers of `receivers.json`, starts and stops them; failures are skipped."""

    #: period of the info line with per-receiver counts ("received …")
    stats_interval = 60.0
    #: seconds close() waits for all receivers together
    close_timeout = 10.0

    def __init__(
        self, config: Any, sink: SinkFunc, processor_factory: ProcessorFactory | None = None
    ) -> None:
        self.receivers: dict[str, Receiver] = {}
        self._stats_task: asyncio.Task[None] | None = None
        self._last: dict[str, dict[str, int]] = {}
        try:
            named = _named_configs(config)
        except ReceiverError as e:
            log.error("no receivers: %s", e)
            named = []
        for name, cfg in named:
            try:
                self.receivers[name] = create_receiver(name, cfg, sink, processor_factory)
            except ReceiverError as e:
                log.error("SKIP %s: initialization failed: %s", name, e)
            except Exception as e:  # a buggy receiver must not stop the others
                log.error("SKIP %s: initialization failed: %r", name, e)

    async def start(self) -> None:
        """Start every receiver; those that fail are closed, logged and dropped (never fatal)."""
        names = list(self.receivers)
        results = await asyncio.gather(*(self.receivers[n].start() for n in names), return_exceptions=True)
        for n, r in zip(names, results, strict=True):
            if isinstance(r, BaseException):
                log.error("SKIP %s: start failed: %s", n, r)
                rcv = self.receivers.pop(n)
                with contextlib.suppress(Exception):
                    await rcv.close()
            else:
                log.info("%s started", self.receivers[n])
        self._stats_task = asyncio.create_task(self._report(), name="ReceiveManager stats")

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            self.report()

    def report(self) -> None:
        """One info line per active receiver with what it received since the last report."""
        for name, r in self.receivers.items():
            now = r.stats()
            last = self._last.get(name, {})
            d = {k: now[k] - last.get(k, 0) for k in now}
            if any(d.values()):
                log.info(
                    "%s: received %d, dropped %d messages, %d decode errors in the last %gs",
                    r,
                    d.get("received", 0),
                    d.get("dropped", 0),
                    d.get("errors", 0),
                    self.stats_interval,
                )
            self._last[name] = now

    async def close(self) -> None:
        """Close every receiver (stop servers, drain subscriptions, stop pollers) within `close_timeout`."""
        timeout = self.close_timeout
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
            self._stats_task = None
        if not self.receivers:
            return
        tasks = [asyncio.create_task(r.close(), name=f"close {r}") for r in self.receivers.values()]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in done:
            if t.exception() is not None:
                log.error("CLOSE: %s", t.exception())
        for t in pending:
            t.cancel()
            log.error("CLOSE: %s did not finish within %gs", t.get_name(), timeout)
