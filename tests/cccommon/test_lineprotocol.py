"""cccommon.lineprotocol: the general parser, the formatter and the metric store's fast path.

Sections:
  1. parse_line / parse_lines (value types, escapes, timestamps, comments, CRLF, errors)
  2. timestamp normalisation
  3. go_float / format_value / format_line / format_lines
  4. format -> parse round trips (hypothesis)
  5. decode_store_batch: documented rules, and "every decoding path gives the same result"
  6. a large realistic body

`decode_store_batch` has three ways of decoding a line, and they must agree:
  * U: the whole-body path for bodies where every line is `prefix value=NUM TS` without escapes,
    quotes, comments, tabs or CRs: `_decode_uniform` in Python, or `_decode_uniform_c` when the C
    accelerator `cccommon._lpscan` is built (which also takes lines without a timestamp);
  * L: `_decode_lines`, one regular expression per line for the usual `prefix value=NUM[ TS]` shape;
  * S: `_slow_line`, the general parser, for every other line (escapes, quotes, leading blanks...).
Through the public API, `via_lines` (append a comment line: U declines the whole body) forces L,
and an extra tag with an escaped space inserted after the measurement (`zz=a\\ b`, ignored by the
key) forces S for that line. The private entry points are also called directly where the test is
about one path.

All store tests use metric mappings that live for the whole module: the prefix cache of
`decode_store_batch` is keyed by `id(metrics)` (see test_prefix_cache_follows_the_metrics_mapping),
so a short-lived mapping could pick up another mapping's stale cache.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cccommon import lineprotocol as lp
from cccommon.lineprotocol import (
    Line,
    LineProtocolError,
    StoreBatch,
    UInt,
    decode_store_batch,
    format_line,
    format_lines,
    format_value,
    go_float,
    normalize_timestamp,
    normalize_timestamp_ns,
    normalize_timestamps,
    parse_line,
    parse_lines,
)
from cccommon.message import UInt as MessageUInt

T0 = 1_700_000_000  # a realistic instant in Unix seconds
NOW = 1_699_999_999

NODE_METRICS = [
    "cpu_load",
    "cpu_user",
    "mem_used",
    "mem_bw",
    "flops_any",
    "net_bytes_in",
    "net_bytes_out",
    "ib_recv",
    "ib_xmit",
    "lustre_read_bw",
    "lustre_write_bw",
    "nfs4_read",
    "nfs4_write",
    "disk_free",
    "cpu_power",
    "mem_power",
    "acc_utilization",
    "acc_mem_used",
    "acc_power",
    "job_count",
]
HWTHREAD_METRICS = ["cpu_load_core", "clock", "ipc", "flops_dp", "flops_sp"]
METRICS: dict[str, int] = {name: i for i, name in enumerate(NODE_METRICS + HWTHREAD_METRICS)}
assert len(METRICS) == 25

_KEEP_ALIVE: list[object] = []  # mappings of tests that must never be freed (id-keyed cache)


# ----------------------------------------------------------------------------- helpers


def key(metric: str, cluster: str, host: str, tcomp: str = "", scomp: str = "") -> str:
    return f"{metric}\x00{cluster}\x00{host}\x00{tcomp}\x00{scomp}"


def decode(body: bytes | str, metrics=METRICS, cluster: str = "fritz", now: int = NOW) -> StoreBatch:
    return decode_store_batch(body, metrics, cluster, now)


def via_lines(body: bytes) -> bytes:
    """The same lines with a trailing comment: the whole-body path declines, lines go one by one."""
    return body + b"\n# decode line by line\n"


def slowify(line: str) -> str:
    """The same line with an ignored extra tag holding an escape, so it takes the general parser.

    Only for lines without leading blanks whose measurement has no escapes."""
    cut = min((i for i in (line.find(","), line.find(" ")) if i >= 0), default=len(line))
    return line[:cut] + ",zz=a\\ b" + line[cut:]


def via_slow(body: bytes) -> bytes:
    out = []
    for raw in body.split(b"\n"):
        text = raw.decode()
        if text.strip() and not text.lstrip().startswith("#"):
            text = slowify(text)
        out.append(text)
    return "\n".join(out).encode()


def uniform_decoders() -> list:
    """The whole-body decoders: the Python one, and the C accelerator's when it is built."""
    out = [pytest.param(lp._decode_uniform, id="python")]
    if getattr(lp, "_lpscan", None) is not None and hasattr(lp, "_decode_uniform_c"):
        out.append(pytest.param(lp._decode_uniform_c, id="c"))
    return out


UNIFORM_DECODERS = [p.values[0] for p in uniform_decoders()]


def summary(b: StoreBatch) -> tuple:
    """Comparable content of a batch (values compared bit for bit, -0.0 included)."""
    assert b.values.dtype == np.float64
    assert b.times.dtype == np.int64
    assert len(b.keys) == len(b.values) == len(b.times)
    return (
        list(b.keys),
        [v.hex() for v in b.values.tolist()],
        b.times.tolist(),
        [e.line for e in b.errors],
        b.unknown_metric,
        b.no_cluster_or_host,
        b.unsafe_name,
    )


def model_decode(body: bytes, metrics, default_cluster: str, now: int) -> tuple:
    """What decode_store_batch must return, written from docs/internals.md on top of parse_line.

    Bodies given to this model have no unknown-metric line with a syntax error (the store skips
    those as unknown without parsing them, see test_unknown_metric_is_not_parsed)."""
    keys, vals, times, err_lines = [], [], [], []
    unknown = no_host = unsafe = 0
    last = now  # a missing timestamp takes the previous accepted line's, the first one `now`
    for lineno, raw in enumerate(body.split(b"\n"), 1):
        text = raw.decode("utf-8")
        if text.endswith("\r"):
            text = text[:-1]
        try:
            line = parse_line(text, lineno)
        except LineProtocolError:
            err_lines.append(lineno)
            continue
        if line is None:
            continue
        if line.measurement not in metrics:
            unknown += 1
            continue
        value = line.fields.get("value")
        if set(line.fields) != {"value"} or isinstance(value, str | bool):
            err_lines.append(lineno)
            continue
        tags = line.tags
        cluster = tags.get("cluster") or default_cluster
        host = tags.get("hostname") or tags.get("host") or ""
        if not cluster or not host:
            no_host += 1
            continue
        if any(bad in name for name in (cluster, host) for bad in ("..", "/", "\\")):
            unsafe += 1
            continue
        typ = tags.get("type", "")
        tcomp = ("" if typ == "node" else typ) + tags.get("type-id", "")
        scomp = tags.get("stype", "") + tags.get("stype-id", "") if tcomp else ""
        if line.time is not None:
            last = normalize_timestamp(line.time)
        keys.append(key(line.measurement, cluster, host, tcomp, scomp))
        vals.append(float(value).hex())
        times.append(last)
    return (keys, vals, times, err_lines, unknown, no_host, unsafe)


