"""Metric unit strings parsed, normalised and converted like cc-lib ccUnits (spec collector §5.7).

Collectors and users spell units many ways (`kB`, `KByte`, `MBytes/s`, `watts`, `Percent`); the
router's `normalize_units` and `change_unit_prefix` rules reduce them to one short form so that
units on the wire match what the Go collector sends. A unit is *prefix + measure [/ denominator
measure]*; anything that does not parse that way is "invalid" and callers leave it unchanged.

API:

* `parse_unit(text) -> Unit | None`: the parsed unit, None if invalid.
* `normalize_unit(text) -> str`: the short form (`"MBytes/s"` -> `"MB/s"`), or `text` unchanged if
  invalid. `is_valid_unit(text) -> bool`.
* `parse_prefix(text) -> Prefix | None`: `"k"`/`"K"` -> Kilo, `"Gi"` -> Gibi, `""` -> base, ...
* `prefix_factor(from_prefix, to_prefix) -> float`: multiply a value by it to change the prefix.
* `get_unit_prefix_factor(unit, prefix) -> (factor, Unit)`: factor and resulting unit for a prefix
  change (`"kB"`, `"G"` -> `(1e-06, GB)`).
* `get_unit_unit_factor(from_unit, to_unit) -> float`: prefix factor between two units of the same
  measure; `get_unit_unit_conversion(...)` returns a function and also converts degC <-> degF.
* `convert_value(value, factor)`: applies a factor keeping the value kind (float stays float,
  int/uint are truncated, bool/str unchanged), as upstream does.
* `change_unit_prefix(value, unit, prefix) -> (value, unit_text)`: the rules engine's step.

All functions taking a unit or prefix accept either the text or the parsed object; invalid input
raises `UnitError` (a `ValueError`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BASE",
    "BYTES",
    "CYCLES",
    "EVENTS",
    "FLOPS",
    "HERTZ",
    "JOULE",
    "MEASURES",
    "PACKETS",
    "PERCENT",
    "PREFIXES",
    "REQUESTS",
    "ROTATION",
    "SECONDS",
    "TEMPERATURE_C",
    "TEMPERATURE_F",
    "WATT",
    "Measure",
    "Prefix",
    "Unit",
    "UnitError",
    "change_unit_prefix",
    "convert_value",
    "get_unit_prefix_factor",
    "get_unit_unit_conversion",
    "get_unit_unit_factor",
    "is_valid_unit",
    "normalize_unit",
    "parse_measure",
    "parse_prefix",
    "parse_unit",
    "prefix_factor",
]


class UnitError(ValueError):
    """An invalid unit or prefix, or a conversion between incompatible measures."""


@dataclass(frozen=True, slots=True)
class Prefix:
    """A unit prefix: `short` is what unit strings carry (`K`, `Mi`), `factor` its value (1e3, 2**20)."""

    short: str
    long: str
    factor: float


@dataclass(frozen=True, slots=True, eq=False)
class Measure:
    """A measure (Bytes, Flops, ...): `short` is its normalised spelling; compared by identity."""

    short: str
    long: str
    pattern: re.Pattern[str]

    def __repr__(self) -> str:
        return f"Measure({self.short!r})"


BASE = Prefix("", "", 1.0)
KILO = Prefix("K", "Kilo", 1e3)
MEGA = Prefix("M", "Mega", 1e6)
GIGA = Prefix("G", "Giga", 1e9)
TERA = Prefix("T", "Tera", 1e12)
PETA = Prefix("P", "Peta", 1e15)
EXA = Prefix("E", "Exa", 1e18)
ZETTA = Prefix("Z", "Zetta", 1e21)
YOTTA = Prefix("Y", "Yotta", 1e24)
MILLI = Prefix("m", "Milli", 1e-3)
MICRO = Prefix("u", "Micro", 1e-6)
NANO = Prefix("n", "Nano", 1e-9)
KIBI = Prefix("Ki", "Kibi", float(1024))
MEBI = Prefix("Mi", "Mebi", float(1024**2))
GIBI = Prefix("Gi", "Gibi", float(1024**3))
TEBI = Prefix("Ti", "Tebi", float(1024**4))
PEBI = Prefix("Pi", "Pebi", float(1024**5))
EXBI = Prefix("Ei", "Exbi", float(1024**6))
ZEBI = Prefix("Zi", "Zebi", float(1024**7))
YOBI = Prefix("Yi", "Yobi", float(1024**8))

#: Every accepted prefix spelling (exact match) -> prefix. `M`/`Mi` are upper case only (`m` is
#: Milli); Micro and Nano are accepted as targets of a prefix change but never parsed from a unit.
PREFIXES: dict[str, Prefix] = {
    "": BASE,
    "k": KILO,
    "K": KILO,
    "M": MEGA,
    "g": GIGA,
    "G": GIGA,
    "t": TERA,
    "T": TERA,
    "p": PETA,
    "P": PETA,
    "e": EXA,
    "E": EXA,
    "z": ZETTA,
    "Z": ZETTA,
    "y": YOTTA,
    "Y": YOTTA,
    "m": MILLI,
    "u": MICRO,
    "n": NANO,
    "ki": KIBI,
    "Ki": KIBI,
    "Mi": MEBI,
    "gi": GIBI,
    "Gi": GIBI,
    "ti": TEBI,
    "Ti": TEBI,
    "pi": PEBI,
    "Pi": PEBI,
    "ei": EXBI,
    "Ei": EXBI,
    "zi": ZEBI,
    "Zi": ZEBI,
    "yi": YOBI,
    "Yi": YOBI,
}


def _measure(short: str, long: str, regex: str) -> Measure:
    return Measure(short, long, re.compile(regex))


# Regexes are anchored at the start only, so "Bytes123" is Bytes and "Mbit" is MB (as upstream).
BYTES = _measure("B", "byte", r"[bB][yY]?[tT]?[eE]?[sS]?")
FLOPS = _measure("Flops", "Flops", r"[fF][lL]?[oO]?[pP]?[sS]?")
PERCENT = _measure("%", "Percent", r"%|[pP]ercent")
TEMPERATURE_C = _measure("degC", "DegreeC", r"deg[Cc]|°[cC]")
TEMPERATURE_F = _measure("degF", "DegreeF", r"deg[fF]|°[fF]")
ROTATION = _measure("RPM", "RPM", r"[rR][pP][mM]")
HERTZ = _measure("Hz", "Hertz", r"[hH][eE]?[rR]?[tT]?[zZ]")
SECONDS = _measure("s", "Seconds", r"[sS][eE]?[cC]?[oO]?[nN]?[dD]?[sS]?")
CYCLES = _measure("cyc", "Cycles", r"[cC][yY][cC]?[lL]?[eE]?[sS]?")
WATT = _measure("W", "Watts", r"[wW][aA]?[tT]?[tT]?[sS]?")
JOULE = _measure("J", "Joules", r"[jJ][oO]?[uU]?[lL]?[eE]?[sS]?")
REQUESTS = _measure("requests", "Requests", r"[rR][eE][qQ][uU]?[eE]?[sS]?[tT]?[sS]?")
PACKETS = _measure("packets", "Packets", r"[pP][aA]?[cC]?[kK][eE]?[tT][sS]?")
EVENTS = _measure("events", "Events", r"[eE][vV]?[eE]?[nN][tT][sS]?")

#: All measures in the order they are tried (spec §5.7, step 3).
MEASURES: tuple[Measure, ...] = (
    BYTES,
    FLOPS,
    PERCENT,
    TEMPERATURE_C,
    TEMPERATURE_F,
    ROTATION,
    HERTZ,
    SECONDS,
    CYCLES,
    WATT,
    JOULE,
    REQUESTS,
    PACKETS,
    EVENTS,
)

# Measures that cannot be divided: a Milli prefix on them means Mega (`mb` is MB, not millibytes).
_INDIVISIBLE = (BYTES, FLOPS, PACKETS, EVENTS, CYCLES, REQUESTS)
_SPLIT = re.compile(r"([kKmMgGtTpPeEzZyY]?i?)(.*)")


@dataclass(frozen=True, slots=True)
class Unit:
    """A valid unit: prefix, measure and an optional denominator measure (always without prefix)."""

    prefix: Prefix
    measure: Measure
    denominator: Measure | None = None

    @property
    def short(self) -> str:
        """The normalised text the router writes (`MB/s`, `GFlops/s`, `degC`, `%`)."""
        text = self.prefix.short + self.measure.short
        return f"{text}/{self.denominator.short}" if self.denominator is not None else text

    @property
    def long(self) -> str:
        """A long, human readable form (`Megabyte/Seconds`), as upstream's `String()`."""
        text = self.prefix.long + self.measure.long
        return f"{text}/{self.denominator.long}" if self.denominator is not None else text

    @property
    def base(self) -> str:
        """The unit without its prefix (`B/s` for `MB/s`), e.g. for the backend's `{base, prefix}`."""
        return dataclasses.replace(self, prefix=BASE).short

    def with_prefix(self, prefix: Prefix) -> Unit:
        """The same unit with another prefix."""
        return dataclasses.replace(self, prefix=prefix)

    def __str__(self) -> str:
        return self.short


