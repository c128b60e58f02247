"""Unit parsing, normalisation and prefix conversion like cc-lib ccUnits (spec collector §5.7)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cccommon.message import UInt
from cccommon.units import (
    BASE,
    BYTES,
    CYCLES,
    EVENTS,
    FLOPS,
    HERTZ,
    JOULE,
    MEASURES,
    PACKETS,
    PERCENT,
    PREFIXES,
    REQUESTS,
    ROTATION,
    SECONDS,
    TEMPERATURE_C,
    TEMPERATURE_F,
    WATT,
    Unit,
    UnitError,
    change_unit_prefix,
    convert_value,
    get_unit_prefix_factor,
    get_unit_unit_conversion,
    get_unit_unit_factor,
    is_valid_unit,
    normalize_unit,
    parse_measure,
    parse_prefix,
    parse_unit,
    prefix_factor,
)

# spec §5.7 examples, then the spellings upstream's own tests accept
NORMALIZED: list[tuple[str, str]] = [
    ("kB", "KB"),
    ("MByte", "MB"),
    ("GBytes", "GB"),
    ("bytes/sec", "B/s"),
    ("packets/sec", "packets/s"),
    ("requests/sec", "requests/s"),
    ("Percent", "%"),
    ("percent", "%"),
    ("Watt", "W"),
    ("watts", "W"),
    ("Joules", "J"),
    ("MHz", "MHz"),
    ("degC", "degC"),
    ("seconds", "s"),
    ("sec", "s"),
    ("MFlops/s", "MFlops/s"),
    ("MBytes/s", "MB/s"),
    ("GFlops/s", "GFlops/s"),
    ("B/s", "B/s"),
    ("F/s", "Flops/s"),
    ("GF/s", "GFlops/s"),
    ("b", "B"),
    ("B", "B"),
    ("byte", "B"),
    ("bytes", "B"),
    ("BYtes", "B"),
    ("Mb", "MB"),
    ("MB", "MB"),
    ("Mbyte", "MB"),
    ("Mbytes", "MB"),
    ("MbYtes", "MB"),
    ("Gb", "GB"),
    ("GB", "GB"),
    ("Hz", "Hz"),
    ("GHz", "GHz"),
    ("kHz", "KHz"),
    ("pkts", "packets"),
    ("packets", "packets"),
    ("packet", "packets"),
    ("flop", "Flops"),
    ("flops", "Flops"),
    ("floPS", "Flops"),
    ("Mflop", "MFlops"),
    ("Gflop", "GFlops"),
    ("gflop", "GFlops"),
    ("%", "%"),
    ("degc", "degC"),
    ("°C", "degC"),
    ("°c", "degC"),
    ("degf", "degF"),
    ("°f", "degF"),
    ("events", "events"),
    ("event", "events"),
    ("EveNts", "events"),
    ("kevents/s", "Kevents/s"),
    ("reqs", "requests"),
    ("reQuEsTs", "requests"),
    ("Requests", "requests"),
    ("cyc", "cyc"),
    ("cy", "cyc"),
    ("Cycles", "cyc"),
    ("J", "J"),
    ("Joule", "J"),
    ("joule", "J"),
    ("kJ", "KJ"),
    ("W", "W"),
    ("Watts", "W"),
    ("watt", "W"),
    ("mW", "mW"),
    ("s", "s"),
    ("secs", "s"),
    ("ms", "ms"),
    ("RPM", "RPM"),
    ("rPm", "RPM"),
    ("watt/byte", "W/B"),
    ("watts/bytes", "W/B"),
    ("flop/byte", "Flops/B"),
    ("F/B", "Flops/B"),
    # Milli on an indivisible measure means Mega
    ("mb", "MB"),
    ("mflops", "MFlops"),
    ("mpackets", "Mpackets"),
    ("mevents", "Mevents"),
    ("mcycles", "Mcyc"),
    ("mrequests", "Mrequests"),
    # binary prefixes
    ("KiB", "KiB"),
    ("kib", "KiB"),
    ("MiB", "MiB"),
    ("Mib", "MiB"),
    ("GiB/s", "GiB/s"),
    ("TiB", "TiB"),
    ("PiB", "PiB"),
    ("EiB", "EiB"),
    ("ZiB", "ZiB"),
    ("YiB", "YiB"),
    ("TB", "TB"),
    ("PB", "PB"),
    ("EB", "EB"),
    ("ZB", "ZB"),
    ("YB", "YB"),
    # Peta/Exa retry and prefixed versions
    ("Pevents", "Pevents"),
    ("Ppackets", "Ppackets"),
    # percentages drop any prefix
    ("k%", "%"),
    ("Mpercent", "%"),
    # upstream quirks kept for identical units on the wire
    ("Mbit/s", "MB/s"),  # the Bytes pattern is anchored at the start only
    ("Bytes123", "B"),
    ("B/ms", "B"),  # an unrecognised denominator is dropped
    ("B/", "B"),
    ("MB/s/x", "MB/s"),  # only the first denominator counts
]


@pytest.mark.parametrize("text,short", NORMALIZED)
def test_normalize(text: str, short: str) -> None:
    assert normalize_unit(text) == short
    assert is_valid_unit(text)
    unit = parse_unit(text)
    assert unit is not None and unit.short == short == str(unit)
    assert normalize_unit(short) == short  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "Volts",
        "Ampere",
        "4K_pages/s",
        "CubicFeetPerMinute",
        "",
        "/s",
        "instructions",
        "iops",
        "qux",
        "ubytes",  # Micro/Nano never parse (u, n are not in the prefix split)
        "nflops/sec",
        "miB",  # 'mi' is not a prefix
        "xB",
    ],
)
def test_invalid_units_are_left_unchanged(text: str) -> None:
    assert parse_unit(text) is None
    assert not is_valid_unit(text)
    assert normalize_unit(text) == text


def test_trailing_text_after_a_measure_is_ignored() -> None:
    """Measure patterns are anchored at the start only (upstream): even its own 'foobar' is Flops."""
    assert normalize_unit("requests ") == "requests"
    assert normalize_unit("Watt hours") == "W"
    assert normalize_unit("foobar") == "Flops"


def test_parse_structure() -> None:
    u = parse_unit("MBytes/s")
    assert u == Unit(PREFIXES["M"], BYTES, SECONDS)
    assert u.prefix.short == "M" and u.prefix.factor == 1e6
    assert u.base == "B/s"
    assert u.long == "Megabyte/Seconds"
    assert parse_unit("kHz") == Unit(PREFIXES["k"], HERTZ)
    assert parse_unit("percent") == Unit(BASE, PERCENT)
    assert parse_unit(42) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text,measure",
    [
        ("B", BYTES),
        ("Flops", FLOPS),
        ("%", PERCENT),
        ("degC", TEMPERATURE_C),
        ("degF", TEMPERATURE_F),
        ("rpm", ROTATION),
        ("Hz", HERTZ),
        ("s", SECONDS),
        ("cycles", CYCLES),
        ("W", WATT),
        ("J", JOULE),
        ("requests", REQUESTS),
        ("packets", PACKETS),
        ("events", EVENTS),
        ("volts", None),
    ],
)
def test_measures(text: str, measure: Any) -> None:
    assert parse_measure(text) is measure


def test_measure_patterns_do_not_overlap() -> None:
    """Upstream tries the patterns in random (Go map) order, so no spelling may match two of them."""
    samples = ["B", "bytes", "Flops", "f", "%", "percent", "degC", "°F", "rpm", "Hz", "hertz", "s", "seconds"]
    samples += [
        "cy",
        "cycles",
        "W",
        "watts",
        "J",
        "joules",
        "req",
        "requests",
        "pkts",
        "packets",
        "event",
        "events",
    ]
    for text in samples:
        assert sum(1 for m in MEASURES if m.pattern.match(text)) == 1, text


@pytest.mark.parametrize(
    "text,short,factor",
    [
        ("", "", 1.0),
        ("k", "K", 1e3),
        ("K", "K", 1e3),
        ("M", "M", 1e6),
        ("g", "G", 1e9),
        ("G", "G", 1e9),
        ("t", "T", 1e12),
        ("T", "T", 1e12),
        ("p", "P", 1e15),
        ("P", "P", 1e15),
        ("e", "E", 1e18),
        ("E", "E", 1e18),
        ("z", "Z", 1e21),
        ("Z", "Z", 1e21),
        ("y", "Y", 1e24),
        ("Y", "Y", 1e24),
        ("m", "m", 1e-3),
        ("u", "u", 1e-6),
        ("n", "n", 1e-9),
        ("ki", "Ki", 1024.0),
        ("Ki", "Ki", 1024.0),
        ("Mi", "Mi", 1024.0**2),
        ("gi", "Gi", 1024.0**3),
        ("Gi", "Gi", 1024.0**3),
        ("Ti", "Ti", 1024.0**4),
        ("Pi", "Pi", 1024.0**5),
        ("Ei", "Ei", 1024.0**6),
        ("Zi", "Zi", 1024.0**7),
        ("Yi", "Yi", 1024.0**8),
    ],
)
def test_prefixes(text: str, short: str, factor: float) -> None:
    p = parse_prefix(text)
    assert p is not None and p.short == short and p.factor == factor


@pytest.mark.parametrize("text", ["mi", "MI", "KI", "x", "kilo", "µ", " "])
def test_invalid_prefixes(text: str) -> None:
    assert parse_prefix(text) is None
    with pytest.raises(UnitError, match="invalid unit prefix"):
        prefix_factor(text, "")


@pytest.mark.parametrize(
    "src,dst,factor",
    [("K", "", 1000.0), ("M", "", 1e6), ("M", "G", 1e-3), ("", "M", 1e-6), ("", "m", 1e3), ("m", "n", 1e6)],
)
def test_prefix_factor(src: str, dst: str, factor: float) -> None:
    assert prefix_factor(src, dst) == factor
    assert prefix_factor(parse_prefix(src), parse_prefix(dst)) == factor  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "src,dst,factor",
    [
        ("kb", "Bytes", 1000.0),
        ("Mb", "Bytes", 1e6),
        ("Mb/s", "Bytes/s", 1e6),
        ("Flops/s", "MFlops/s", 1e-6),
        ("Flops/s", "GFlops/s", 1e-9),
        ("MHz", "Hertz", 1e6),
        ("kb", "Kib", 1000.0 / 1024),
        ("Mib", "MBytes", 1024.0 * 1024 / 1e6),
        ("mb", "MBytes", 1.0),
        ("kB", "MBytes", 1e-3),
    ],
)
def test_unit_unit_factor(src: str, dst: str, factor: float) -> None:
    assert get_unit_unit_factor(src, dst) == factor
    assert get_unit_unit_conversion(src, dst)(1.0) == factor


@pytest.mark.parametrize(
    "src,dst",
    [
        ("B", "Flops"),
        ("B/s", "B"),
        ("MB", "MB/s"),
        ("W", "J"),
        ("degC", "degF"),
        ("%", "B"),
        ("B/s", "B/cyc"),
    ],
)
def test_incompatible_units(src: str, dst: str) -> None:
    with pytest.raises(UnitError, match="different measures"):
        get_unit_unit_factor(src, dst)
    if {src, dst} != {"degC", "degF"}:
        with pytest.raises(UnitError, match="different measures"):
            get_unit_unit_conversion(src, dst)


def test_invalid_unit_arguments() -> None:
    with pytest.raises(UnitError, match="invalid unit 'Volts'"):
        get_unit_unit_factor("Volts", "B")
    with pytest.raises(UnitError, match="invalid unit"):
        get_unit_prefix_factor("", "G")
    with pytest.raises(UnitError, match="invalid unit prefix 'X'"):
        get_unit_prefix_factor("kB", "X")
    with pytest.raises(UnitError):
        change_unit_prefix(1.0, "qux", "G")


def test_temperature_conversion() -> None:
    c2f = get_unit_unit_conversion("degC", "°F")
    f2c = get_unit_unit_conversion("degF", "°C")
    assert c2f(100.0) == 212.0
    assert c2f(100) == 212 and type(c2f(100)) is int
    assert f2c(212.0) == 100.0
    assert f2c(100) == 37  # int kind, truncated
    assert c2f("x") == "x"


@pytest.mark.parametrize(
    "unit,prefix,factor,short",
    [
        ("kB", "G", 1e-6, "GB"),
        ("KBytes", "", 1000.0, "B"),
        ("MBytes", "", 1e6, "B"),
        ("MBytes", "G", 1e-3, "GB"),
        ("mb", "M", 1.0, "MB"),
        ("MB/s", "G", 1e-3, "GB/s"),
        ("Flops/s", "G", 1e-9, "GFlops/s"),
        ("MHz", "G", 1e-3, "GHz"),
        ("kB", "Mi", 1000.0 / 1024**2, "MiB"),
        ("s", "u", 1e6, "us"),
        ("%", "K", 1e-3, "K%"),  # upstream sets the prefix on a percentage too
    ],
)
def test_unit_prefix_factor(unit: str, prefix: str, factor: float, short: str) -> None:
    f, new = get_unit_prefix_factor(unit, prefix)
    assert f == factor
    assert new.short == short


@pytest.mark.parametrize(
    "value,unit,prefix,expected,new_unit",
    [
        (16_000_000, "kB", "G", 16, "GB"),  # spec: mem_used 16 000 000 kB -> 16 GB
        (16_000_000.0, "kB", "G", 16.0, "GB"),
        (1_500, "MB", "G", 1, "GB"),  # ints truncate
        (-1_500, "MB", "G", -1, "GB"),  # toward zero
        (1.5, "MB", "K", 1500.0, "KB"),
        (UInt(2048), "KiB", "Mi", UInt(2), "MiB"),
        (True, "kB", "G", True, "GB"),  # other kinds are not touched
        ("12", "kB", "G", "12", "GB"),
        (3_000_000_000, "Hz", "G", 3, "GHz"),
    ],
)
def test_change_unit_prefix(value: Any, unit: str, prefix: str, expected: Any, new_unit: str) -> None:
    got, text = change_unit_prefix(value, unit, prefix)
    assert got == expected and type(got) is type(expected)
    assert text == new_unit


def test_convert_value_kinds() -> None:
    assert convert_value(2.5, 2.0) == 5.0
    assert convert_value(7, 0.5) == 3 and type(convert_value(7, 0.5)) is int
    assert type(convert_value(UInt(7), 2.0)) is UInt
    assert convert_value(None, 2.0) is None
    with pytest.raises(UnitError, match="does not fit"):
        convert_value(10**300, 1e300)


@given(st.sampled_from([k for k in PREFIXES if k not in ("u", "n")]), st.sampled_from(NORMALIZED))
def test_prefixed_units_round_trip(prefix: str, case: tuple[str, str]) -> None:
    """Changing the prefix and back gives the original factor product 1 and a parseable unit."""
    text, short = case
    f1, unit1 = get_unit_prefix_factor(text, prefix)
    f2, unit2 = get_unit_prefix_factor(unit1, parse_unit(text).prefix)  # type: ignore[union-attr]
    assert math.isclose(f1 * f2, 1.0)
    assert unit2.short == short