def same_value(a, b) -> bool:
    """Equal and of the same type (True is not 1, UInt(1) is not 1), -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b


def same_line(a: Line, b: Line) -> bool:
    return (
        a.measurement == b.measurement
        and a.tags == b.tags
        and a.time == b.time
        and list(a.fields) == list(b.fields)
        and all(same_value(a.fields[k], b.fields[k]) for k in a.fields)
    )


# ============================================================================= 1. parser

# ----------------------------------------------------------------------------- value types


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("1E3", 1000.0),
        ("1e+06", 1e6),
        ("2.5e-05", 2.5e-05),
        ("-2", -2.0),
        ("+2", 2.0),
        ("0", 0.0),
        ("-0", -0.0),
        ("1.", 1.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("007", 7.0),
        ("1.7976931348623157e+308", 1.7976931348623157e308),
        ("5e-324", 5e-324),
        ("5i", 5),
        ("-5i", -5),
        ("0i", 0),
        ("+5i", 5),
        ("9223372036854775807i", 2**63 - 1),
        ("-9223372036854775808i", -(2**63)),
        ("5u", UInt(5)),
        ("0u", UInt(0)),
        ("18446744073709551615u", UInt(2**64 - 1)),
        ("t", True),
        ("T", True),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("f", False),
        ("F", False),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ('"hello"', "hello"),
        ('""', ""),
        ('"with space, comma=equals"', "with space, comma=equals"),
        ('"esc \\"quote\\" and \\\\ backslash"', 'esc "quote" and \\ backslash'),
        ('"other \\x escapes stay"', "other \\x escapes stay"),
        ('"trailing backslash \\\\"', "trailing backslash \\"),
        ('"unicode äöü ✓"', "unicode äöü ✓"),
    ],
)
def test_field_value_types(raw, expected):
    line = parse_line(f"m,t=v f={raw} {T0}")
    assert line is not None
    got = line.fields["f"]
    assert same_value(got, expected), (got, expected)


def test_uint_is_the_message_uint():
    v = parse_line("m f=7u").fields["f"]
    assert isinstance(v, MessageUInt) and UInt is MessageUInt
    assert v == 7 and isinstance(v, int)


def test_float_field_is_float_not_int():
    assert type(parse_line("m f=3").fields["f"]) is float
    assert type(parse_line("m f=3i").fields["f"]) is int


def test_several_fields_keep_their_order_and_types():
    line = parse_line('cpu,host=a v=1,i=2i,u=3u,b=t,s="x y" 5')
    assert line == Line("cpu", {"host": "a"}, {"v": 1.0, "i": 2, "u": UInt(3), "b": True, "s": "x y"}, 5)
    assert list(line.fields) == ["v", "i", "u", "b", "s"]
    assert type(line.fields["u"]) is UInt and type(line.fields["b"]) is bool


def test_minimal_line_has_no_tags_and_no_time():
    assert parse_line("m value=1") == Line("m", {}, {"value": 1.0}, None)


def test_repeated_tag_keeps_the_last_value():
    assert parse_line("m,t=a,t=b f=1").tags == {"t": "b"}


# ----------------------------------------------------------------------------- escapes


@pytest.mark.parametrize(
    "text, measurement, tags, fields",
    [
        ("my\\ metric f=1", "my metric", {}, {"f": 1.0}),
        ("my\\,metric f=1", "my,metric", {}, {"f": 1.0}),
        # `=` needs no escape in a measurement, a backslash before other characters is literal
        ("a=b f=1", "a=b", {}, {"f": 1.0}),
        ("a\\b f=1", "a\\b", {}, {"f": 1.0}),
        ("a\\=b f=1", "a\\=b", {}, {"f": 1.0}),
        ("m,t\\ k=v f=1", "m", {"t k": "v"}, {"f": 1.0}),
        ("m,t\\,k=v f=1", "m", {"t,k": "v"}, {"f": 1.0}),
        ("m,t\\=k=v f=1", "m", {"t=k": "v"}, {"f": 1.0}),
        ("m,t=v\\ w f=1", "m", {"t": "v w"}, {"f": 1.0}),
        ("m,t=v\\,w f=1", "m", {"t": "v,w"}, {"f": 1.0}),
        ("m,t=v\\=w f=1", "m", {"t": "v=w"}, {"f": 1.0}),
        ("m,t=a\\b f=1", "m", {"t": "a\\b"}, {"f": 1.0}),
        ("m,t=\\\\\\ x f=1", "m", {"t": "\\\\ x"}, {"f": 1.0}),
        ("m f\\ k=1", "m", {}, {"f k": 1.0}),
        ("m f\\,k=1", "m", {}, {"f,k": 1.0}),
        ("m f\\=k=1", "m", {}, {"f=k": 1.0}),
        ('m,t="q" f=1', "m", {"t": '"q"'}, {"f": 1.0}),
        ("m,t=#x f=1", "m", {"t": "#x"}, {"f": 1.0}),
        ('m s="a\\"b"', "m", {}, {"s": 'a"b'}),
        ('m s="a\\\\b"', "m", {}, {"s": "a\\b"}),
        ('m s="a,b c=d"', "m", {}, {"s": "a,b c=d"}),
        ("\\#m f=1", "\\#m", {}, {"f": 1.0}),
        ("m,ü=ö f=1", "m", {"ü": "ö"}, {"f": 1.0}),
    ],
)
def test_escapes(text, measurement, tags, fields):
    line = parse_line(text)
    assert line is not None
    assert (line.measurement, line.tags, line.fields) == (measurement, tags, fields)


# ----------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "ts",
    [
        T0,
        T0 * 1000 + 123,
        T0 * 1_000_000 + 123_456,
        T0 * 1_000_000_000 + 123_456_789,
    ],
    ids=["s", "ms", "us", "ns"],
)
def test_timestamp_precisions_normalise_to_the_same_second(ts):
    line = parse_line(f"m,host=a value=1 {ts}")
    assert line.time == ts  # as written on the wire
    assert normalize_timestamp(line.time) == T0
    assert normalize_timestamp_ns(ts) // 1_000_000_000 == T0


@pytest.mark.parametrize(
    "text, time",
    [
        ("m f=1", None),
        ("m f=1 0", 0),
        ("m f=1 -5", -5),
        ("m f=1 +5", 5),
        ("m f=1 0005", 5),
        ("m f=1 9223372036854775807", 2**63 - 1),
        ("m f=1 -9223372036854775808", -(2**63)),
        ("m  f=1   5  ", 5),
        ("m f=1 5\t", 5),
        ("m f=1 5\r", 5),
        ("m f=1 ", None),
    ],
)
def test_timestamp_syntax(text, time):
    assert parse_line(text).time == time


# ----------------------------------------------------------------------------- blank lines, comments, CRLF


@pytest.mark.parametrize("text", ["", " ", "\t", "  \t ", "#", "# comment", "   # indented comment", "\t#x"])
def test_blank_and_comment_lines_are_none(text):
    assert parse_line(text) is None


def test_parse_lines_skips_blank_lines_and_comments():
    lines, errors = parse_lines("# header\n\na f=1\n  \n# between\nb f=2 5\n")
    assert errors == []
    assert lines == [Line("a", {}, {"f": 1.0}), Line("b", {}, {"f": 2.0}, 5)]


def test_parse_lines_accepts_crlf():
    body = b"a,t=x f=1 5\r\n\r\n# c\r\nb f=2\r\n"
    lines, errors = parse_lines(body)
    assert errors == []
    assert lines == [Line("a", {"t": "x"}, {"f": 1.0}, 5), Line("b", {}, {"f": 2.0})]
    assert parse_lines(body.decode()) == (lines, errors)


def test_parse_lines_bytes_and_str_agree():
    text = 'a,h=x v=1,s="ü" 5\nbad\n\nb v=2i'
    lb, eb = parse_lines(text.encode())
    ls, es = parse_lines(text)
    assert lb == ls
    assert [(e.line, e.column, e.reason) for e in eb] == [(e.line, e.column, e.reason) for e in es]


def test_parse_lines_empty_input():
    assert parse_lines(b"") == ([], [])
    assert parse_lines("\n\n") == ([], [])


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "text, column, words",
    [
        ("m", 2, "field"),  # missing field set
        ("m,t=v", 6, "field"),
        ("m ", 3, "field"),
        ("m,t=v ", 7, "field"),
        ("m f", 4, "field"),  # field without `=`
        ("m =1", 3, "empty field key"),
        ("m f=", 5, "field value"),
        ("m f=1,", 7, "field"),
        ("m f=abc", 5, "invalid field value"),
        ("m f=1.5.5", 5, "invalid field value"),
        ("m f=1i9", 5, "invalid field value"),
        ("m f=1.5i", 5, "invalid field value"),
        ("m f=-5u", 5, "invalid field value"),
        ("m f=nan", 5, "invalid field value"),
        ("m f=inf", 5, "invalid field value"),
        ("m f=yes", 5, "invalid field value"),
        ("m f=tRUE", 5, "invalid field value"),
        ("m f=1_000", 5, "invalid field value"),
        ("m f=9223372036854775808i", 5, "out of range"),
        ("m f=18446744073709551616u", 5, "out of range"),
        ("m f=1e999", 5, "out of range"),
        ('m f="abc', 5, "unterminated string"),
        ('m f="abc\\"', 5, "unterminated string"),
        ("m,=v f=1", 3, "empty tag key"),
        ("m,t f=1", 4, "tag key"),  # tag without `=` and value
        ("m,t= f=1", 5, "tag value"),
        ("m,t=v, f=1", 7, "tag key"),
        (",t=v f=1", 1, "measurement"),
        (" ,t=v f=1", 2, "measurement"),
        ("m f=1 12a", 7, "invalid timestamp"),
        ("m f=1 1.5", 7, "invalid timestamp"),
        ("m f=1 0x10", 7, "invalid timestamp"),
        ("m f=1 1_000", 7, "invalid timestamp"),
        ("m f=1 9223372036854775808", 7, "out of range"),
        ("m f=1 -9223372036854775809", 7, "out of range"),
        ("m f=1 1 2", 8, "unexpected text"),
        ("m\x00 f=1", 2, "NUL"),
        ("m f=1 \x005", 7, "NUL"),
    ],
)
def test_parse_errors(text, column, words):
    with pytest.raises(LineProtocolError) as ei:
        parse_line(text, 7)
    e = ei.value
    assert isinstance(e, ValueError)
    assert e.line == 7
    assert e.column == column
    assert e.reason.strip() and words.lower() in e.reason.lower(), e.reason
    assert str(e) == f"at line 7:{column}: {e.reason}"


def test_parse_lines_reports_bad_lines_by_number_and_keeps_good_ones():
    body = "\n".join(
        [
            "# comment",  # 1
            "good,a=1 v=1 5",  # 2
            "m f=abc",  # 3 bad value
            "",  # 4
            'm s="open',  # 5 unterminated
            "good,b=2 v=2",  # 6
            "m,=v f=1",  # 7 empty tag key
            "m,t f=1",  # 8 tag without value
            "m f=1 12a",  # 9 bad timestamp
            "m",  # 10 missing field
            "good v=3i 7",  # 11
        ]
    )
    lines, errors = parse_lines(body)
    assert [(ln.measurement, ln.tags, ln.fields, ln.time) for ln in lines] == [
        ("good", {"a": "1"}, {"v": 1.0}, 5),
        ("good", {"b": "2"}, {"v": 2.0}, None),
        ("good", {}, {"v": 3}, 7),
    ]
    assert [e.line for e in errors] == [3, 5, 7, 8, 9, 10]
    assert all(isinstance(e, LineProtocolError) and e.reason and e.column >= 1 for e in errors)


def test_parse_lines_reports_invalid_utf8():
    lines, errors = parse_lines(b"a f=1\nb\xff f=1\nc f=2")
    assert [ln.measurement for ln in lines] == ["a", "c"]
    assert [(e.line, e.column) for e in errors] == [(2, 2)]
    assert "UTF-8" in errors[0].reason


def test_error_pickles_with_its_fields():
    import pickle

    e = pickle.loads(pickle.dumps(LineProtocolError(3, 4, "bad thing")))
    assert (e.line, e.column, e.reason, str(e)) == (3, 4, "bad thing", "at line 3:4: bad thing")


# ============================================================================= 2. timestamps


@pytest.mark.parametrize(
    "ts, seconds",
    [
        (0, 0),
        (1, 1),
        (-1, -1),
        (9_223_372_036, 9_223_372_036),  # largest value read as seconds
        (9_223_372_037, 9_223_372),  # smallest read as milliseconds
        (9_223_372_036_854, 9_223_372_036),  # largest ms
        (9_223_372_036_855, 9_223_372),  # smallest us
        (9_223_372_036_854_775, 9_223_372_036),  # largest us
        (9_223_372_036_854_776, 9_223_372),  # smallest ns
        (2**63 - 1, 9_223_372_036),
        (-1_700_000_000_500, -1_700_000_000),  # negative: truncated toward zero
        (-(2**63) + 1, -9_223_372_036),
    ],
)
def test_normalize_timestamp_boundaries(ts, seconds):
    assert normalize_timestamp(ts) == seconds
    assert normalize_timestamps(np.array([ts], dtype=np.int64)).tolist() == [seconds]


@pytest.mark.parametrize(
    "ts, ns",
    [
        (T0, T0 * 10**9),
        (T0 * 1000 + 1, (T0 * 1000 + 1) * 10**6),
        (T0 * 10**6 + 1, (T0 * 10**6 + 1) * 1000),
        (T0 * 10**9 + 1, T0 * 10**9 + 1),
        (0, 0),
        (-5, -5 * 10**9),
    ],
)
def test_normalize_timestamp_ns(ts, ns):
    assert normalize_timestamp_ns(ts) == ns


# seconds for which the same instant is representable (and detected) in all four precisions
_all_precisions = st.integers(9_223_373, 9_223_372_036)


@given(s=_all_precisions, ms=st.integers(0, 999), us=st.integers(0, 999_999), ns=st.integers(0, 999_999_999))
def test_same_instant_in_every_precision_gives_the_same_second(s, ms, us, ns):
    stamps = [s, s * 1000 + ms, s * 10**6 + us, s * 10**9 + ns]
    assert [normalize_timestamp(t) for t in stamps] == [s] * 4
    assert normalize_timestamps(np.array(stamps, dtype=np.int64)).tolist() == [s] * 4
    assert [normalize_timestamp_ns(t) for t in stamps] == [
        s * 10**9,
        (s * 1000 + ms) * 10**6,
        (s * 10**6 + us) * 1000,
        s * 10**9 + ns,
    ]


@given(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=20))
def test_vectorised_normalisation_matches_scalar_for_non_negative(stamps):
    got = normalize_timestamps(np.array(stamps, dtype=np.int64))
    assert got.dtype == np.int64
    assert got.tolist() == [normalize_timestamp(t) for t in stamps]
    assert [normalize_timestamp_ns(t) // 10**9 for t in stamps] == got.tolist()


def test_normalize_timestamp_negative_ns_truncates_toward_zero():
    ts = -9_000_000_000_999_999_999
    assert normalize_timestamps(np.array([ts], dtype=np.int64)).tolist() == [-9_000_000_000]
    assert normalize_timestamp(ts) == -9_000_000_000


def test_normalize_timestamps_int64_min():
    ts = -(2**63)
    assert normalize_timestamp(ts) == -9_223_372_036
    assert normalize_timestamps(np.array([ts], dtype=np.int64)).tolist() == [-9_223_372_036]


# ============================================================================= 3. formatting

# ----------------------------------------------------------------------------- go_float


@pytest.mark.parametrize(
    "x, text",
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (-2.0, "-2"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (100.0, "100"),
        (123456.0, "123456"),
        (999999.0, "999999"),
        (123456.789, "123456.789"),
        (1e6, "1e+06"),  # strconv 'g' with shortest precision: %e once the exponent reaches 6
        (1234567.0, "1.234567e+06"),
        (12345678.9, "1.23456789e+07"),
        (1e20, "1e+20"),
        (1e21, "1e+21"),
        (1e100, "1e+100"),
        (0.0001, "0.0001"),  # exponent -4: still %f
        (0.000123, "0.000123"),
        (0.00001, "1e-05"),  # exponent -5: %e
        (2.5e-05, "2.5e-05"),
        (1.5e-07, "1.5e-07"),
        (-1.5e-07, "-1.5e-07"),
        (1 / 3, "0.3333333333333333"),
        (2 / 3 * 1e6, "666666.6666666666"),
        (5e-324, "5e-324"),
        (2.2250738585072014e-308, "2.2250738585072014e-308"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (float(2**53), "9.007199254740992e+15"),
    ],
)
def test_go_float(x, text):
    assert go_float(x) == text


def reference_go_float(x: float) -> str:
    """strconv.FormatFloat(x, 'g', -1, 64) from Python's shortest repr, via Decimal."""
    if x == 0.0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    d = Decimal(repr(x)).normalize()
    sign, digits, exp = d.as_tuple()
    ds = "".join(map(str, digits))
    e10 = len(ds) - 1 + exp  # decimal exponent of the first digit
    s = "-" if sign else ""
    if e10 < -4 or e10 >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{s}{mant}e{'-' if e10 < 0 else '+'}{abs(e10):02d}"
    return s + format(abs(d), "f")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_go_float_matches_reference_and_round_trips(x):
    text = go_float(x)
    assert text == reference_go_float(x)
    back = float(text)
    assert back == x and math.copysign(1.0, back) == math.copysign(1.0, x)
    assert lp._FLOAT_RE.match(text)  # the parser reads it back as a float, never as an int/bool