def parse_prefix(text: str) -> Prefix | None:
    """The prefix spelled `text` (exact match, see `PREFIXES`), None if it is not a prefix."""
    return PREFIXES.get(text)


def parse_measure(text: str) -> Measure | None:
    """The first measure whose pattern matches the start of `text`, None if none does."""
    for measure in MEASURES:
        if measure.pattern.match(text):
            return measure
    return None


def parse_unit(text: str) -> Unit | None:
    """Parse `prefix + measure [/ measure]` the way ccUnits does; None if the unit is invalid.

    An unrecognised denominator is dropped rather than invalidating the unit (upstream behaviour).
    """
    if not isinstance(text, str):
        return None
    split = _SPLIT.match(text)
    assert split is not None  # both groups may be empty, so the pattern always matches
    prefix_text, rest = split.group(1), split.group(2)
    prefix = PREFIXES.get(prefix_text)
    parts = rest.split("/")
    measure = parse_measure(parts[0])
    if measure is None and prefix in (PETA, EXA):
        # `percent`, `packets`, `events`: the first letter was taken for Peta/Exa; put it back.
        measure = parse_measure(prefix_text + parts[0])
        if measure is not None:
            prefix = BASE
    if measure is None:
        return None
    if measure in _INDIVISIBLE:
        if prefix is MILLI:
            prefix = MEGA
    elif measure is PERCENT:
        prefix = BASE
    if prefix is None:
        return None
    denominator = parse_measure(parts[1]) if len(parts) > 1 else None
    return Unit(prefix, measure, denominator)


