"""The rules engine (upstream cc-lib `messageProcessor`), spec collector §5.3-§5.5.

One `MessageProcessor` serves the router, every sink (`process_messages`, `meta_as_tags`) and
every receiver. It is built from a `process_messages` value (the object form with the native
keys, optionally plus `manipulate_messages`, or the list form = only `manipulate_messages`),
then the owner adds its own rules (legacy router options, the hostname rule, a sink's
`meta_as_tags`, a receiver's `source`).

`process(msg)` works on a copy and returns it, or None when a rule dropped the message. The
native stages run in their default order (or `stage_order`), rules within a stage in
configuration order; then the `manipulate_messages` rules in list order. Conditions see the
effects of earlier rules. A condition that cannot be evaluated drops the message and logs a
rate-limited warning naming the rule. Every configuration problem raises `ProcessorConfigError`
at start-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from cccommon import expr, units
from cccommon.lineprotocol import go_float
from cccommon.message import CCMessage

log = logging.getLogger("collector")

STAGES = (
    "drop_by_name",
    "drop_by_type",
    "drop_if",
    "add_tag",
    "delete_tag",
    "move_tag_to_meta",
    "move_tag_to_fields",
    "add_meta",
    "delete_meta",
    "move_meta_to_tags",
    "move_meta_to_fields",
    "add_field",
    "delete_field",
    "move_field_to_tags",
    "move_field_to_meta",
    "rename",
    "rename_if",
    "change_unit_prefix",
    "normalize_unit",
)
#: native process_messages key -> (stage, shape)
NATIVE_KEYS: dict[str, tuple[str, str]] = {
    "drop_messages": ("drop_by_name", "names"),
    "drop_by_message_type": ("drop_by_type", "types"),
    "drop_messages_if": ("drop_if", "conds"),
    "add_tags_if": ("add_tag", "ifkv"),
    "delete_tags_if": ("delete_tag", "ifk"),
    "move_tag_to_meta_if": ("move_tag_to_meta", "ifkv"),
    "move_tag_to_field_if": ("move_tag_to_fields", "ifkv"),
    "add_meta_if": ("add_meta", "ifkv"),
    "delete_meta_if": ("delete_meta", "ifk"),
    "move_meta_to_tag_if": ("move_meta_to_tags", "ifkv"),
    "move_meta_to_field_if": ("move_meta_to_fields", "ifkv"),
    "add_field_if": ("add_field", "ifkv"),
    "delete_field_if": ("delete_field", "ifk"),
    "move_field_to_tag_if": ("move_field_to_tags", "ifkv"),
    "move_field_to_meta_if": ("move_field_to_meta", "ifkv"),
    "rename_messages": ("rename", "map"),
    "rename_messages_if": ("rename_if", "condmap"),
    "change_unit_prefix": ("change_unit_prefix", "condmap"),
    "normalize_units": ("normalize_unit", "bool"),
}
PROTECTED_FIELDS = frozenset({"value", "event", "log", "control"})
MESSAGE_TYPES = frozenset({"metric", "event", "log", "control"})

#: manipulate_messages action -> canonical action
ACTIONS = {
    "add_base_tags": "add_base_tags",
    "add_tags_by": "add_tags",
    "add_tags": "add_tags",
    "delete_tags_by": "delete_tags",
    "delete_tags": "delete_tags",
    "add_meta_by": "add_meta",
    "add_meta": "add_meta",
    "delete_meta_by": "delete_meta",
    "delete_meta": "delete_meta",
    "add_fields_by": "add_fields",
    "add_field": "add_fields",
    "delete_fields_by": "delete_fields",
    "delete_field": "delete_fields",
    "drop_by_name": "drop_by_name",
    "drop_by": "drop_by",
    "drop_by_message_type": "drop_by_message_type",
    "rename_by": "rename",
    "move_tag_to_meta": "move_tag_to_meta",
    "move_tag_to_field": "move_tag_to_field",
    "move_meta_to_tag": "move_meta_to_tag",
    "move_meta_to_field": "move_meta_to_field",
    "move_field_to_tag": "move_field_to_tag",
    "move_field_to_meta": "move_field_to_meta",
    "change_unit_prefix": "change_unit_prefix",
    "change_unit": "change_unit_prefix",
    "normalize_units": "normalize_units",
}


class ProcessorConfigError(ValueError):
    """A `process_messages` configuration that cannot be used."""


class DropMessage(Exception):
    pass


def value_text(v: Any) -> str:
    """A field value as text (moves to tags/meta): floats by the line-protocol rule."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    return str(v)