# ----------------------------------------------------------------------------- format_value


@pytest.mark.parametrize(
    "value, text",
    [
        (True, "true"),
        (False, "false"),
        (5, "5i"),
        (-5, "-5i"),
        (0, "0i"),
        (2**63 - 1, "9223372036854775807i"),
        (UInt(5), "5u"),
        (UInt(0), "0u"),
        (UInt(2**64 - 1), "18446744073709551615u"),
        (1.0, "1"),
        (1.5, "1.5"),
        (-0.0, "-0"),
        (1e6, "1e+06"),
        ("abc", '"abc"'),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("a,b c=d", '"a,b c=d"'),
        ("line\nbreak", '"line\\nbreak"'),
        ("cr\r", '"cr\\r"'),
        ("tab\t", '"tab\\t"'),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_format_value_rejects_non_finite(value):
    with pytest.raises(ValueError):
        format_value(value)


@pytest.mark.parametrize("value", [None, b"bytes", [1], {"a": 1}])
def test_format_value_rejects_other_types(value):
    with pytest.raises(TypeError):
        format_value(value)


# ----------------------------------------------------------------------------- format_line / format_lines


def test_format_line_sorts_tags_and_types_values():
    text = format_line(
        "cpu_load",
        {"type": "hwthread", "hostname": "f0101", "cluster": "fritz", "type-id": "3"},
        {"value": 1.5, "i": 2, "u": UInt(3), "b": False, "s": "x"},
        T0,
    )
    assert (
        text
        == f'cpu_load,cluster=fritz,hostname=f0101,type=hwthread,type-id=3 value=1.5,i=2i,u=3u,b=false,s="x" {T0}'
    )


def test_format_line_without_tags_and_time():
    assert format_line("m", {}, {"value": 2.0}) == "m value=2"
    assert format_line("m", {}, {"value": 2.0}, None) == "m value=2"
    assert format_line("m", {}, {"value": 2.0}, 0) == "m value=2 0"


def test_format_line_escapes():
    text = format_line(
        "my metric,x=y",
        {"b key": "v,w", "a=k": "p q=r"},
        {"f k,=": 'q"\\'},
        -5,
    )
    assert text == 'my\\ metric\\,x=y,a\\=k=p\\ q\\=r,b\\ key=v\\,w f\\ k\\,\\=="q\\"\\\\" -5'
    assert parse_line(text) == Line("my metric,x=y", {"a=k": "p q=r", "b key": "v,w"}, {"f k,=": 'q"\\'}, -5)


def test_format_line_keeps_backslashes_that_need_no_escape():
    text = format_line("a\\b", {"k\\x": "\\v"}, {"f": 1.0})
    assert text == "a\\b,k\\x=\\v f=1"
    assert parse_line(text) == Line("a\\b", {"k\\x": "\\v"}, {"f": 1.0})


def test_format_lines_terminates_every_line():
    lines = [Line("a", {"t": "1"}, {"v": 1.0}, 5), Line("b", {}, {"s": "x"}, None)]
    data = format_lines(lines)
    assert isinstance(data, bytes)
    assert data == b'a,t=1 v=1 5\nb s="x"\n'
    assert format_lines([]) == b""
    assert format_lines(iter(lines)) == data
    assert parse_lines(data) == (lines, [])


# ============================================================================= 4. round trips
#
# What the dialect can represent, and so what the strategies generate:
#  * no "\n", "\r" or NUL anywhere: the formatter does not escape newlines in names (a newline ends
#    the line), the parser strips a trailing CR and rejects NUL bytes;
#  * names (measurement, tag keys/values, field keys) do not end in a backslash: a trailing "\" is
#    written as is and then escapes the separator that follows it (`a\ value=1`);
#  * the measurement does not start with "#" (the line would be a comment) nor with a tab (leading
#    blanks are skipped; a leading space is escaped, so it is allowed);
#  * names and tag values are non-empty and there is at least one field (an empty field set cannot
#    be written);
#  * string field values may hold any character but NUL ("\n", "\r", "\t" are written as escapes,
#    see test_string_control_escapes_round_trip);
#  * integers are int64, unsigned integers uint64, floats finite, timestamps int64.

_NAME_ALPHABET = st.characters(exclude_characters="\n\r\x00", exclude_categories=("Cs",))
_SPECIAL_CHARS = st.sampled_from([" ", ",", "=", '"', "\\", "#", "\t", "a", "é", "\x0b", "\x1c"])


def _name(min_size: int = 1) -> st.SearchStrategy[str]:
    return (
        st.lists(st.one_of(_NAME_ALPHABET, _SPECIAL_CHARS), min_size=min_size, max_size=12)
        .map("".join)
        .filter(lambda s: not s.endswith("\\"))
    )


measurements = _name().filter(lambda s: not s.startswith(("#", "\t")))
tag_maps = st.dictionaries(_name(), _name(), max_size=5)
strings = st.lists(
    st.one_of(st.characters(exclude_characters="\n\r\t\x00", exclude_categories=("Cs",)), _SPECIAL_CHARS),
    max_size=15,
).map(lambda cs: "".join(cs).replace("\t", " "))
field_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**64 - 1).map(UInt),
    st.booleans(),
    strings,
)
field_maps = st.dictionaries(_name(), field_values, min_size=1, max_size=5)
times = st.none() | st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=200, deadline=None)
@given(measurement=measurements, tags=tag_maps, fields=field_maps, time=times)
def test_format_then_parse_round_trips(measurement, tags, fields, time):
    text = format_line(measurement, tags, fields, time)
    assert "\n" not in text
    line = parse_line(text, 3)
    expected = Line(measurement, dict(tags), dict(fields), time)
    assert line is not None and same_line(line, expected), (text, line, expected)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.builds(Line, measurements, tag_maps, field_maps, times), max_size=8),
    st.booleans(),
)
def test_format_lines_then_parse_lines_round_trips(lines, as_text):
    data = format_lines(lines)
    got, errors = parse_lines(data.decode() if as_text else data)
    assert errors == []
    assert len(got) == len(lines)
    assert all(same_line(g, e) for g, e in zip(got, lines, strict=True))


