"""Go `time.ParseDuration` / `Duration.String()` so upstream config values keep working."""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = ["parse_duration", "parse_duration_ns", "format_duration"]

_UNITS_NS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_NS = (1 << 63) - 1


def parse_duration_ns(s: str) -> int:
    """Parse a Go duration string into integer nanoseconds (Go's native unit, no float rounding)."""
    orig = s
    if not isinstance(s, str):
        raise ValueError(f"time: invalid duration {orig!r}: not a string")
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise ValueError(f"time: invalid duration {orig!r}")
    total = Fraction(0)
    i = 0
    n = len(s)
    while i < n:
        start = i
        while i < n and s[i].isdigit() and s[i].isascii():
            i += 1
        int_part = s[start:i]
        frac_part = ""
        if i < n and s[i] == ".":
            i += 1
            fstart = i
            while i < n and s[i].isdigit() and s[i].isascii():
                i += 1
            frac_part = s[fstart:i]
        if not int_part and not frac_part:
            raise ValueError(f"time: invalid duration {orig!r}")
        ustart = i
        while i < n and s[i] != "." and not (s[i].isdigit() and s[i].isascii()):
            i += 1
        unit = s[ustart:i]
        if not unit:
            raise ValueError(f"time: missing unit in duration {orig!r}")
        if unit not in _UNITS_NS:
            raise ValueError(
                f"time: unknown unit {unit!r} in duration {orig!r} (valid units: ns, us, µs, ms, s, m, h)"
            )
        value = Fraction(int(int_part or "0"))
        if frac_part:
            value += Fraction(int(frac_part), 10 ** len(frac_part))
        total += value * _UNITS_NS[unit]
        if total > _MAX_NS + 1:
            raise ValueError(f"time: invalid duration {orig!r} (overflow)")
    ns = math.floor(total)
    if neg:
        ns = -ns
        if ns < -(_MAX_NS + 1):
            raise ValueError(f"time: invalid duration {orig!r} (overflow)")
    elif ns > _MAX_NS:
        raise ValueError(f"time: invalid duration {orig!r} (overflow)")
    return ns


def parse_duration(s: str) -> float:
    """Parse a Go duration string (`48h`, `1h30m`, `1.5h`, `0`) into seconds."""
    return parse_duration_ns(s) / 1e9


def _frac(v: int, prec: int) -> str:
    whole, rest = divmod(v, 10**prec)
    digits = f"{rest:0{prec}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def format_duration(seconds: float) -> str:
    """Render seconds like Go's `Duration.String()` (`1h30m0s`, `1.5s`, `500ms`, `0s`)."""
    ns = round(seconds * 1e9) if isinstance(seconds, float) else int(seconds) * 1_000_000_000
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_frac(u, 3)}µs"
    if u < 1_000_000_000:
        return f"{sign}{_frac(u, 6)}ms"
    hours, rem = divmod(u, 3_600_000_000_000)
    minutes, rem = divmod(rem, 60_000_000_000)
    secs = _frac(rem, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return f"{sign}{secs}"
