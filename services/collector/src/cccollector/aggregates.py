"""`interval_aggregates` of the router (spec collector §5.8).

Each aggregate is `{name, if, function, tags, meta}`. At every tick the messages cached during
the interval that just ended are matched with `if` (the full message environment plus the
constants `hostname`, `numHWThreads`, `numSockets`, `numNumaDomains`, `numDies`, `smtWidth`,
`starttime`, `endtime`); the numeric `value` fields of the matches form `values` (uint counts as
int; any float makes all floats) and `function` is evaluated with `values`, `metrics` (the
matched messages) and the constants. The result becomes a new metric stamped with the tick
time; tags and meta are copied literally, `"<copy>"` takes the value of the last matched message
that has the key. An evaluation error is logged and only skips that aggregate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cccommon import expr
from cccommon.message import CCMessage, MessageError, UInt, new_message

from .processor import ProcessorConfigError

log = logging.getLogger("router")

COPY = "<copy>"


class Aggregate:
    def __init__(self, cfg: Any, index: int, functions: Mapping[str, Any]) -> None:
        where = f"router.interval_aggregates[{index}]"
        if not isinstance(cfg, Mapping):
            raise ProcessorConfigError(f"{where}: must be an object")
        self.where = where
        name = cfg.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ProcessorConfigError(f"{where}.name: required, a non-empty string")
        self.name = name
        for key in ("if", "function"):
            if not isinstance(cfg.get(key), str) or not cfg[key].strip():
                raise ProcessorConfigError(f"{where}.{key}: required, an expression string")
        try:
            self.cond = expr.compile_expr(cfg["if"], functions=functions.keys())
        except expr.ExprError as e:
            raise ProcessorConfigError(f"{where}.if: does not compile: {e}") from None
        try:
            self.function = expr.compile_expr(cfg["function"], functions=functions.keys())
        except expr.ExprError as e:
            raise ProcessorConfigError(f"{where}.function: does not compile: {e}") from None
        self.tags = self._strmap(cfg.get("tags"), f"{where}.tags")
        self.meta = self._strmap(cfg.get("meta"), f"{where}.meta")

    @staticmethod
    def _strmap(v: Any, where: str) -> dict[str, str]:
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            raise ProcessorConfigError(f"{where}: must be an object")
        return {str(k): str(x) for k, x in v.items()}


class IntervalAggregator:
    def __init__(
        self,
        configs: list[Any],
        constants: Mapping[str, Any],
        functions: Mapping[str, Any] | None = None,
    ) -> None:
        self.constants = dict(constants)
        self.functions = dict(functions or {})
        self.aggregates = [Aggregate(c, i, self.functions) for i, c in enumerate(configs)]

    def evaluate(self, messages: list[CCMessage], tick_ns: int) -> list[CCMessage]:
        """The derived metrics of one ended interval."""
        t_s = tick_ns // 1_000_000_000
        consts = {**self.constants, "starttime": t_s, "endtime": t_s}
        out: list[CCMessage] = []
        for agg in self.aggregates:
            matched: list[CCMessage] = []
            for m in messages:
                try:
                    if agg.cond.test(expr.MessageEnv(m, consts), self.functions):
                        matched.append(m)
                except expr.ExprError as e:
                    log.error("%s.if on %r: %s", agg.where, m.name, e)
            values: list[Any] = []
            for m in matched:
                v = m.fields.get("value")
                if isinstance(v, bool) or not isinstance(v, int | float):
                    continue
                values.append(int(v) if isinstance(v, UInt) else v)
            if not values:
                continue
            if any(isinstance(v, float) for v in values):
                values = [float(v) for v in values]
            env = {**consts, "values": values, "metrics": [expr.ExprMessage(m) for m in matched]}
            try:
                result = agg.function.evaluate(env, self.functions)
            except expr.ExprError as e:
                log.error("%s.function: %s", agg.where, e)
                continue
            if isinstance(result, bool) or not isinstance(result, int | float | str):
                log.error("%s.function gave %r, not a number or string", agg.where, result)
                continue
            tags = self._resolve(agg.tags, matched, "tags")
            meta = self._resolve(agg.meta, matched, "meta")
            try:
                out.append(new_message(agg.name, tags, meta, {"value": result}, tick_ns))
            except MessageError as e:
                log.error("%s: result not usable: %s", agg.where, e)
        return out

    @staticmethod
    def _resolve(spec: dict[str, str], matched: list[CCMessage], part: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in spec.items():
            if v != COPY:
                out[k] = v
                continue
            for m in reversed(matched):
                src = m.tags if part == "tags" else m.meta
                if k in src:
                    out[k] = src[k]
                    break
        return out
