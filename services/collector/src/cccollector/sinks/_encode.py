"""Line-protocol text of a message as the sinks write it (spec collector §4.5).

* Writer B (`line_b`): the batch encoder of the http, nats and influxdb sinks. Tags sorted,
  fields in insertion order, timestamp scaled to the sink's precision, and validation: a line
  with an empty or control-character name/key/tag value, a trailing backslash, a NaN/Inf float
  or an unencodable string raises `LineError` (the sink drops that line only).
* Writer A (`line_a`): influxdb-client-go's `PointToLineProtocol`, used by the stdout sink (always
  nanoseconds) and influxasync (scaled): a `,` always follows the measurement, fields are sorted,
  string values escape only `\\` and `"`, nothing is validated, and newline/CR/tab in names, keys
  and tag values become two backslashes plus `n`/`r`/`t`.

`text_a` and `lines_b` write a whole list of messages at once; they use the C accelerator
`cccommon._lpenc` (same text, about 10x faster) and hand it `line_a`/`line_b` for the messages
it leaves to Python (string, unsigned or several fields, escapes writer B refuses, ...).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable

from cccommon.lineprotocol import format_line, format_value, go_float
from cccommon.message import CCMessage, UInt

try:
    from cccommon import _lpenc
except ImportError:  # built without a C compiler: the Python writers do the same
    _lpenc = None

__all__ = ["LineError", "PRECISIONS", "parse_precision", "line_b", "line_a", "lines_b", "text_a"]

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


def text_a(msgs: list[CCMessage], unit_ns: int = 1) -> str:
    """Writer A text of all `msgs`, each line followed by a newline."""
    if unit_ns == 1:
        fallback: Callable[[CCMessage], str] = line_a
    else:

        def fallback(m: CCMessage) -> str:
            return line_a(m, unit_ns)

    if _lpenc is not None:
        return _lpenc.encode(msgs, unit_ns, 0, fallback, True)  # type: ignore[no-any-return]
    return "".join([fallback(m) + "\n" for m in msgs])


def lines_b(
    msgs: list[CCMessage],
    unit_ns: int,
    on_error: Callable[[CCMessage, LineError], None],
) -> list[str]:
    """Writer B lines of `msgs` (no newlines); a message that cannot be written goes to `on_error`."""

    def fallback(m: CCMessage) -> str | None:
        try:
            return line_b(m, unit_ns)
        except LineError as e:
            on_error(m, e)
            return None

    if _lpenc is not None:
        return _lpenc.encode(msgs, unit_ns, 1, fallback, False)  # type: ignore[no-any-return]
    return [line for line in map(fallback, msgs) if line is not None]
