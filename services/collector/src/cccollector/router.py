"""The metric router (spec collector §5.1, §5.2, §5.4, §5.8).

Every message passes here on its way from the collectors and receivers to the sinks:

* `interval_timestamp`: collector and receiver messages get the time of the latest tick;
* the rules engine (`processor.py`) built from `process_messages` plus the legacy options and
  the hostname rule (adds `hostname_tag` with the short host name when the tag is missing);
* with `num_cache_intervals > 0`, collector *and* received messages (PX-6) are cached per
  interval, and at every tick the `interval_aggregates` of the interval that just ended are
  evaluated; their results go through the rules engine to the sinks (not re-timestamped, not
  cached again). A message dropped by a rule is cached as it was before the rules.

Unknown top-level keys are a configuration error, as upstream.
"""

from __future__ import annotations

import collections
import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from cccommon.message import CCMessage

from .aggregates import IntervalAggregator
from .processor import DropMessage, MessageEnvHolder, MessageProcessor, ProcessorConfigError

log = logging.getLogger("router")

OPTIONS = frozenset(
    {
        "interval_timestamp",
        "num_cache_intervals",
        "hostname_tag",
        "max_forward",
        "process_messages",
        "interval_aggregates",
        "add_tags",
        "delete_tags",
        "drop_metrics",
        "drop_metrics_if",
        "rename_metrics",
        "normalize_units",
        "change_unit_prefix",
    }
)


def short_hostname() -> str:
    return socket.gethostname().split(".")[0]


