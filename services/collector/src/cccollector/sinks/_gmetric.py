"""Ganglia pieces shared by the `ganglia` and `libganglia` sinks (spec collector §7.7/§7.8).

* `metric_config(msg)` — name, group, type, slope, tmax, unit and value text of a message: the
  fixed settings of Ganglia's standard metrics, otherwise derived from meta `group`/`unit` and
  the value kind (float → `double` printed with `%f`, int → `int32`, uint → `uint32`,
  string → `string`).
* `typed_name(msg)` — the `add_type_to_name` form (`cpu_user` of hwthread 3 → `hwthread3_cpu_user`).
* `metadata_packet`/`value_packet` — the XDR datagrams `gmetric` sends for one metric (Ganglia
  3.1+ protocol: a `gmetadata_full` (128) packet, then a `gmetric_string` (133) packet).
* `read_gmond_conf(path)` — the `udp_send_channel` destinations and `override_hostname` of a
  gmond.conf (Ganglia's built-in default when the file is missing: multicast 239.2.11.71:8649).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from cccommon.message import CCMessage, UInt

__all__ = [
    "GangliaConfig",
    "metric_config",
    "typed_name",
    "metadata_packet",
    "value_packet",
    "SendChannel",
    "GmondConf",
    "parse_gmond_conf",
    "read_gmond_conf",
    "SLOPES",
]

SLOPES = {"zero": 0, "positive": 1, "negative": 2, "both": 3, "unspecified": 4}

_RENAME = {
    "net_bytes_in": "bytes_in",
    "net_bytes_out": "bytes_out",
    "net_pkts_in": "pkts_in",
    "net_pkts_out": "pkts_out",
    "cpu_iowait": "cpu_wio",
}

# group → (name, type, slope, tmax, unit) of Ganglia's own metrics
_STANDARD: dict[str, list[tuple[str, str, str, int, str]]] = {
    "memory": [
        ("mem_total", "float", "zero", 1200, "KB"),
        ("swap_total", "float", "zero", 1200, "KB"),
        *(
            (n, "float", "both", 180, "KB")
            for n in (
                "mem_free",
                "mem_shared",
                "mem_buffers",
                "mem_cached",
                "swap_free",
                "mem_sreclaimable",
                "mem_slab",
            )
        ),
    ],
    "cpu": [
        ("cpu_num", "uint32", "zero", 1200, "CPUs"),
        ("cpu_speed", "uint32", "zero", 1200, "MHz"),
        *(
            (n, "float", "both", 90, "%")
            for n in (
                "cpu_user",
                "cpu_nice",
                "cpu_system",
                "cpu_aidle",
                "cpu_wio",
                "cpu_intr",
                "cpu_sintr",
                "cpu_steal",
                "cpu_guest",
                "cpu_gnice",
            )
        ),
        ("cpu_idle", "float", "both", 3800, "%"),
    ],
    "load": [
        ("load_one", "float", "both", 70, ""),
        ("load_five", "float", "both", 325, ""),
        ("load_fifteen", "float", "both", 950, ""),
    ],
    "disk": [
        ("disk_total", "double", "both", 1200, "GB"),
        ("disk_free", "double", "both", 180, "GB"),
        ("part_max_used", "float", "both", 180, "%"),
    ],
    "network": [
        ("bytes_in", "float", "both", 300, "bytes/sec"),
        ("bytes_out", "float", "both", 300, "bytes/sec"),
        ("pkts_in", "float", "both", 300, "packets/sec"),
        ("pkts_out", "float", "both", 300, "packets/sec"),
    ],
    "process": [("proc_run", "uint32", "both", 950, ""), ("proc_total", "uint32", "both", 950, "")],
    "system": [
        ("boottime", "uint32", "zero", 1200, "s"),
        ("sys_clock", "uint32", "zero", 1200, "s"),
        ("machine_type", "string", "zero", 1200, ""),
        ("os_name", "string", "zero", 1200, ""),
        ("os_release", "string", "zero", 1200, ""),
        ("mtu", "uint32", "both", 1200, ""),
    ],
}
_BY_NAME = {m[0]: (group, *m[1:]) for group, ms in _STANDARD.items() for m in ms}


@dataclass
class GangliaConfig:
    name: str
    group: str
    type: str
    slope: str
    tmax: int
    unit: str
    value: str


def _value_text(v: object) -> tuple[str, str] | None:
    """(ganglia type, text) of a value, None for unsupported kinds."""
    if isinstance(v, bool):
        return None
    if isinstance(v, float):
        return "double", f"{v:f}"
    if isinstance(v, UInt):
        return "uint32", str(int(v))
    if isinstance(v, int):
        return "int32", str(v)
    if isinstance(v, str):
        return "string", v
    return None


def metric_config(msg: CCMessage) -> GangliaConfig:
    """What gmetric gets for `msg`; ValueError when it has no usable `value`."""
    base = msg.meta.get("oldname", msg.name)
    name = _RENAME.get(base, base)
    if "value" not in msg.fields:
        raise ValueError(f"metric {msg.name!r} (Ganglia name {name!r}) has no 'value' field")
    kind = _value_text(msg.fields["value"])
    if kind is None:
        raise ValueError(
            f"metric {msg.name!r} has a value of unsupported type {type(msg.fields['value']).__name__}"
        )
    std = _BY_NAME.get(name)
    if std is not None:
        group, typ, slope, tmax, unit = std
        return GangliaConfig(name, group, typ, slope, tmax, unit, kind[1])
    return GangliaConfig(
        name, msg.meta.get("group", ""), kind[0], "both", 300, msg.meta.get("unit", ""), kind[1]
    )


def typed_name(msg: CCMessage) -> str:
    """The metric name with its scope (`add_type_to_name`), built from the message name as upstream."""
    name = msg.name
    typ, tid = msg.tags.get("type"), msg.tags.get("type-id")
    if typ and tid is not None and typ in name:
        return name.replace(typ, typ + tid)
    if typ is not None and tid is not None:
        return f"{typ}{tid}_{name}"
    if "device" in msg.tags:
        return f"{name}_{msg.tags['device']}"
    return name


# ----------------------------------------------------------------------------- XDR


def _xs(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">I", len(b)) + b + b"\0" * (-len(b) % 4)


def metadata_packet(
    host: str,
    conf: GangliaConfig,
    extra: list[tuple[str, str]],
    units: str,
    dmax: int = 0,
    spoof: bool = False,
) -> bytes:
    """`gmetadata_full`: metric id, type, name, units, slope, tmax, dmax and extra metadata."""
    return b"".join(
        [
            struct.pack(">i", 128),
            _xs(host),
            _xs(conf.name),
            struct.pack(">i", int(spoof)),
            _xs(conf.type),
            _xs(conf.name),
            _xs(units),
            struct.pack(">III", SLOPES.get(conf.slope, 3), conf.tmax, dmax),
            struct.pack(">I", len(extra)),
            *(_xs(k) + _xs(v) for k, v in extra),
        ]
    )


def value_packet(host: str, name: str, value: str, spoof: bool = False) -> bytes:
    """`gmetric_string`: metric id, format `%s` and the value text."""
    return (
        struct.pack(">i", 133)
        + _xs(host)
        + _xs(name)
        + struct.pack(">i", int(spoof))
        + _xs("%s")
        + _xs(value)
    )


# ----------------------------------------------------------------------------- gmond.conf


@dataclass
class SendChannel:
    host: str
    port: int
    ttl: int = 1
    multicast: bool = False


@dataclass
class GmondConf:
    channels: list[SendChannel] = field(default_factory=list)
    override_hostname: str = ""


_COMMENTS = re.compile(r"/\*.*?\*/|#[^\n]*|//[^\n]*", re.S)
_BLOCK = re.compile(r"\b(udp_send_channel|globals)\s*\{([^{}]*)\}", re.S)
_PAIR = re.compile(r"(\w+)\s*=\s*(\"[^\"]*\"|[^\s]+)")


def parse_gmond_conf(text: str) -> GmondConf:
    conf = GmondConf()
    for kind, body in _BLOCK.findall(_COMMENTS.sub("", text)):
        kv = {k.lower(): v.strip('"') for k, v in _PAIR.findall(body)}
        if kind == "globals":
            conf.override_hostname = kv.get("override_hostname", conf.override_hostname)
            continue
        host = kv.get("host") or kv.get("mcast_join") or ""
        if not host:
            continue
        try:
            port = int(kv.get("port", "8649"))
            ttl = int(kv.get("ttl", "1"))
        except ValueError:
            continue
        conf.channels.append(SendChannel(host, port, ttl, "host" not in kv))
    return conf


def read_gmond_conf(path: str) -> GmondConf:
    """The send channels of `path`; Ganglia's defaults when the file does not exist."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_gmond_conf(f.read())
    except FileNotFoundError:
        return GmondConf([SendChannel("239.2.11.71", 8649, 1, True)])