class Condition:
    """A compiled condition; `"*"` and `""` mean true (legacy options)."""

    def __init__(self, src: str | bool, where: str, functions: Mapping[str, Any] | None = None) -> None:
        self.functions = functions or {}
        self.where = where
        if isinstance(src, bool):
            src = "true" if src else "false"
        if not isinstance(src, str):
            raise ProcessorConfigError(f"{where}: a condition must be a string, not {src!r}")
        self.src = src.strip() or "true"
        if self.src == "*":
            self.src = "true"
        self.always = self.src == "true"
        if not self.always:
            try:
                self.prog = expr.compile_expr(self.src, functions=self.functions.keys())
            except expr.ExprError as e:
                raise ProcessorConfigError(f"{where}: condition {src!r} does not compile: {e}") from None

    def __call__(self, env: expr.MessageEnv) -> bool:
        if self.always:
            return True
        return self.prog.test(env, self.functions)


class MessageEnvHolder:
    """The message being processed and its condition environment (a live view, made on first use)."""

    __slots__ = ("msg", "base", "_env")

    def __init__(self, msg: CCMessage, base: Mapping[str, Any]) -> None:
        self.msg = msg
        self.base = base
        self._env: expr.MessageEnv | None = None

    @property
    def env(self) -> expr.MessageEnv:
        if self._env is None:
            self._env = expr.MessageEnv(self.msg, self.base)
        return self._env

    def changed(self) -> None:
        """Kept for the rules' readability: the environment reads the message live."""


Rule = Callable[[CCMessage, MessageEnvHolder], None]


def _is_metric_number(m: CCMessage) -> bool:
    v = m.fields.get("value")
    return v is not None and not isinstance(v, str | bool)


def _normalize(m: CCMessage) -> None:
    if not _is_metric_number(m):
        return
    for where in (m.meta, m.tags):
        u = where.get("unit")
        if u is not None and units.parse_unit(u) is not None:
            where["unit"] = units.normalize_unit(u)
            return


def _change_prefix(m: CCMessage, prefix: str) -> None:
    if not _is_metric_number(m):
        return
    where = m.meta if "unit" in m.meta else m.tags if "unit" in m.tags else None
    if where is None:
        return
    if units.parse_unit(where["unit"]) is None:
        return
    value, new = units.change_unit_prefix(m.fields["value"], where["unit"], prefix)
    m.fields["value"] = value
    where["unit"] = new


def _normalize_rule(m: CCMessage, h: MessageEnvHolder) -> None:
    _normalize(m)