def _typed(options: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    v = options.get(key, default)
    if v is None:
        return default
    if kind is int and isinstance(v, bool) or not isinstance(v, kind):
        raise ProcessorConfigError(f"router.{key}: wrong type {type(v).__name__}")
    return v


class Router:
    def __init__(
        self,
        options: Mapping[str, Any],
        out: Callable[[CCMessage], Any],
        hostname: str | None = None,
        constants: Mapping[str, Any] | None = None,
        functions: Mapping[str, Any] | None = None,
        out_many: Callable[[list[CCMessage]], Any] | None = None,
    ) -> None:
        if not isinstance(options, Mapping):
            raise ProcessorConfigError("router: must be a JSON object")
        lowered = {k.lower(): k for k in options}
        unknown = sorted(k for k in options if k.lower() not in OPTIONS)
        if unknown:
            raise ProcessorConfigError(
                f"router.{unknown[0]}: unknown key (known: {', '.join(sorted(OPTIONS))})"
            )
        opts = {k_l: options[k] for k_l, k in lowered.items()}
        self.out = out
        #: takes the forwarded messages of one collector read at once (the sinks encode them together)
        self.out_many = out_many
        self.hostname = hostname or short_hostname()
        self.interval_timestamp = bool(_typed(opts, "interval_timestamp", bool, False))
        self.num_cache_intervals = int(_typed(opts, "num_cache_intervals", int, 0))
        self.hostname_tag = str(_typed(opts, "hostname_tag", str, "hostname")) or "hostname"
        self.max_forward = max(1, int(_typed(opts, "max_forward", int, 50)))
        self.tick_time_ns = time.time_ns()
        self.forwarded = 0
        self.dropped = 0

        pm = opts.get("process_messages")
        p = MessageProcessor.from_config(pm, "router.process_messages", functions)
        p.where = "router"
        for name in _typed(opts, "drop_metrics", list, []):
            p.add_drop_names([str(name)])
        for i, cond in enumerate(_typed(opts, "drop_metrics_if", list, [])):
            p.add_drop_if(cond, f"router.drop_metrics_if[{i}]")
        for key, stage in (("add_tags", "add_tag"), ("delete_tags", "delete_tag")):
            for i, r in enumerate(_typed(opts, key, list, [])):
                if not isinstance(r, Mapping) or "key" not in r:
                    raise ProcessorConfigError(f'router.{key}[{i}]: needs "key" (and "if", "value")')
                p.add_kv_rule(
                    stage, r.get("if", "true"), str(r["key"]), r.get("value", ""), f"router.{key}[{i}]"
                )
        for old, new in _typed(opts, "rename_metrics", dict, {}).items():
            p.add_rename(str(old), str(new))
        for metric, prefix in _typed(opts, "change_unit_prefix", dict, {}).items():
            p.add_change_prefix(f"name == '{metric}'", str(prefix), f"router.change_unit_prefix.{metric}")
        # upstream: the legacy flag replaces process_messages.normalize_units in the router
        legacy_norm = bool(_typed(opts, "normalize_units", bool, False))
        if p.normalize and not legacy_norm:
            log.warning(
                "router: process_messages.normalize_units is ignored in the router (as upstream); "
                'set the top-level "normalize_units": true'
            )
        p.normalize = legacy_norm
        tag, host = self.hostname_tag, self.hostname

        def hostname_rule(m: CCMessage, h: MessageEnvHolder) -> None:
            if tag not in m.tags:
                m.tags[tag] = host
                h.changed()

        #: no rule but the hostname rule: collector reads skip the rules engine
        self._plain = p.empty
        p.stages["add_tag"].append(hostname_rule)
        self.processor = p

        aggs = _typed(opts, "interval_aggregates", list, [])
        consts = {"hostname": self.hostname, **(constants or {})}
        self.aggregator = IntervalAggregator(aggs, consts, functions) if aggs else None
        if aggs and self.num_cache_intervals <= 0:
            log.warning("router: interval_aggregates need num_cache_intervals > 0; they are disabled")
            self.aggregator = None
        self.cache: collections.deque[list[CCMessage]] = collections.deque(
            [[]], maxlen=max(1, self.num_cache_intervals)
        )

    # ------------------------------------------------------------------ inputs

    def _process(self, msg: CCMessage) -> CCMessage | None:
        if self.interval_timestamp:
            msg.time = self.tick_time_ns
        # collector and receiver messages are fresh objects: process them in place unless the
        # cache needs the original of a dropped one
        caching = self.num_cache_intervals > 0
        out = self.processor.process(msg, copy=caching)
        if out is not None:
            self.forwarded += 1
        else:
            self.dropped += 1
        if caching:
            self.cache[-1].append(out if out is not None else msg)
        return out

    def _route(self, msg: CCMessage) -> None:
        out = self._process(msg)
        if out is not None:
            self.out(out)

    def from_collector(self, msgs: list[CCMessage]) -> None:
        if self.out_many is None:
            for m in msgs:
                self._route(m)
            return
        if self._plain and self.num_cache_intervals <= 0:
            # the common compute-node case: time stamp and host name, nothing else to decide
            tag, host = self.hostname_tag, self.hostname
            if self.interval_timestamp:
                t = self.tick_time_ns
                for m in msgs:
                    m.time = t
            for m in msgs:
                tags = m.tags
                if tag not in tags:
                    tags[tag] = host
            self.forwarded += len(msgs)
            self.out_many(msgs)
            return
        outs = [o for o in map(self._process, msgs) if o is not None]
        if outs:
            self.out_many(outs)

    def from_receiver(self, msg: CCMessage) -> None:
        self._route(msg)

    def on_tick(self, now: float) -> None:
        """Tick consumer: interval time, then the aggregates of the interval that ended."""
        t_ns = int(now * 1e9)
        if self.interval_timestamp:
            self.tick_time_ns = t_ns
        if self.num_cache_intervals <= 0:
            return
        ended = self.cache[-1]
        self.cache.append([])
        if self.aggregator is None or not ended:
            return
        for msg in self.aggregator.evaluate(ended, t_ns):
            out = self.processor.process(msg)
            if out is not None:
                self.forwarded += 1
                self.out(out)


__all__ = ["Router", "DropMessage", "short_hostname"]