@settings(max_examples=50)
@given(measurements, tag_maps, field_maps, times)
def test_format_line_writes_tags_sorted_by_key(measurement, tags, fields, time):
    text = format_line(measurement, tags, fields, time)
    shuffled = dict(reversed(list(tags.items())))
    assert format_line(measurement, shuffled, fields, time) == text
    assert list(parse_line(text).tags) == sorted(tags)


@pytest.mark.parametrize("s", ["a\nb", "a\rb", "a\tb"], ids=["LF", "CR", "TAB"])
def test_string_control_escapes_round_trip(s):
    text = format_line("m", {}, {"s": s})
    assert "\n" not in text and "\r" not in text
    assert parse_line(text).fields["s"] == s


# ============================================================================= 5. decode_store_batch

# ----------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "line, expected_key",
    [
        ("cpu_load,cluster=alex,hostname=a0101 value=1 5", key("cpu_load", "alex", "a0101")),
        ("cpu_load,hostname=a0101,cluster=alex value=1 5", key("cpu_load", "alex", "a0101")),
        ("cpu_load,cluster=alex,hostname=a0101,type=node value=1 5", key("cpu_load", "alex", "a0101")),
        # type=node is ignored but its type-id kept (as upstream)
        (
            "cpu_load,cluster=alex,hostname=a0101,type=node,type-id=0 value=1 5",
            key("cpu_load", "alex", "a0101", "0"),
        ),
        (
            "ipc,cluster=alex,hostname=a0101,type=hwthread,type-id=3 value=1 5",
            key("ipc", "alex", "a0101", "hwthread3"),
        ),
        (
            "mem_bw,cluster=alex,hostname=a0101,type=socket,type-id=1 value=1 5",
            key("mem_bw", "alex", "a0101", "socket1"),
        ),
        (
            "mem_bw,cluster=alex,hostname=a0101,type=socket,type-id=1,stype=memoryDomain,stype-id=2 value=1 5",
            key("mem_bw", "alex", "a0101", "socket1", "memoryDomain2"),
        ),
        (
            "mem_bw,cluster=alex,hostname=a0101,type=memoryDomain,type-id=0,stype=core value=1 5",
            key("mem_bw", "alex", "a0101", "memoryDomain0", "core"),
        ),
        # a sub-type without a type is dropped
        (
            "mem_bw,cluster=alex,hostname=a0101,stype=memoryDomain,stype-id=2 value=1 5",
            key("mem_bw", "alex", "a0101"),
        ),
        ("ipc,cluster=alex,hostname=a0101,type-id=7 value=1 5", key("ipc", "alex", "a0101", "7")),
        (
            "ipc,cluster=alex,hostname=a0101,type=accelerator value=1 5",
            key("ipc", "alex", "a0101", "accelerator"),
        ),
        # other tags do not matter
        ("ipc,cluster=alex,hostname=a0101,unit=GHz,job=42 value=1 5", key("ipc", "alex", "a0101")),
        # `host` is accepted when `hostname` is missing
        ("ipc,cluster=alex,host=a0102 value=1 5", key("ipc", "alex", "a0102")),
        ("ipc,cluster=alex,host=a0102,hostname=a0101 value=1 5", key("ipc", "alex", "a0101")),
        # missing cluster: the default one
        ("ipc,hostname=f0101 value=1 5", key("ipc", "fritz", "f0101")),
    ],
)
def test_store_keys(line, expected_key):
    for body in (line.encode(), via_lines(line.encode()), slowify(line).encode()):
        b = decode(body)
        assert summary(b) == ([expected_key], [(1.0).hex()], [5], [], 0, 0, 0), body