class MessageProcessor:
    def __init__(self, where: str = "processor", functions: Mapping[str, Any] | None = None) -> None:
        self.where = where
        self.functions = dict(functions or {})
        self.stages: dict[str, list[Rule]] = {s: [] for s in STAGES}
        self.order: list[str] = list(STAGES)
        self.manipulate: list[Rule] = []
        self.normalize = False
        self.base_env: dict[str, Any] = {}
        self._last_warn = 0.0
        self._warned = 0
        self._plan_cache: list[Rule] | None = None

    # ------------------------------------------------------------------ building

    @classmethod
    def from_config(
        cls, config: Any, where: str, functions: Mapping[str, Any] | None = None
    ) -> MessageProcessor:
        """A processor from a `process_messages` value (object, list, or None = no rules)."""
        p = cls(where, functions)
        if config is None:
            return p
        if isinstance(config, list):
            p.add_manipulate(config)
            return p
        if not isinstance(config, Mapping):
            raise ProcessorConfigError(f"{where}: process_messages must be an object or a list")
        env = config.get("add_base_env")
        if env is not None:
            if not isinstance(env, Mapping):
                raise ProcessorConfigError(f"{where}.add_base_env: must be an object")
            p.base_env.update(env)  # built-in message names always win (expr.MessageEnv)
        for key, value in config.items():
            if key in ("add_base_env", "stage_order", "manipulate_messages"):
                continue
            spec = NATIVE_KEYS.get(key)
            if spec is None:
                log.warning("%s.process_messages: unknown key %r ignored", where, key)
                continue
            p._add_native(key, spec, value)
        order = config.get("stage_order")
        if order is not None:
            if not isinstance(order, list) or not all(isinstance(s, str) for s in order):
                raise ProcessorConfigError(f"{where}.stage_order: must be a list of stage names")
            bad = [s for s in order if s not in STAGES]
            if bad:
                raise ProcessorConfigError(
                    f"{where}.stage_order: unknown stage {bad[0]!r} (stages: {', '.join(STAGES)})"
                )
            if order:
                p.order = list(order)
        if "manipulate_messages" in config:
            mm = config["manipulate_messages"]
            if not isinstance(mm, list):
                raise ProcessorConfigError(f"{where}.manipulate_messages: must be a list of rules")
            p.add_manipulate(mm)
        return p

    def _cond(self, src: Any, where: str) -> Condition:
        return Condition(src, where, self.functions)

    def _add_native(self, key: str, spec: tuple[str, str], value: Any) -> None:
        stage, shape = spec
        w = f"{self.where}.{key}"
        if shape == "names":
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ProcessorConfigError(f"{w}: must be a list of names")
            self.add_drop_names(value)
        elif shape == "types":
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ProcessorConfigError(f"{w}: must be a list of message types")
            self.add_drop_types(value, w)
        elif shape == "conds":
            if not isinstance(value, list):
                raise ProcessorConfigError(f"{w}: must be a list of conditions")
            for i, c in enumerate(value):
                self.add_drop_if(c, f"{w}[{i}]")
        elif shape in ("ifkv", "ifk"):
            if not isinstance(value, list):
                raise ProcessorConfigError(
                    f"{w}: must be a list of {{if, key{', value' if shape == 'ifkv' else ''}}}"
                )
            for i, r in enumerate(value):
                if not isinstance(r, Mapping) or "key" not in r or (shape == "ifkv" and "value" not in r):
                    need = '"key" and "value"' if shape == "ifkv" else '"key"'
                    raise ProcessorConfigError(f"{w}[{i}]: needs {need}")
                self.add_kv_rule(stage, r.get("if", "true"), str(r["key"]), r.get("value"), f"{w}[{i}]")
        elif shape == "map":
            if not isinstance(value, Mapping):
                raise ProcessorConfigError(f"{w}: must be an object old name -> new name")
            for old, new in value.items():
                self.add_rename(str(old), str(new))
        elif shape == "condmap":
            if not isinstance(value, Mapping):
                raise ProcessorConfigError(f"{w}: must be an object condition -> value")
            for cond, target in value.items():
                if stage == "rename_if":
                    self.add_rename_if(cond, str(target), w)
                else:
                    self.add_change_prefix(cond, str(target), w)
        elif shape == "bool":
            if not isinstance(value, bool):
                raise ProcessorConfigError(f"{w}: must be true or false")
            self.normalize = value

    def add_drop_names(self, names: list[str]) -> None:
        names_set = set(names)

        def rule(m: CCMessage, h: MessageEnvHolder) -> None:
            if m.name in names_set:
                raise DropMessage

        self.stages["drop_by_name"].append(rule)

    def add_drop_types(self, types: list[str], where: str) -> None:
        bad = [t for t in types if t not in MESSAGE_TYPES]
        if bad:
            raise ProcessorConfigError(
                f"{where}: invalid message type {bad[0]!r} (metric, event, log, control)"
            )
        tset = set(types)

        def rule(m: CCMessage, h: MessageEnvHolder) -> None:
            if m.category in tset:
                raise DropMessage

        self.stages["drop_by_type"].append(rule)

    def add_drop_if(self, cond: Any, where: str) -> None:
        c = self._cond(cond, where)

        def rule(m: CCMessage, h: MessageEnvHolder) -> None:
            if c(h.env):
                raise DropMessage

        self.stages["drop_if"].append(rule)

    def add_kv_rule(self, stage: str, cond: Any, key: str, value: Any, where: str) -> None:
        c = self._cond(cond, where)
        if stage == "delete_field" and key in PROTECTED_FIELDS:
            raise ProcessorConfigError(f"{where}: field {key!r} cannot be deleted")
        val = None if value is None else str(value)
        op = _KV_OPS[stage]

        def rule(m: CCMessage, h: MessageEnvHolder) -> None:
            if c(h.env) and op(m, key, val):
                h.changed()

        self.stages[stage].append(rule)

    def add_rename(self, old: str, new: str) -> None:
        def rule(m: CCMessage, h: MessageEnvHolder) -> None:
            if m.name == old:
                m.meta["oldname"] = m.name
                m.name = new
                h.changed()

        self.stages["rename"].append(rule)

    def add_rename_if(self, cond: Any, new: str, where: str) -> None:
        c = self._cond(cond, where)

        def rule(m: CCMessage, h: MessageEnvHolder) -> None:
            if c(h.env):
                m.meta["oldname"] = m.name
                m.name = new
                h.changed()

        self.stages["rename_if"].append(rule)

    def add_change_prefix(self, cond: Any, prefix: str, where: str) -> None:
        if not units.parse_prefix(prefix) is not None:
            raise ProcessorConfigError(f"{where}: invalid unit prefix {prefix!r}")
        c = self._cond(cond, where)

        def rule(m: CCMessage, h: MessageEnvHolder) -> None:
            if c(h.env):
                _change_prefix(m, prefix)
                h.changed()

        self.stages["change_unit_prefix"].append(rule)

    def add_manipulate(self, rules: list[Any]) -> None:
        for i, r in enumerate(rules):
            w = f"{self.where}.manipulate_messages[{i}]"
            if not isinstance(r, Mapping):
                raise ProcessorConfigError(f"{w}: must be an object with one action")
            actions = [k for k in r if k != "if"]
            if len(actions) != 1:
                raise ProcessorConfigError(f'{w}: needs exactly one action key besides "if", found {actions}')
            action = actions[0]
            canon = ACTIONS.get(action)
            if canon is None:
                raise ProcessorConfigError(
                    f"{w}: unknown action {action!r} (known: {', '.join(sorted(ACTIONS))})"
                )
            cond = self._cond(r.get("if", "true"), w)
            self.manipulate.append(self._manipulate_rule(canon, r[action], cond, f"{w}.{action}"))

    def _manipulate_rule(self, action: str, arg: Any, cond: Condition, w: str) -> Rule:
        def obj() -> dict[str, str]:
            if not isinstance(arg, Mapping):
                raise ProcessorConfigError(f"{w}: must be an object")
            return {str(k): value_text(v) if not isinstance(v, str) else v for k, v in arg.items()}

        def keys() -> list[str]:
            if isinstance(arg, Mapping):
                return [str(k) for k in arg]
            if isinstance(arg, str):
                return [arg]
            if isinstance(arg, list) and all(isinstance(x, str) for x in arg):
                return list(arg)
            raise ProcessorConfigError(f"{w}: must be a list of keys")

        if action == "add_base_tags":
            kv = obj()

            def do(m: CCMessage, h: MessageEnvHolder) -> bool:
                changed = False
                for k, v in kv.items():
                    if k not in m.tags:
                        m.tags[k] = v
                        changed = True
                return changed
        elif action in ("add_tags", "add_meta", "add_fields"):
            kv = obj()
            target = action.removeprefix("add_")

            def do(m: CCMessage, h: MessageEnvHolder) -> bool:
                d = {"tags": m.tags, "meta": m.meta, "fields": m.fields}[target]
                d.update(kv)
                return bool(kv)
        elif action in ("delete_tags", "delete_meta", "delete_fields"):
            ks = keys()
            target = action.removeprefix("delete_")
            if target == "fields" and PROTECTED_FIELDS.intersection(ks):
                raise ProcessorConfigError(
                    f"{w}: fields {sorted(PROTECTED_FIELDS.intersection(ks))} cannot be deleted"
                )

            def do(m: CCMessage, h: MessageEnvHolder) -> bool:
                d = {"tags": m.tags, "meta": m.meta, "fields": m.fields}[target]
                n = len(d)
                for k in ks:
                    d.pop(k, None)
                return len(d) != n
        elif action == "drop_by_name":
            names = set(keys())

            def do(m: CCMessage, h: MessageEnvHolder) -> bool:
                if m.name in names:
                    raise DropMessage
                return False
        elif action == "drop_by":
            srcs = [arg] if isinstance(arg, str) else arg
            if not isinstance(srcs, list) or not srcs:
                raise ProcessorConfigError(f"{w}: must be a condition or a list of conditions")
            conds = [self._cond(s, f"{w}[{i}]") for i, s in enumerate(srcs)]

            def do(m: CCMessage, h: MessageEnvHolder) -> bool:
                if any(c(h.env) for c in conds):
                    raise DropMessage
                return False
        elif action == "drop_by_message_type":
            types = keys()
            bad = [t for t in types if t not in MESSAGE_TYPES]
            if bad:
                raise ProcessorConfigError(f"{w}: invalid message type {bad[0]!r}")
            tset = set(types)

            def do(m: CCMessage, h: MessageEnvHolder) -> bool:
                if m.category in tset:
                    raise DropMessage
                return False
        elif action == "rename":
            mapping = obj()

            def do(m: CCMessage, h: MessageEnvHolder) -> bool:
                new = mapping.get(m.name)
                if new is None:
                    return False
                m.meta["oldname"] = m.name
                m.name = new
                return True
        elif action.startswith("move_"):
            mapping = obj()
            src, _, dst = action.removeprefix("move_").partition("_to_")
            op = _MOVE[(src, dst)]

            def do(m: CCMessage, h: MessageEnvHolder) -> bool:
                changed = False
                for k, v in mapping.items():
                    changed |= op(m, k, v)
                return changed
        elif action == "change_unit_prefix":
            if isinstance(arg, str):
                pairs = [(Condition("true", w), arg)]
            elif isinstance(arg, Mapping):
                pairs = [(self._cond(c, w), str(p)) for c, p in arg.items()]
            else:
                raise ProcessorConfigError(f"{w}: must be a prefix or an object condition -> prefix")
            for _, p in pairs:
                if not units.parse_prefix(p) is not None:
                    raise ProcessorConfigError(f"{w}: invalid unit prefix {p!r}")

            def do(m: CCMessage, h: MessageEnvHolder) -> bool:
                changed = False
                for c, p in pairs:
                    if c(h.env):
                        _change_prefix(m, p)
                        changed = True
                        h.changed()
                return changed
        elif action == "normalize_units":
            if not isinstance(arg, bool):
                raise ProcessorConfigError(f"{w}: must be true or false")
            on = arg

            def do(m: CCMessage, h: MessageEnvHolder) -> bool:
                if on:
                    _normalize(m)
                return on
        else:  # pragma: no cover - ACTIONS and this chain are kept in step
            raise ProcessorConfigError(f"{w}: unsupported action")

        def rule(m: CCMessage, h: MessageEnvHolder) -> None:
            if cond(h.env) and do(m, h):
                h.changed()

        return rule

    # ------------------------------------------------------------------ running

    def _plan(self) -> list[Rule]:
        """All rules in execution order (stages, then manipulate_messages).

        Built at the first `process()`: the owner adds all its rules before messages flow.
        """
        if self._plan_cache is None:
            plan: list[Rule] = []
            for stage in self.order:
                if stage == "normalize_unit":
                    if self.normalize:
                        plan.append(_normalize_rule)
                    continue
                plan.extend(self.stages[stage])
            plan.extend(self.manipulate)
            self._plan_cache = plan
        return self._plan_cache

    @property
    def empty(self) -> bool:
        return not self.manipulate and not self.normalize and not any(self.stages[s] for s in self.order)

    def process(self, msg: CCMessage, copy: bool = True) -> CCMessage | None:
        """The processed copy of `msg`, or None if a rule dropped it (or could not be evaluated).

        `copy=False` changes `msg` itself (for a message nobody else holds).
        """
        m = msg.copy() if copy else msg
        h = MessageEnvHolder(m, self.base_env)
        try:
            for rule in self._plan():
                rule(m, h)
        except DropMessage:
            return None
        except (expr.ExprError, TypeError, ValueError, ZeroDivisionError) as e:
            self._warn(msg, e)
            return None
        return m

    def _warn(self, msg: CCMessage, e: Exception) -> None:
        self._warned += 1
        now = time.monotonic()
        if now - self._last_warn >= 60:
            log.warning(
                "%s: a rule could not be evaluated for %r, message dropped: %s (%d such drops)",
                self.where,
                msg.name,
                e,
                self._warned,
            )
            self._last_warn = now


