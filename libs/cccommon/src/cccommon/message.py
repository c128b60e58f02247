"""The ClusterCockpit message (upstream CCMessage): name, tags, meta, fields, time in ns.

Every producer (collectors, receivers, the aggregator) creates messages through `new_message`,
which enforces the creation rules of spec collector §4.1 and copies the given maps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["UInt", "CCMessage", "MessageError", "new_message", "new_metric"]

Value = float | int | str | bool


class UInt(int):
    """An unsigned integer field value (`931u` on the wire)."""

    __slots__ = ()


class MessageError(ValueError):
    pass


def _norm_value(v: Any) -> Value | None:
    if isinstance(v, bool | str | UInt):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "item"):  # numpy scalars
        return _norm_value(v.item())
    return None


@dataclass(slots=True)
class CCMessage:
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Value] = field(default_factory=dict)
    time: int = 0  # nanoseconds since the epoch

    def copy(self) -> CCMessage:
        return CCMessage(self.name, dict(self.tags), dict(self.meta), dict(self.fields), self.time)

    @property
    def category(self) -> str:
        """metric, event, log, control, query or invalid (spec §4.2)."""
        f = self.fields
        if "value" in f:
            return "metric"
        if isinstance(f.get("event"), str):
            return "event"
        if isinstance(f.get("log"), str):
            return "log"
        if isinstance(f.get("control"), str) and self.tags.get("method") in ("GET", "PUT"):
            return "control"
        if isinstance(f.get("query"), str):
            return "query"
        return "invalid"

    @property
    def value(self) -> Value | None:
        return self.fields.get("value")


def new_message(
    name: str,
    tags: Mapping[str, str] | None,
    meta: Mapping[str, str] | None,
    fields: Mapping[str, Any],
    time_ns: int,
) -> CCMessage:
    """Create a message or raise MessageError (empty name/keys, zero time, no valid field, NaN/Inf)."""
    if not name or not name.strip():
        raise MessageError("message name must not be empty")
    if not time_ns:
        raise MessageError("message time must not be zero")
    t = dict(tags or {})
    m = dict(meta or {})
    for kind, d in (("tag", t), ("meta", m)):
        for k in d:
            if not k or not k.strip():
                raise MessageError(f"empty {kind} key")
    out: dict[str, Value] = {}
    for k, v in fields.items():
        if not k or not k.strip():
            raise MessageError("empty field key")
        nv = _norm_value(v)
        if nv is None:
            continue
        if isinstance(nv, float) and not math.isfinite(nv):
            raise MessageError(f"field {k!r} is {nv}")
        out[k] = nv
    if not out:
        raise MessageError("message has no valid field")
    return CCMessage(name, t, m, out, int(time_ns))


def new_metric(
    name: str, tags: Mapping[str, str] | None, meta: Mapping[str, str] | None, value: Any, time_ns: int
) -> CCMessage:
    return new_message(name, tags, meta, {"value": value}, time_ns)