def test_store_accepts_str_body():
    b = decode("ipc,hostname=f0101 value=2 5")
    assert summary(b) == ([key("ipc", "fritz", "f0101")], [(2.0).hex()], [5], [], 0, 0, 0)


@pytest.mark.parametrize("body", [b"", b"\n", b"\n\n", b"# only a comment\n", b"  \n\t\n"])
def test_store_empty_bodies(body):
    b = decode(body)
    assert summary(b) == ([], [], [], [], 0, 0, 0)


# ----------------------------------------------------------------------------- skip counters


def test_store_missing_hostname_is_counted():
    body = b"ipc,cluster=alex value=1 5\nipc value=2 5\nipc,cluster=alex,hostname=h value=3 5"
    for data in (body, via_lines(body), via_slow(body)):
        b = decode(data)
        assert b.keys == [key("ipc", "alex", "h")]
        assert (b.no_cluster_or_host, b.unknown_metric, b.unsafe_name, b.errors) == (2, 0, 0, [])


def test_store_missing_cluster_without_default_is_counted():
    body = b"ipc,hostname=h value=1 5\nipc,hostname=h,cluster=c value=2 5"
    for data in (body, via_lines(body), via_slow(body)):
        b = decode(data, cluster="")
        assert b.keys == [key("ipc", "c", "h")]
        assert b.no_cluster_or_host == 1


@pytest.mark.parametrize(
    "tags",
    [
        "cluster=..,hostname=h",
        "cluster=a..b,hostname=h",
        "cluster=a/b,hostname=h",
        "hostname=..",
        "hostname=../etc",
        "hostname=a/b",
        "hostname=/",
        "hostname=a\\b",
        "host=a/b",
    ],
)
def test_store_unsafe_names_are_counted(tags):
    body = f"ipc,{tags} value=1 5\nipc,hostname=ok value=2 5".encode()
    for data in (body, via_lines(body), via_slow(body)):
        b = decode(data)
        assert summary(b) == ([key("ipc", "fritz", "ok")], [(2.0).hex()], [5], [], 0, 0, 1), data


def test_store_dots_that_are_not_dotdot_are_safe():
    b = decode(b"ipc,cluster=a.b,hostname=h.x.y value=1 5")
    assert b.keys == [key("ipc", "a.b", "h.x.y")] and b.unsafe_name == 0


def test_store_unknown_metrics_are_counted():
    body = (
        b"nope,hostname=h value=1 5\nipc,hostname=h value=2 5\nalso_nope value=3\nnope,hostname=h value=4 6"
    )
    for data in (body, via_lines(body), via_slow(body)):
        b = decode(data)
        assert summary(b) == ([key("ipc", "fritz", "h")], [(2.0).hex()], [5], [], 3, 0, 0), data


def test_unknown_metric_is_not_parsed():
    """An unknown measurement is skipped as such, whatever the rest of its line (as upstream)."""
    body = b'nope,hostname value=abc\nnope value="str"\nnope,=x other=t 12a\nipc,hostname=h value=1 5'
    for data in (body, via_lines(body)):
        b = decode(data)
        assert summary(b) == ([key("ipc", "fritz", "h")], [(1.0).hex()], [5], [], 3, 0, 0)


def test_store_counters_are_independent():
    body = "\n".join(
        [
            "nope,hostname=h value=1 5",
            "ipc,cluster=c value=1 5",
            "ipc,hostname=x/y value=1 5",
            "ipc,hostname=h value=abc 5",
            "ipc,hostname=h value=7 5",
        ]
    ).encode()
    for data in (body, via_lines(body), via_slow(body)):
        b = decode(data)
        assert summary(b) == ([key("ipc", "fritz", "h")], [(7.0).hex()], [5], [4], 1, 1, 1)


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "raw, value",
    [
        ("1.5", 1.5),
        ("-2", -2.0),
        ("1e3", 1000.0),
        ("1e+06", 1e6),
        ("-0", -0.0),
        ("5.", 5.0),
        (".5", 0.5),
        ("+5", 5.0),
        ("5i", 5.0),
        ("-5i", -5.0),
        ("9223372036854775807i", float(2**63 - 1)),
        ("5u", 5.0),
        ("18446744073709551615u", float(2**64 - 1)),
        ("5e-324", 5e-324),
        ("1.7976931348623157e+308", 1.7976931348623157e308),
    ],
)
def test_store_numeric_values(raw, value):
    line = f"ipc,hostname=h value={raw} 5".encode()
    for data in (line, via_lines(line), via_slow(line)):
        b = decode(data)
        assert summary(b) == ([key("ipc", "fritz", "h")], [value.hex()], [5], [], 0, 0, 0), data


@pytest.mark.parametrize(
    "raw, words",
    [
        ('"12"', "string"),
        ('""', "string"),
        ("t", "bool"),
        ("true", "bool"),
        ("FALSE", "bool"),
        ("abc", "invalid field value"),
        ("nan", "invalid field value"),
        ("inf", "invalid field value"),
        ("1_0", "invalid field value"),
        ("", "field value"),
    ],
)
def test_store_rejects_string_bool_and_bad_values(raw, words):
    body = f"ipc,hostname=a value=1 5\nipc,hostname=h value={raw} 5\nipc,hostname=b value=2 5".encode()
    for data in (body, via_lines(body), via_slow(body)):
        b = decode(data)
        assert b.keys == [key("ipc", "fritz", "a"), key("ipc", "fritz", "b")]
        assert b.values.tolist() == [1.0, 2.0]
        assert [e.line for e in b.errors] == [2]
        assert words in b.errors[0].reason.lower()