# ---------------------------------------------------------------------------- key/value ops


def _set(d: dict[str, Any], k: str, v: Any) -> bool:
    d[k] = v
    return True


def _pop(d: dict[str, Any], k: str) -> bool:
    return d.pop(k, None) is not None


def _move(src: str, dst: str) -> Callable[[CCMessage, str, str], bool]:
    def op(m: CCMessage, key: str, to: str) -> bool:
        s = getattr(m, src)
        if key not in s:
            return False
        v = s.pop(key)
        getattr(m, dst)[to] = value_text(v) if dst != "fields" or not isinstance(v, str) else v
        return True

    return op


_MOVE = {
    ("tag", "meta"): _move("tags", "meta"),
    ("tag", "field"): _move("tags", "fields"),
    ("meta", "tag"): _move("meta", "tags"),
    ("meta", "field"): _move("meta", "fields"),
    ("field", "tag"): _move("fields", "tags"),
    ("field", "meta"): _move("fields", "meta"),
}

_KV_OPS: dict[str, Callable[[CCMessage, str, Any], bool]] = {
    "add_tag": lambda m, k, v: _set(m.tags, k, v),
    "delete_tag": lambda m, k, v: _pop(m.tags, k),
    "move_tag_to_meta": lambda m, k, v: _MOVE[("tag", "meta")](m, k, v),
    "move_tag_to_fields": lambda m, k, v: _MOVE[("tag", "field")](m, k, v),
    "add_meta": lambda m, k, v: _set(m.meta, k, v),
    "delete_meta": lambda m, k, v: _pop(m.meta, k),
    "move_meta_to_tags": lambda m, k, v: _MOVE[("meta", "tag")](m, k, v),
    "move_meta_to_fields": lambda m, k, v: _MOVE[("meta", "field")](m, k, v),
    "add_field": lambda m, k, v: _set(m.fields, k, v),
    "delete_field": lambda m, k, v: _pop(m.fields, k) if k not in PROTECTED_FIELDS else False,
    "move_field_to_tags": lambda m, k, v: _MOVE[("field", "tag")](m, k, v),
    "move_field_to_meta": lambda m, k, v: _MOVE[("field", "meta")](m, k, v),
}
