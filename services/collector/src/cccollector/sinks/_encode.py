"""Line-protocol text of a message as the sinks write it (spec collector §4.5).

* Writer B (`line_b`): the batch encoder of the http, nats and influxdb sinks. Tags sorted,
  fields in insertion order, timestamp scaled to the sink's precision, and validation: a line
  with an empty or control-character name/key/tag value, a trailing backslash, a NaN/Inf float
  or an unencodable string raises `LineError` (the sink drops that line only).
* Writer A (`line_a`): influxdb-client-go's `PointToLineProtocol`, used by the stdout sink (always
  nanoseconds) and influxasync (scaled): a `,` always follows the measurement, fields are sorted,
  string values escape only `\\` and `"`, nothing is validated, and newline/CR/tab in names, keys
  and tag values become two backslashes plus `n`/`r`/`t`.
"""

from __future__ import annotations

import logging
import math
import re

from cccommon.lineprotocol import format_line, format_value, go_float
from cccommon.message import CCMessage, UInt

__all__ = ["LineError", "PRECISIONS", "parse_precision", "line_b", "line_a"]

#: precision name → nanoseconds per unit
PRECISIONS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}

_BAD = re.compile(r"[\x00-\x1f\x7f]")


class LineError(ValueError):
    """This message cannot be written as a line (the reason is the message)."""


def parse_precision(value: str | None, logger: logging.Logger, default: str = "s") -> tuple[str, int]:
    """(name, ns per unit); unknown values fall back to seconds as upstream, with a warning."""
    if value is None or value == "":
        return default, PRECISIONS[default]
    if value in PRECISIONS:
        return value, PRECISIONS[value]
    logger.warning("unknown precision %r, using %r", value, default)
    return default, PRECISIONS[default]


def _check(kind: str, s: str) -> None:
    if not s:
        raise LineError(f"empty {kind}")
    if _BAD.search(s):
        raise LineError(f"{kind} {s!r} contains a control character")
    if s.endswith("\\"):
        raise LineError(f"{kind} {s!r} ends with a backslash")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise LineError(f"{kind} {s!r} is not valid UTF-8") from None


def line_b(msg: CCMessage, unit_ns: int = 1_000_000_000) -> str:
    """Writer B text of `msg` (without newline); LineError if the line would be invalid."""
    _check("measurement", msg.name)
    for k, v in msg.tags.items():
        _check("tag key", k)
        _check(f"value of tag {k!r}", v)
    if not msg.fields:
        raise LineError("no fields")
    for k, v in msg.fields.items():
        _check("field key", k)
        if isinstance(v, float) and not math.isfinite(v):
            raise LineError(f"field {k!r} is {v}")
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise LineError(f"field {k!r} is not valid UTF-8") from None
        elif not isinstance(v, bool | int | float):
            raise LineError(f"field {k!r} has an unsupported type {type(v).__name__}")
    ts = msg.time // unit_ns if msg.time else None
    return format_line(msg.name, msg.tags, msg.fields, ts)


_A_KEY = str.maketrans({"\n": "\\\\n", "\r": "\\\\r", "\t": "\\\\t", " ": "\\ ", ",": "\\,", "=": "\\="})
_A_MEAS = str.maketrans({"\n": "\\\\n", "\r": "\\\\r", "\t": "\\\\t", " ": "\\ ", ",": "\\,"})
_A_STR = str.maketrans({"\\": "\\\\", '"': '\\"'})


def _value_a(v: object) -> str:
    if isinstance(v, str):
        return '"' + v.translate(_A_STR) + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, UInt):
        return f"{int(v)}u"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        return (
            go_float(v) if math.isfinite(v) else ("NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf"))
        )
    return format_value(v)  # type: ignore[arg-type]


def line_a(msg: CCMessage, unit_ns: int = 1) -> str:
    """Writer A text of `msg` (without newline); never fails."""
    key = (msg.name, *msg.tags.items())
    head = _A_HEADS.get(key)
    if head is None:
        tags = ",".join(f"{k.translate(_A_KEY)}={msg.tags[k].translate(_A_KEY)}" for k in sorted(msg.tags))
        head = f"{msg.name.translate(_A_MEAS)},{tags} "
        if len(_A_HEADS) >= 200_000:
            _A_HEADS.clear()
        _A_HEADS[key] = head
    f = msg.fields
    if len(f) == 1 and "value" in f:
        body = "value=" + _value_a(f["value"])
    else:
        body = ",".join(f"{k.translate(_A_KEY)}={_value_a(f[k])}" for k in sorted(f))
    return f"{head}{body} {msg.time // unit_ns}" if msg.time else head + body


# `name,tags ` of recent series (the same series come at every interval)
_A_HEADS: dict[tuple[str, ...], str] = {}