@pytest.mark.parametrize("fields", ["other=1", "value=1,other=2", "other=1,value=2", "Value=1"])
def test_store_accepts_only_the_value_field(fields):
    body = f"ipc,hostname=h {fields} 5".encode()
    for data in (body, via_lines(body), via_slow(body)):
        b = decode(data)
        assert b.keys == [] and [e.line for e in b.errors] == [1]
        assert "value" in b.errors[0].reason


# ----------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "ts",
    [T0, T0 * 1000 + 999, T0 * 1_000_000 + 999_999, T0 * 1_000_000_000 + 999_999_999],
    ids=["s", "ms", "us", "ns"],
)
def test_store_normalises_timestamp_precision(ts):
    body = f"ipc,hostname=h value=1 {ts}\nipc,hostname=g value=2 {ts}".encode()
    for data in (body, via_lines(body), via_slow(body)):
        assert decode(data).times.tolist() == [T0, T0]


def test_store_mixed_precisions_in_one_body():
    body = "\n".join(
        f"ipc,hostname=h{i} value={i} {ts}"
        for i, ts in enumerate([T0, (T0 + 1) * 1000, (T0 + 2) * 10**6 + 5, (T0 + 3) * 10**9 + 7])
    ).encode()
    for data in (body, via_lines(body), via_slow(body)):
        assert decode(data).times.tolist() == [T0, T0 + 1, T0 + 2, T0 + 3]


def test_store_line_without_timestamp_gets_now():
    body = b"ipc,hostname=h value=1"
    for data in (body, via_lines(body), via_slow(body)):
        b = decode(data, now=1234)
        assert b.times.tolist() == [1234] and b.times.dtype == np.int64


def test_store_missing_timestamp_takes_the_previous_lines():
    """docs/internals.md: missing -> previous line's, the first -> now."""
    body = b"ipc,hostname=a value=1\nipc,hostname=b value=2 500\nipc,hostname=c value=3\nipc,hostname=d value=4 7000"
    for data in (body, via_lines(body), via_slow(body)):
        b = decode(data, now=1234)
        assert b.times.tolist() == [1234, 500, 500, 7000]


def test_store_crlf_lines():
    body = b"ipc,hostname=a value=1 5\r\nipc,hostname=b value=2\r\n\r\n# c\r\nipc,hostname=c value=x 5\r\n"
    for data in (body, via_slow(body)):
        b = decode(data)
        assert summary(b)[:4] == (
            [key("ipc", "fritz", "a"), key("ipc", "fritz", "b")],
            [(1.0).hex(), (2.0).hex()],
            [5, 5],
            [5],
        )


@pytest.mark.parametrize("ts", ["12a", "1.5", "0x10", "99999999999999999999", "-"])
def test_store_bad_timestamps_are_errors(ts):
    body = f"ipc,hostname=a value=1 5\nipc,hostname=h value=1 {ts}\nipc,hostname=b value=2 6".encode()
    for data in (body, via_lines(body), via_slow(body)):
        b = decode(data)
        assert b.keys == [key("ipc", "fritz", "a"), key("ipc", "fritz", "b")]
        assert b.times.tolist() == [5, 6]
        assert [e.line for e in b.errors] == [2]
        assert "timestamp" in b.errors[0].reason


# ----------------------------------------------------------------------------- errors and line numbers


def test_store_mixed_good_and_bad_lines():
    lines = [
        "# written by a collector",  # 1
        "ipc,hostname=h1 value=1 5",  # 2
        "",  # 3
        "ipc,hostname value=2 5",  # 4 tag without value
        "ipc,=x,hostname=h value=2 5",  # 5 empty tag key
        "ipc,hostname=h2 value=3 6",  # 6
        "ipc,hostname=h value=2 5 extra",  # 7 text after the timestamp
        'ipc,hostname=h value="unterminated 5',  # 8
        "ipc,hostname=h,type=hwthread,type-id=1 value=4 7",  # 9
        "ipc,hostname=h, value=2 5",  # 10 trailing comma
        "ipc,hostname=h value=2 5\x00",  # 11 NUL
        ",hostname=h value=2 5",  # 12 no measurement
        "ipc,hostname=h3 value=5",  # 13 no timestamp
    ]
    body = "\n".join(lines).encode()
    expected = (
        [
            key("ipc", "fritz", "h1"),
            key("ipc", "fritz", "h2"),
            key("ipc", "fritz", "h", "hwthread1"),
            key("ipc", "fritz", "h3"),
        ],
        [(1.0).hex(), (3.0).hex(), (4.0).hex(), (5.0).hex()],
        [5, 6, 7, 7],
        [4, 5, 7, 8, 10, 11, 12],
        0,
        0,
        0,
    )
    assert model_decode(body, METRICS, "fritz", NOW) == expected
    for data in (body, via_lines(body)):
        b = decode(data)
        assert summary(b) == expected
        assert all(isinstance(e, LineProtocolError) and e.reason.strip() and e.column >= 1 for e in b.errors)
    # with an extra escaped tag the good lines take the general parser: same keys and error lines
    assert summary(decode(via_slow(body))) == expected


def test_store_error_on_the_whole_body_path_has_its_line_number():
    """Errors found while classifying prefixes on the whole-body path keep their line numbers."""
    body = b"ipc,hostname=a value=1 5\nipc,hostname=b value=2 5\nipc,hostname value=3 5\nipc,=h value=4 5"
    assert lp._decode_uniform(body, METRICS, "fritz", NOW, {}) is not None
    b = decode(body)
    assert [e.line for e in b.errors] == [3, 4]
    assert b.keys == [key("ipc", "fritz", "a"), key("ipc", "fritz", "b")]
    _, parsed = parse_lines(body)
    assert [(e.line, e.column) for e in b.errors] == [(e.line, e.column) for e in parsed]
    assert all(e.reason for e in b.errors)


def test_store_invalid_utf8_is_an_error():
    body = b"ipc,hostname=a value=1 5\nipc,hostname=\xff value=2 5\nipc,hostname=b value=3 5"
    for data in (body, via_lines(body)):
        b = decode(data)
        assert b.keys == [key("ipc", "fritz", "a"), key("ipc", "fritz", "b")]
        assert [e.line for e in b.errors] == [2] and "UTF-8" in b.errors[0].reason


# ----------------------------------------------------------------------------- the three paths agree


def _realistic_body(hosts: int = 3, ts_unit: int = 1, node_metrics: int = 4, hwthreads: int = 4) -> bytes:
    rows = []
    for h in range(hosts):
        base = f"cluster=fritz,hostname=f{h:04d}"
        for i, m in enumerate(NODE_METRICS[:node_metrics]):
            rows.append(f"{m},{base},type=node value={h + i * 0.25} {T0 * ts_unit}")
        for t in range(hwthreads):
            rows.append(f"ipc,{base},type=hwthread,type-id={t} value={t / 7} {T0 * ts_unit}")
        rows.append(f"mem_bw,{base},type=socket,type-id=0 value=1e+06 {T0 * ts_unit}")
        rows.append(
            f"mem_bw,{base},type=socket,type-id=1,stype=memoryDomain,stype-id=3 value=-0 {T0 * ts_unit}"
        )
        rows.append(f"unknown_thing,{base} value=1 {T0 * ts_unit}")
    return "\n".join(rows).encode() + b"\n"


@pytest.mark.parametrize("uniform", uniform_decoders())
@pytest.mark.parametrize("ts_unit", [1, 1000, 10**6, 10**9], ids=["s", "ms", "us", "ns"])
def test_realistic_body_same_on_every_path(ts_unit, uniform):
    body = _realistic_body(ts_unit=ts_unit)
    fast = uniform(body, METRICS, "fritz", NOW, {})
    assert fast is not None, "the realistic body must take the whole-body path"
    lines = lp._decode_lines(body, METRICS, "fritz", NOW, {})
    expected = model_decode(body, METRICS, "fritz", NOW)
    assert expected[4] == 3 and len(expected[0]) == 3 * (4 + 4 + 2)
    assert summary(fast) == summary(lines) == expected
    assert (
        summary(decode(body))
        == summary(decode(via_lines(body)))
        == summary(decode(via_slow(body)))
        == expected
    )
    assert set(expected[2]) == {T0}