def is_valid_unit(text: str) -> bool:
    """True if `text` parses as a unit."""
    return parse_unit(text) is not None


def normalize_unit(text: str) -> str:
    """The short form of a valid unit (`"MBytes/s"` -> `"MB/s"`), otherwise `text` unchanged."""
    unit = parse_unit(text)
    return text if unit is None else unit.short


def _as_unit(unit: str | Unit) -> Unit:
    if isinstance(unit, Unit):
        return unit
    parsed = parse_unit(unit)
    if parsed is None:
        raise UnitError(f"invalid unit {unit!r}")
    return parsed


def _as_prefix(prefix: str | Prefix) -> Prefix:
    if isinstance(prefix, Prefix):
        return prefix
    parsed = parse_prefix(prefix) if isinstance(prefix, str) else None
    if parsed is None:
        raise UnitError(f"invalid unit prefix {prefix!r}")
    return parsed


def prefix_factor(from_prefix: str | Prefix, to_prefix: str | Prefix) -> float:
    """The factor that converts a value from one prefix to another (`"K"`, `"G"` -> 1e-06)."""
    return _as_prefix(from_prefix).factor / _as_prefix(to_prefix).factor


def get_unit_prefix_factor(unit: str | Unit, prefix: str | Prefix) -> tuple[float, Unit]:
    """Factor and resulting unit for changing the prefix of `unit` (`"kB"`, `"G"` -> 1e-06, `GB`).

    Like upstream, the result is the re-parsed short form with the new prefix; a percentage takes
    the prefix as well (`"%"`, `"K"` -> `K%`).
    """
    source = _as_unit(unit)
    target = _as_prefix(prefix)
    reparsed = parse_unit(source.short)
    if reparsed is None:
        raise UnitError(f"unit {source.short!r} cannot take a prefix")
    return source.prefix.factor / target.factor, reparsed.with_prefix(target)


