"""Go duration syntax, since upstream configs carry values like `48h` and `1h30m`."""

import pytest

from cccommon.durations import format_duration, parse_duration, parse_duration_ns


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("48h", 172800.0),
        ("12h", 43200.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("90s", 90.0),
        ("0", 0.0),
        ("-0", 0.0),
        ("+5m", 300.0),
        ("-1.5s", -1.5),
        ("500ms", 0.5),
        ("1us", 1e-6),
        ("1µs", 1e-6),
        ("1μs", 1e-6),
        ("3ns", 3e-9),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("1h1m1s1ms", 3661.001),
        ("0s", 0.0),
    ],
)
def test_parse_valid(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "-", "+", "1", "1d", "h", ".s", "1.2.3s", "1 h", "1H", "abc", "10", "1e3s"]
)
def test_parse_invalid(text):
    with pytest.raises(ValueError, match="time: "):
        parse_duration(text)


def test_nanoseconds_exact_and_overflow():
    assert parse_duration_ns("1.000000001s") == 1_000_000_001
    assert parse_duration_ns("2562047h47m16.854775807s") == (1 << 63) - 1
    with pytest.raises(ValueError):
        parse_duration_ns("2562048h")


@pytest.mark.parametrize(
    "seconds,text",
    [
        (0.0, "0s"),
        (5400.0, "1h30m0s"),
        (172800.0, "48h0m0s"),
        (90.0, "1m30s"),
        (1.5, "1.5s"),
        (0.5, "500ms"),
        (0.0015, "1.5ms"),
        (1.5e-6, "1.5µs"),
        (3e-9, "3ns"),
        (-90.0, "-1m30s"),
        (3600, "1h0m0s"),
    ],
)
def test_format(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["1h30m0s", "48h0m0s", "1m30.25s", "250ms", "-2h0m1s"])
def test_roundtrip(text):
    assert format_duration(parse_duration(text)) == text