# ----------------------------------------------------------------------------- hypothesis: random batches

_known = st.sampled_from(["cpu_load", "mem_bw", "ipc", "flops_any"])
_host_values = st.sampled_from(["f0101", "f0102", "a0622", "h.x", "bad..host", "a/b", "a\\b"])
_cluster_values = st.sampled_from(["fritz", "alex", "c..d"])
_type_tags = st.one_of(
    st.just([]),
    st.just([("type", "node")]),
    st.tuples(st.sampled_from(["hwthread", "core", "socket", "accelerator"]), st.integers(0, 127)).map(
        lambda p: [("type", p[0]), ("type-id", str(p[1]))]
    ),
    st.tuples(st.integers(0, 3), st.integers(0, 7)).map(
        lambda p: [
            ("type", "socket"),
            ("type-id", str(p[0])),
            ("stype", "memoryDomain"),
            ("stype-id", str(p[1])),
        ]
    ),
    st.just([("stype", "core"), ("stype-id", "1")]),
    st.just([("type-id", "0")]),
)
_finite = st.floats(allow_nan=False, allow_infinity=False)
_good_values = st.one_of(
    _finite.map(go_float),
    _finite.map(repr),
    st.integers(-(10**9), 10**9).map(str),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: f"{i}i"),
    st.integers(0, 2**64 - 1).map(lambda i: f"{i}u"),
)
_bad_values = st.sampled_from(['"str"', "t", "false", "abc", "1.2.3"])


@st.composite
def _timestamp(draw, uniform: bool = False) -> str:
    if not uniform and draw(st.integers(0, 4)) == 0:
        return ""
    s = draw(st.integers(1_500_000_000, 1_900_000_000))
    unit = draw(st.sampled_from([1, 1000, 10**6, 10**9]))
    return f" {s * unit + draw(st.integers(0, unit - 1))}"


@st.composite
def store_line(draw, uniform: bool = False, accepted_only: bool = False) -> tuple[str, str]:
    """(line, the same line forced through the general parser). `uniform`: only shapes that the
    whole-body path can take (float values, timestamps, no escapes); `accepted_only`: only lines
    that are stored (known metric, safe host and cluster)."""
    kinds = ["good"] if accepted_only else ["good"] * 6 + ["unknown", "no_host", "bad_tag"]
    if not uniform:
        kinds += ["bad_value", "other_field", "blank", "comment"]
    kind = draw(st.sampled_from(kinds))
    if kind == "blank":
        return ("", "")
    if kind == "comment":
        return ("# a comment", "# a comment")
    metric = "unknown_metric" if kind == "unknown" else draw(_known)
    tags: list[tuple[str, str]] = []
    if kind != "no_host":
        if accepted_only:
            host = draw(_host_values.filter(lambda h: not lp._unsafe(h)))
        elif uniform:  # a backslash sends the line to the general parser
            host = draw(_host_values.filter(lambda h: "\\" not in h))
        else:
            host = draw(_host_values)
        tags.append((draw(st.sampled_from(["hostname", "host"])), host))
    if draw(st.booleans()) or accepted_only:
        tags.append(("cluster", draw(_cluster_values.filter(lambda c: not accepted_only or c != "c..d"))))
    tags += draw(_type_tags)
    if draw(st.booleans()):
        tags.append(("unit", "GHz"))
    tags = draw(st.permutations(tags))
    tag_text = "".join(f",{k}={v}" for k, v in tags)
    if kind == "bad_tag":
        tag_text += draw(st.sampled_from([",hostname", ",=x", ",", ",k="]))
    if uniform:
        value = draw(st.one_of(_finite.map(go_float), _finite.map(repr)))
    elif kind == "bad_value":
        value = draw(_bad_values)
    else:
        value = draw(_good_values)
    field = "other" if kind == "other_field" else "value"
    rest = f" {field}={value}{draw(_timestamp(uniform))}"
    return (metric + tag_text + rest, metric + ",zz=a\\ b" + tag_text + rest)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(store_line(), min_size=1, max_size=25),
    default_cluster=st.sampled_from(["fritz", ""]),
    crlf=st.booleans(),
)
def test_random_batches_same_on_every_path(rows, default_cluster, crlf):
    eol = "\r\n" if crlf else "\n"
    body = eol.join(r[0] for r in rows).encode()
    slow = eol.join(r[1] for r in rows).encode()
    expected = model_decode(body, METRICS, default_cluster, NOW)
    assert model_decode(slow, METRICS, default_cluster, NOW) == expected
    for data in (body, via_lines(body), slow):
        assert summary(decode_store_batch(data, METRICS, default_cluster, NOW)) == expected, data
    assert summary(lp._decode_lines(body, METRICS, default_cluster, NOW, {})) == expected
    fast = lp._decode_uniform(body, METRICS, default_cluster, NOW, {})
    assert fast is None or summary(fast) == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(store_line(uniform=True), min_size=1, max_size=25),
    default_cluster=st.sampled_from(["fritz", ""]),
)
def test_random_uniform_batches_take_the_whole_body_path(rows, default_cluster):
    body = "\n".join(r[0] for r in rows).encode()
    slow = "\n".join(r[1] for r in rows).encode()
    expected = model_decode(body, METRICS, default_cluster, NOW)
    for uniform in UNIFORM_DECODERS:
        for cache in ({}, {}):  # cold cache, then warm: a cached skip code or error is reused
            fast = uniform(body, METRICS, default_cluster, NOW, cache)
            assert fast is not None, (uniform.__name__, body)
            assert summary(fast) == expected
    assert summary(lp._decode_lines(body, METRICS, default_cluster, NOW, {})) == expected
    for data in (body, via_lines(body), slow):
        assert summary(decode_store_batch(data, METRICS, default_cluster, NOW)) == expected, data


@pytest.mark.skipif(len(UNIFORM_DECODERS) < 2, reason="C accelerator cccommon._lpscan not built")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(store_line(uniform=True, accepted_only=True), st.booleans()), min_size=1, max_size=25
    ),
    default_cluster=st.sampled_from(["fritz", ""]),
)
def test_random_c_batches_with_missing_timestamps(rows, default_cluster):
    """The C whole-body path also takes lines without a timestamp (previous line's, first `now`)."""
    lines = []
    for (line, _), drop_ts in rows:
        if drop_ts and line.count(" ") == 2:
            line = line.rsplit(" ", 1)[0]
        lines.append(line)
    body = "\n".join(lines).encode()
    expected = model_decode(body, METRICS, default_cluster, NOW)
    cache: dict = {}
    fast = lp._decode_uniform_c(body, METRICS, default_cluster, NOW, cache)
    # with new prefixes before a line without timestamp C may decline (it cannot know yet which
    # line was stored); once the line path has filled the cache it must take the body
    assert fast is None or summary(fast) == expected
    assert summary(lp._decode_lines(body, METRICS, default_cluster, NOW, cache)) == expected
    fast = lp._decode_uniform_c(body, METRICS, default_cluster, NOW, cache)
    assert fast is not None, body
    assert summary(fast) == expected
    assert summary(decode_store_batch(body, METRICS, default_cluster, NOW)) == expected


