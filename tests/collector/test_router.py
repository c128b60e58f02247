"""Rules engine, router and interval aggregates (spec collector §5), table-driven."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cccollector.aggregates import IntervalAggregator
from cccollector.processor import MessageProcessor, ProcessorConfigError
from cccollector.router import Router
from cccommon.message import CCMessage, UInt, new_message

T = 1_719_840_000 * 10**9
SEED = Path(__file__).resolve().parents[3] / "shared" / "seed" / "clustercockpit-howto-guides.txt"


def msg(name: str = "cpu_user", value=12.5, tags=None, meta=None, t: int = T) -> CCMessage:
    tg = {"hostname": "node01", "type": "node"} if tags is None else tags
    return new_message(name, tg, meta or {}, {"value": value}, t)


def run(config, m: CCMessage) -> CCMessage | None:
    return MessageProcessor.from_config(config, "test").process(m)


# ---------------------------------------------------------------------------- native stages


def test_drop_by_name_type_and_if():
    assert run({"drop_messages": ["cpu_user"]}, msg()) is None
    assert run({"drop_messages": ["other"]}, msg()) is not None
    assert run({"drop_by_message_type": ["metric"]}, msg()) is None
    assert run({"drop_messages_if": ["value > 10 && name == 'cpu_user'"]}, msg()) is None
    assert run({"drop_messages_if": ["value > 20"]}, msg()) is not None
    with pytest.raises(ProcessorConfigError, match="invalid message type"):
        MessageProcessor.from_config({"drop_by_message_type": ["metrics"]}, "t")


def test_tag_meta_field_rules_and_visibility_of_earlier_changes():
    cfg = {
        "add_tags_if": [{"if": "name == 'cpu_user'", "key": "cluster", "value": "fritz"}],
        # sees the tag added in the earlier stage
        "delete_tags_if": [{"if": "tags.cluster == 'fritz'", "key": "type"}],
        "add_meta_if": [{"if": "true", "key": "unit", "value": "%"}],
        "move_meta_to_tag_if": [{"if": "true", "key": "unit", "value": "unit"}],
        "add_field_if": [{"if": "true", "key": "note", "value": "x"}],
        "move_field_to_meta_if": [{"if": "true", "key": "note", "value": "note"}],
    }
    out = run(cfg, msg())
    assert out.tags == {"hostname": "node01", "cluster": "fritz", "unit": "%"}
    assert out.meta == {"note": "x"}
    assert out.fields == {"value": 12.5}


def test_move_field_renders_text_like_line_protocol():
    m = new_message("m", {"hostname": "h"}, {}, {"value": 1.0, "f": 1e6, "i": 5, "b": True}, T)
    cfg = {"move_field_to_tag_if": [{"if": "true", "key": k, "value": k} for k in ("f", "i", "b")]}
    out = run(cfg, m)
    assert out.tags == {"hostname": "h", "f": "1e+06", "i": "5", "b": "true"}


def test_rename_before_drop_pattern_and_oldname():
    cfg = {"drop_messages": ["net_bytes_in"], "rename_messages": {"net_bytes_in_bw": "net_bytes_in"}}
    assert run(cfg, msg("net_bytes_in")) is None
    out = run(cfg, msg("net_bytes_in_bw"))
    assert out.name == "net_bytes_in" and out.meta["oldname"] == "net_bytes_in_bw"
    out = run({"rename_messages_if": {"name == 'a'": "b"}}, msg("a"))
    assert out.name == "b" and out.meta["oldname"] == "a"


def test_stage_order_limits_and_orders_stages():
    cfg = {
        "rename_messages": {"a": "b"},
        "drop_messages": ["b"],
        "stage_order": ["rename", "drop_by_name"],
    }
    assert run(cfg, msg("a")) is None  # renamed first, then dropped
    cfg["stage_order"] = ["rename"]
    assert run(cfg, msg("b")).name == "b"  # drop stage skipped
    with pytest.raises(ProcessorConfigError, match="unknown stage"):
        MessageProcessor.from_config({"stage_order": ["nope"]}, "t")


def test_units_normalize_and_change_prefix():
    out = run({"normalize_units": True}, msg("mem_used", 5.0, meta={"unit": "MBytes/s"}))
    assert out.meta["unit"] == "MB/s"
    out = run(
        {"change_unit_prefix": {"name == 'mem_used'": "G"}}, msg("mem_used", 16_000_000, meta={"unit": "kB"})
    )
    assert out.fields["value"] == 16 and isinstance(out.fields["value"], int) and out.meta["unit"] == "GB"
    # cpustat carries its unit as a tag
    out = run({"normalize_units": True}, msg("cpu_user", 1.0, tags={"hostname": "h", "unit": "Percent"}))
    assert out.tags["unit"] == "%"
    # string values are left alone
    out = run({"normalize_units": True}, msg("topproc1", "slurmstepd", meta={"unit": "MBytes"}))
    assert out.meta["unit"] == "MBytes"
    with pytest.raises(ProcessorConfigError, match="prefix"):
        MessageProcessor.from_config({"change_unit_prefix": {"true": "Q"}}, "t")


def test_add_base_env_usable_in_conditions():
    cfg = {
        "add_base_env": {"limit": 10, "site": {"name": "x"}},
        "drop_messages_if": ["value > limit && site.name == 'x'"],
    }
    assert run(cfg, msg(value=12.5)) is None
    assert run(cfg, msg(value=5.0)) is not None


def test_protected_fields_rejected_at_load():
    with pytest.raises(ProcessorConfigError, match="cannot be deleted"):
        MessageProcessor.from_config({"delete_field_if": [{"if": "true", "key": "value"}]}, "t")
    with pytest.raises(ProcessorConfigError, match="cannot be deleted"):
        MessageProcessor.from_config([{"delete_fields_by": ["value"]}], "t")


def test_bad_condition_is_a_config_error_and_eval_error_drops(caplog):
    with pytest.raises(ProcessorConfigError, match="does not compile"):
        MessageProcessor.from_config({"drop_messages_if": ["value >"]}, "t")
    p = MessageProcessor.from_config({"drop_messages_if": ["value > 'x'"]}, "t")
    assert p.process(msg()) is None
    assert "could not be evaluated" in caplog.text


# ---------------------------------------------------------------------------- manipulate_messages


def test_manipulate_messages_documentation_example():
    cfg = {
        "manipulate_messages": [
            {"add_base_tags": {"cluster": "mycluster", "rack": "rack1"}},
            {"drop_by_name": ["cpu_idle", "cpu_guest", "cpu_guest_nice"]},
            {"drop_by": "value == 0 && match('temp_', name)"},
            {"rename_by": {"clock_mhz": "clock"}},
            {"add_tags_by": {"type": "socket"}, "if": "name == 'temp_package_id_0'"},
            {"add_tags_by": {"high_temp": "true"}, "if": "name == 'temp_package_id_0' && value > 70"},
        ]
    }
    p = MessageProcessor.from_config(cfg, "t")
    out = p.process(msg("cpu_user", tags={"hostname": "n", "rack": "rack7"}))
    assert out.tags == {"hostname": "n", "rack": "rack7", "cluster": "mycluster"}  # base tags never overwrite
    assert p.process(msg("cpu_idle")) is None
    assert p.process(msg("temp_core_1", 0)) is None
    assert p.process(msg("temp_core_1", 1)) is not None
    out = p.process(msg("clock_mhz"))
    assert out.name == "clock" and out.meta["oldname"] == "clock_mhz"
    out = p.process(msg("temp_package_id_0", 75, tags={"hostname": "n"}))
    assert out.tags["type"] == "socket" and out.tags["high_temp"] == "true"
    out = p.process(msg("temp_package_id_0", 65, tags={"hostname": "n"}))
    assert "high_temp" not in out.tags


def test_list_form_and_aliases():
    p = MessageProcessor.from_config(
        [
            {"add_meta": {"source": "x"}},
            {"delete_tags": ["type"]},
            {"move_tag_to_meta": {"hostname": "host"}},
            {"change_unit": "G", "if": "name == 'mem'"},
            {"normalize_units": True},
        ],
        "t",
    )
    out = p.process(msg("mem", 2_000_000.0, meta={"unit": "kBytes"}))
    assert out.meta == {"source": "x", "host": "node01", "unit": "GB"}
    assert out.tags == {} and out.fields["value"] == 2.0


@pytest.mark.parametrize(
    "rule,words",
    [
        ({"add_tags_by": {"a": "b"}, "drop_by_name": ["x"]}, "exactly one action"),
        ({"frobnicate": {}}, "unknown action"),
        ({"drop_by": "value >>> 1"}, "does not compile"),
        ({"drop_by_message_type": ["nope"]}, "invalid message type"),
    ],
)
def test_manipulate_config_errors(rule, words):
    with pytest.raises(ProcessorConfigError, match=words):
        MessageProcessor.from_config({"manipulate_messages": [rule]}, "router")


def test_process_works_on_a_copy():
    m = msg()
    out = run([{"add_tags_by": {"x": "1"}}], m)
    assert "x" in out.tags and "x" not in m.tags


# ---------------------------------------------------------------------------- router


def router(options, host: str = "node01") -> tuple[Router, list[CCMessage]]:
    out: list[CCMessage] = []
    return Router(options, out.append, hostname=host), out


def test_hostname_rule_only_when_missing_and_guide_router():
    r, out = router(
        {
            "interval_timestamp": True,
            "process_messages": {
                "manipulate_messages": [{"add_base_tags": {"cluster": "mycluster", "rack": "rack1"}}]
            },
        }
    )
    r.on_tick(1_719_840_010.0)
    r.from_collector([msg(tags={"type": "node"}, t=T + 3)])
    r.from_receiver(msg(tags={"hostname": "remote", "type": "node", "cluster": "other"}))
    assert out[0].tags == {"type": "node", "hostname": "node01", "cluster": "mycluster", "rack": "rack1"}
    assert out[0].time == 1_719_840_010 * 10**9  # interval timestamp
    assert out[1].tags["hostname"] == "remote" and out[1].tags["cluster"] == "other"


def test_legacy_options():
    r, out = router(
        {
            "add_tags": [{"key": "cluster", "value": "testcluster", "if": "*"}],
            "delete_tags": [{"key": "unit", "value": "*", "if": "*"}],
            "drop_metrics": ["cpu_idle"],
            "drop_metrics_if": ["match('temp_core_%d+', metric.Name())"],
            "rename_metrics": {"net_bytes_in_bw": "net_bytes_in"},
            "change_unit_prefix": {"mem_used": "G"},
            "normalize_units": True,
        }
    )
    r.from_collector(
        [
            msg("cpu_idle"),
            msg("temp_core_12"),
            msg("net_bytes_in_bw", tags={"hostname": "h", "unit": "x"}),
            msg("mem_used", 16_000_000, meta={"unit": "kBytes"}),
        ]
    )
    assert [m.name for m in out] == ["net_bytes_in", "mem_used"]
    assert out[0].tags == {"hostname": "h", "cluster": "testcluster"}
    assert out[1].fields["value"] == 16 and out[1].meta["unit"] == "GB"


def test_router_normalize_only_with_legacy_flag(caplog):
    r, out = router({"process_messages": {"normalize_units": True}})
    r.from_collector([msg("m", 1.0, meta={"unit": "MBytes"})])
    assert out[0].meta["unit"] == "MBytes"
    assert "normalize_units is ignored" in caplog.text


def test_router_unknown_key_and_stage_order_without_add_tag():
    with pytest.raises(ProcessorConfigError, match="unknown key"):
        Router({"sinks": {}}, lambda m: None, hostname="h")
    r, out = router({"process_messages": {"stage_order": ["drop_by_name"]}})
    r.from_collector([msg(tags={})])
    assert "hostname" not in out[0].tags  # as upstream: the hostname rule lives in add_tag


# ---------------------------------------------------------------------------- aggregates


def test_guide_rack_average_over_received_metrics():
    r, out = router(
        {
            "num_cache_intervals": 1,
            "interval_aggregates": [
                {
                    "name": "rack_avg_temp",
                    "if": "name == 'temp_package_id_0'",
                    "function": "avg(values)",
                    "tags": {"type": "rack", "rack": "<copy>"},
                    "meta": {"unit": "degC", "source": "aggregated"},
                }
            ],
        },
        host="agg1",
    )
    for i, v in enumerate((60, 70, 80)):
        r.from_receiver(
            msg("temp_package_id_0", v, tags={"hostname": f"n{i}", "rack": "rack1", "type": "socket"})
        )
    r.from_receiver(msg("cpu_user", 1.0))
    out.clear()
    r.on_tick(1_719_840_060.0)
    assert len(out) == 1
    a = out[0]
    assert a.name == "rack_avg_temp" and a.fields["value"] == 70.0
    assert a.tags == {"type": "rack", "rack": "rack1", "hostname": "agg1"}
    assert a.meta == {"unit": "degC", "source": "aggregated"}
    assert a.time == 1_719_840_060 * 10**9
    out.clear()
    r.on_tick(1_719_840_070.0)  # the next interval is empty: nothing
    assert out == []


def test_aggregate_kinds_copy_last_and_errors(caplog):
    agg = IntervalAggregator(
        [
            {"name": "s", "if": "name == 'x'", "function": "sum(values)", "tags": {"k": "<copy>"}},
            {"name": "bad", "if": "true", "function": "values + 'a'"},
            {"name": "n", "if": "name == 'x'", "function": "len(values) * numHWThreads"},
        ],
        {"hostname": "h", "numHWThreads": 4},
    )
    ms = [
        new_message("x", {"k": "first"}, {}, {"value": 2}, T),
        new_message("x", {"k": "last"}, {}, {"value": UInt(3)}, T),
        new_message("x", {}, {}, {"value": 1.5}, T),
        new_message("x", {}, {}, {"value": "text"}, T),
    ]
    res = agg.evaluate(ms, T + 60 * 10**9)
    # the string value does not count: 3 numeric values x numHWThreads
    assert [(m.name, m.fields["value"]) for m in res] == [("s", 6.5), ("n", 12)]
    assert res[0].tags == {"k": "last"}
    assert "function" in caplog.text  # the failing aggregate is logged, the next one still runs
    ints = agg.evaluate(ms[:2], T)
    assert ints[0].fields["value"] == 5 and isinstance(ints[0].fields["value"], int)


def test_dropped_collector_messages_still_feed_aggregates():
    r, out = router(
        {
            "num_cache_intervals": 1,
            "process_messages": {"drop_messages": ["x"]},
            "interval_aggregates": [{"name": "sx", "if": "name == 'x'", "function": "sum(values)"}],
        }
    )
    r.from_collector([msg("x", 1.0), msg("x", 2.0)])
    assert out == []
    r.on_tick(1_719_840_060.0)
    assert [(m.name, m.fields["value"]) for m in out] == [("sx", 3.0)]


def test_aggregate_config_errors():
    with pytest.raises(ProcessorConfigError, match="function"):
        IntervalAggregator([{"name": "a", "if": "true", "function": "avg(values"}], {})
    with pytest.raises(ProcessorConfigError, match="name"):
        IntervalAggregator([{"if": "true", "function": "1"}], {})


# ---------------------------------------------------------------------------- the guide's router files


def _guide_router_blocks() -> list[dict]:
    if not SEED.exists():
        pytest.skip("how-to guide not available")
    text = SEED.read_text()
    blocks = []
    dec = json.JSONDecoder()
    for m in re.finditer(r"router\.json[^\n]*:\n(?=\{)", text):
        try:
            obj, _ = dec.raw_decode(text, m.end())
        except json.JSONDecodeError:
            continue
        blocks.append(obj)
    return blocks


def test_every_router_config_of_the_guide_loads():
    blocks = _guide_router_blocks()
    assert len(blocks) >= 3
    for b in blocks:
        r, out = router(b)
        r.from_collector([msg(tags={"type": "node"})])
        assert out and out[0].tags["hostname"] == "node01"


@pytest.mark.parametrize(
    "options",
    [
        {"interval_timestamp": True},  # only the hostname rule: the fast path
        {"hostname_tag": "host"},
        {"add_tags": [{"key": "cluster", "value": "fritz", "if": "*"}], "drop_metrics": ["cpu_idle"]},
        {
            "process_messages": {"manipulate_messages": [{"drop_by_name": ["cpu_idle"]}]},
            "interval_timestamp": True,
        },
        {"num_cache_intervals": 1, "interval_timestamp": True},
    ],
)
def test_batch_route_equals_single_route(options):
    """`from_collector` with `out_many` (one call per read) forwards exactly what the
    message-by-message path forwards."""

    def batch() -> list[CCMessage]:
        return [
            msg("cpu_user", 1.0, tags={"type": "node"}),
            msg("cpu_idle", 2.0, tags={"type": "node"}),
            msg("mem_used", UInt(3), tags={"type": "node", "hostname": "other"}),
        ]

    single: list[CCMessage] = []
    r1 = Router(options, single.append, hostname="node07")
    r1.tick_time_ns = T + 5
    r1.from_collector(batch())
    many: list[list[CCMessage]] = []
    r2 = Router(options, lambda m: pytest.fail("single path used"), hostname="node07", out_many=many.append)
    r2.tick_time_ns = T + 5
    r2.from_collector(batch())
    assert len(many) == 1
    assert many[0] == single
    assert (r1.forwarded, r1.dropped) == (r2.forwarded, r2.dropped)
    assert all(m.tags.get(options.get("hostname_tag", "hostname")) for m in single)
    if options.get("interval_timestamp"):
        assert {m.time for m in single} == {T + 5}
