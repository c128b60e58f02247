"""The batch writers (`text_a`, `lines_b`): the C accelerator writes exactly what the Python writers
write, message by message, for every value type, escape and precision; and without it the Python
loop gives the same result."""

from __future__ import annotations

import math
import random
import struct

import pytest

from cccollector.sinks import _encode
from cccollector.sinks._encode import LineError, line_a, line_b, lines_b, text_a
from cccommon.message import CCMessage, UInt

T = 1_719_840_000_123_456_789

NAMES = ["cpu_user", "mem used", "a,b", "x=y", "tab\there", "nl\nx", "back\\slash", "trail\\", "", "ü-metric"]
TAG_VALUES = ["node01", "a b", "c,d", "e=f", "", "cr\rx", "\x7fdel", "snow☃", "end\\", "0"]


def _floats(rng: random.Random) -> list[float]:
    fixed = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        1e-4,
        9.9999e-5,
        1e-5,
        123456.0,
        999999.0,
        1e6,
        1234567.0,
        1e21,
        1e22,
        5e-324,
        1.7976931348623157e308,
        0.1,
        2.5e-7,
        100.0,
        12345678.0,
        3.0e15,
    ]
    rand = [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(300)]
    scaled = [rng.uniform(-1, 1) * 10 ** rng.randint(-12, 12) for _ in range(300)]
    return fixed + [x for x in rand + scaled if math.isfinite(x)]


def _messages(seed: int = 7) -> list[CCMessage]:
    rng = random.Random(seed)
    values: list[object] = [
        *_floats(rng),
        0,
        7,
        -3,
        2**63 - 1,
        2**63,
        -(2**64),
        True,
        False,
        UInt(5),
        'text "q" \\',
        math.nan,
        math.inf,
        -math.inf,
    ]
    out = []
    for i, v in enumerate(values):
        tags = {}
        for _ in range(rng.randint(0, 4)):
            tags[rng.choice(["type", "type-id", "hostname", "unit", "a b", "k=v", "z", "ä"])] = rng.choice(
                TAG_VALUES
            )
        name = NAMES[i % len(NAMES)]
        t = rng.choice([T, 0, 1, 1_000_000_000])
        out.append(CCMessage(name, tags, {"source": "x"}, {"value": v}, t))
    # several fields, no value field, a non-str tag value (from a careless plug-in)
    out.append(CCMessage("multi", {"b": "1", "a": "2"}, {}, {"z": 1.5, "value": 2, "b": "s"}, T))
    out.append(CCMessage("ev", {}, {}, {"event": "boot"}, T))
    out.append(CCMessage("odd", {"n": 5}, {}, {"value": 1.0}, T))  # type: ignore[dict-item]
    out.append(
        CCMessage("late", {"many": "x", **{f"t{i:02d}": str(i) for i in range(40)}}, {}, {"value": 1.0}, T)
    )
    return out


def _py_a(msgs: list[CCMessage], unit: int) -> str:
    return "".join(line_a(m, unit) + "\n" for m in msgs)


def _py_b(msgs: list[CCMessage], unit: int) -> tuple[list[str], list[str]]:
    lines, bad = [], []
    for m in msgs:
        try:
            lines.append(line_b(m, unit))
        except (LineError, TypeError, ValueError):
            bad.append(m.name)
    return lines, bad


needs_c = pytest.mark.skipif(_encode._lpenc is None, reason="cccommon._lpenc not built (no C compiler)")


@needs_c
@pytest.mark.parametrize("unit", [1, 1_000, 1_000_000, 1_000_000_000])
def test_c_writer_a_equals_python(unit: int) -> None:
    msgs = [m for m in _messages() if m.name != "odd"]
    assert text_a(msgs, unit) == _py_a(msgs, unit)


@needs_c
@pytest.mark.parametrize("unit", [1, 1_000, 1_000_000, 1_000_000_000])
def test_c_writer_b_equals_python(unit: int) -> None:
    msgs = [m for m in _messages() if m.name != "odd"]
    errors: list[str] = []
    got = lines_b(msgs, unit, lambda m, e: errors.append(m.name))
    want, bad = _py_b(msgs, unit)
    assert got == want
    assert errors == bad
    assert len(bad) > 10  # the refused names, keys, tag values and NaN/Inf were exercised


def test_python_fallback_gives_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    msgs = [m for m in _messages(11) if m.name != "odd"]
    with_c_a = text_a(msgs, 1_000)
    with_c_b = lines_b(msgs, 1, lambda m, e: None)
    monkeypatch.setattr(_encode, "_lpenc", None)
    assert text_a(msgs, 1_000) == with_c_a == _py_a(msgs, 1_000)
    assert lines_b(msgs, 1, lambda m, e: None) == with_c_b


@needs_c
def test_c_writer_hands_unusual_messages_to_python() -> None:
    # a non-str tag value is not the C writer's business: the Python writer gets the message
    odd = CCMessage("odd", {"n": 5}, {}, {"value": 1.0}, T)  # type: ignore[dict-item]
    calls: list[CCMessage] = []

    def fb(m: CCMessage) -> str:
        calls.append(m)
        return "odd line"

    assert _encode._lpenc.encode([odd], 1, 0, fb, True) == "odd line\n"
    assert _encode._lpenc.encode([odd, odd], 1, 1, lambda m: None, False) == []
    assert calls == [odd]
    with pytest.raises(TypeError):
        _encode._lpenc.encode([odd], 1, 0, lambda m: 5, True)
    with pytest.raises(ZeroDivisionError):
        _encode._lpenc.encode([odd], 1, 0, lambda m: 1 / 0, True)
    with pytest.raises(ValueError):
        _encode._lpenc.encode([], 0, 0, fb, True)
    with pytest.raises(AttributeError):
        _encode._lpenc.encode([object()], 1, 0, fb, True)


def test_real_collector_shape() -> None:
    tags = {"type": "hwthread", "type-id": "3", "unit": "Percent", "hostname": "node01"}
    msgs = [
        CCMessage("cpu_user", dict(tags), {}, {"value": 12.5}, T),
        CCMessage("mem_used", {"type": "node"}, {}, {"value": 2.4e7}, T),
    ]
    assert text_a(msgs) == (
        f"cpu_user,hostname=node01,type=hwthread,type-id=3,unit=Percent value=12.5 {T}\n"
        f"mem_used,type=node value=2.4e+07 {T}\n"
    )
    assert lines_b(msgs, 10**9, lambda m, e: None) == [
        "cpu_user,hostname=node01,type=hwthread,type-id=3,unit=Percent value=12.5 1719840000",
        "mem_used,type=node value=2.4e+07 1719840000",
    ]