def _check_compatible(source: Unit, target: Unit) -> None:
    if source.measure is not target.measure or source.denominator is not target.denominator:
        raise UnitError(f"cannot convert {source.short!r} to {target.short!r}: different measures")


def get_unit_unit_factor(from_unit: str | Unit, to_unit: str | Unit) -> float:
    """The factor converting values of `from_unit` into `to_unit` (`"Mb/s"`, `"B/s"` -> 1e6).

    Raises `UnitError` for different measures or denominators, including degC <-> degF, which is
    not a factor (use `get_unit_unit_conversion`).
    """
    source, target = _as_unit(from_unit), _as_unit(to_unit)
    _check_compatible(source, target)
    return source.prefix.factor / target.prefix.factor


def _celsius_to_fahrenheit(value: Any) -> Any:
    return _keep_kind(value, lambda x: x * 1.8 + 32)


def _fahrenheit_to_celsius(value: Any) -> Any:
    return _keep_kind(value, lambda x: (x - 32) / 1.8)


def get_unit_unit_conversion(from_unit: str | Unit, to_unit: str | Unit) -> Callable[[Any], Any]:
    """A function converting values of `from_unit` into `to_unit`, keeping the value kind.

    Handles the prefix factor and the degC <-> degF conversion; raises `UnitError` otherwise
    when the measures differ.
    """
    source, target = _as_unit(from_unit), _as_unit(to_unit)
    if source.measure is TEMPERATURE_C and target.measure is TEMPERATURE_F:
        return _celsius_to_fahrenheit
    if source.measure is TEMPERATURE_F and target.measure is TEMPERATURE_C:
        return _fahrenheit_to_celsius
    _check_compatible(source, target)
    factor = source.prefix.factor / target.prefix.factor
    return lambda value: convert_value(value, factor)


def _keep_kind(value: Any, f: Callable[[float], float]) -> Any:
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, float):
        return f(value)
    if isinstance(value, int):
        result = f(float(value))
        if not math.isfinite(result):
            raise UnitError(f"converted value {result} does not fit an integer")
        return type(value)(int(result))  # truncates toward zero; UInt stays UInt
    return value


def convert_value(value: Any, factor: float) -> Any:
    """`value * factor` keeping the kind: floats scale, ints and uints truncate, others unchanged."""
    return _keep_kind(value, lambda x: x * factor)


def change_unit_prefix(value: Any, unit: str | Unit, prefix: str | Prefix) -> tuple[Any, str]:
    """Convert `value` in `unit` to `prefix`; returns the new value and the new unit text.

    Example: `change_unit_prefix(16_000_000, "kB", "G")` -> `(16, "GB")`. Raises `UnitError` if
    the unit or the prefix is invalid.
    """
    factor, new_unit = get_unit_prefix_factor(unit, prefix)
    return convert_value(value, factor), new_unit.short