@pytest.mark.skipif(len(UNIFORM_DECODERS) < 2, reason="C accelerator cccommon._lpscan not built")
@pytest.mark.parametrize(
    "first",
    ["ipc value=1 1500000000", "nope,hostname=h value=1 1500000000", "ipc,hostname=a/b value=1 1500000000"],
    ids=["no-host", "unknown-metric", "unsafe-host"],
)
def test_c_missing_timestamp_after_skipped_line(first):
    """A missing timestamp is the previous *stored* line's (as upstream, which reads the time only for
    stored lines), also on the C path with a cold or a warm prefix cache."""
    body = f"{first}\nipc,hostname=h value=2".encode()
    expected = lp._decode_lines(body, METRICS, "fritz", 99, {})
    assert expected.times.tolist() == [99]
    cache: dict = {}
    for _ in range(2):
        fast = lp._decode_uniform_c(body, METRICS, "fritz", 99, cache)
        assert fast is None or summary(fast) == summary(expected)
        lp._decode_lines(body, METRICS, "fritz", 99, cache)
    assert summary(decode_store_batch(body, METRICS, "fritz", 99)) == summary(expected)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(store_line(), min_size=1, max_size=15))
def test_store_agrees_with_parse_lines(rows):
    """Every accepted line is a line parse_lines reads with a `value` field of the same number."""
    body = "\n".join(r[0] for r in rows).encode()
    b = decode(body)
    lines, _ = parse_lines(body)
    accepted = {}
    for ln in lines:
        if ln.measurement in METRICS and set(ln.fields) == {"value"}:
            v = ln.fields["value"]
            if not isinstance(v, str | bool):
                accepted.setdefault(ln.measurement, []).append(float(v).hex())
    for k, v in zip(b.keys, b.values.tolist(), strict=True):
        assert v.hex() in accepted[k.split("\x00")[0]]
    assert len(b.keys) + b.no_cluster_or_host + b.unsafe_name == sum(len(v) for v in accepted.values())


# ----------------------------------------------------------------------------- bugs found


def _outcome(b: StoreBatch) -> tuple:
    """Keys, values and whether each line was an error (columns may differ between paths)."""
    return (b.keys, b.values.tolist(), b.times.tolist(), [e.line for e in b.errors], b.unknown_metric)


@pytest.mark.parametrize(
    "value",
    ["1.5i", "-5u", "1e3u", "1.5u", "99999999999999999999i", "18446744073709551616u", "1e400"],
)
def test_fast_line_path_rejects_what_the_parser_rejects(value):
    line = f"ipc,hostname=h value={value} 5"
    direct = decode(line.encode())
    slow = decode(slowify(line).encode())
    assert _outcome(slow) == ([], [], [], [1], 0)
    assert _outcome(direct) == _outcome(slow)


def test_equals_in_tag_value_same_on_every_path():
    line = "ipc,hostname=a=b value=1 5"
    assert _outcome(decode(line.encode())) == _outcome(decode(slowify(line).encode()))


def test_nul_in_tag_value_is_an_error():
    b = decode(b"ipc,hostname=h\x00x value=1 5")
    assert b.keys == [] and [e.line for e in b.errors] == [1]


def test_leading_tab_same_on_every_path():
    line = "\tipc,hostname=h value=1 5"
    slow = "\tipc,zz=a\\ b,hostname=h value=1 5"
    assert _outcome(decode(line.encode())) == _outcome(decode(slow.encode()))


@pytest.mark.parametrize(
    "body",
    [b"ipc,hostname=h value=5\x0b 5", b"ipc,hostname=h value=5 5\x0c", b"ipc,hostname=h value=\x0c5 5"],
    ids=["VT-after-value", "FF-after-ts", "FF-before-value"],
)
def test_python_uniform_path_rejects_whitespace_inside_numbers(body):
    fast = lp._decode_uniform(body, METRICS, "fritz", NOW, {})
    lines = lp._decode_lines(body, METRICS, "fritz", NOW, {})
    assert lines.errors and not lines.keys
    assert fast is None or _outcome(fast) == _outcome(lines)


def test_store_timestamp_above_int64_on_the_line_path():
    body = b"ipc,hostname=h value=1 9999999999999999999\nipc,hostname=g value=2 5"
    b = decode(body)
    assert [e.line for e in b.errors] == [1] and b.keys == [key("ipc", "fritz", "g")]


@pytest.mark.parametrize("ts", ["9999999999999999999", "12345678901234567890", "-9999999999999999999"])
def test_python_uniform_path_rejects_timestamps_out_of_int64(ts):
    body = f"ipc,hostname=h value=1 {ts}".encode()
    fast = lp._decode_uniform(body, METRICS, "fritz", NOW, {})
    assert fast is None or (fast.keys == [] and [e.line for e in fast.errors] == [1])


def test_negative_ns_timestamp_same_on_every_path():
    body = b"ipc,hostname=h value=1 -9000000000999999999"
    expected = lp._decode_lines(body, METRICS, "fritz", NOW, {}).times.tolist()
    assert expected == [-9_000_000_000]
    for uniform in UNIFORM_DECODERS:
        assert uniform(body, METRICS, "fritz", NOW, {}).times.tolist() == expected


def test_prefix_cache_follows_the_metrics_mapping():
    metrics = {"a": 0}
    _KEEP_ALIVE.append(metrics)  # never freed: its stale cache entry must not hit another test
    body = b"b,hostname=h value=1 5"
    assert decode_store_batch(body, metrics, "c", 0).unknown_metric == 1
    metrics["b"] = 1
    b = decode_store_batch(body, metrics, "c", 0)
    assert b.keys == [key("b", "c", "h")]


# ============================================================================= 6. a large realistic body


def test_large_realistic_body():
    """20 hosts x (20 node metrics + 72 hwthreads x 5 metrics), ns timestamps, as a collector sends."""
    hosts = [f"f{n:04d}" for n in range(101, 121)]
    ts_ns = T0 * 10**9 + 123_456_789
    rows = []
    for h, host in enumerate(hosts):
        for i, m in enumerate(NODE_METRICS):
            rows.append(
                f"{m},cluster=fritz,hostname={host},type=node value={go_float(h * 100 + i + 0.5)} {ts_ns}"
            )
        for t in range(72):
            for j, m in enumerate(HWTHREAD_METRICS):
                v = go_float((h * 72 + t) * 5 + j + 0.25)
                rows.append(f"{m},cluster=fritz,hostname={host},type=hwthread,type-id={t} value={v} {ts_ns}")
    body = ("\n".join(rows) + "\n").encode()
    n = 20 * (20 + 72 * 5)
    assert len(rows) == n == 7600

    b = decode(body)
    assert len(b.keys) == len(set(b.keys)) == n
    assert (b.errors, b.unknown_metric, b.no_cluster_or_host, b.unsafe_name) == ([], 0, 0, 0)
    assert b.values.dtype == np.float64 and b.times.dtype == np.int64
    assert (b.times == T0).all()

    index = {k: i for i, k in enumerate(b.keys)}
    assert b.values[index[key("cpu_load", "fritz", "f0101")]] == 0.5
    assert b.values[index[key("job_count", "fritz", "f0120")]] == 19 * 100 + 19 + 0.5
    assert b.values[index[key("ipc", "fritz", "f0107", "hwthread71")]] == (6 * 72 + 71) * 5 + 2 + 0.25
    assert b.values[index[key("flops_sp", "fritz", "f0120", "hwthread0")]] == (19 * 72) * 5 + 4 + 0.25
    assert b.keys[0] == key("cpu_load", "fritz", "f0101")
    assert b.keys[-1] == key("flops_sp", "fritz", "f0120", "hwthread71")

    # the same body line by line, and with one unusual line, gives the same columns
    assert summary(decode(via_lines(body))) == summary(b)
    mixed = body.replace(
        b"cpu_load,cluster=fritz,hostname=f0110,", b"cpu_load,zz=a\\ b,cluster=fritz,hostname=f0110,"
    )
    assert mixed != body
    assert summary(decode(mixed)) == summary(b)

    # with a few bad, unknown and host-less lines among them
    extra = rows[:10] + [
        "nope,hostname=x value=1",
        "ipc,cluster=fritz value=1 5",
        "ipc,hostname=x value=abc 5",
    ]
    b2 = decode(("\n".join(extra + rows[10:])).encode())
    assert len(b2.keys) == n
    assert (b2.unknown_metric, b2.no_cluster_or_host, [e.line for e in b2.errors]) == (1, 1, [13])
