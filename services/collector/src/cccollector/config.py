"""The collector's configuration files (spec collector §3).

The main file is one JSON object. A top-level key `<section>-file` (exactly two dash-separated
parts, the second `file`) names a file whose content becomes `<section>`; relative paths are
relative to the working directory, as upstream. Every other key is an inline section. When a
section is given both ways, the file wins (with a warning).

Required: `main` (`interval`, optional `duration`), `router`, `sinks` and `collectors` (an empty
object `{}` is fine for router and collectors; a missing or zero-byte file is not). `receivers`
is optional. Beyond upstream, the top-level key `metrics-address` (`host:port`) enables a
Prometheus `/metrics` endpoint about the collector itself; upstream ignores unknown top-level
keys, so the same file still works with the Go collector.

Every problem raises `ConfigError` naming the file and the field.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from cccommon.config import ConfigError
from cccommon.durations import parse_duration

log = logging.getLogger("collector")

SECTIONS = ("main", "router", "sinks", "collectors", "receivers")


@dataclass
class CollectorConfig:
    file: str
    interval: float
    duration: float
    router: dict[str, Any]
    sinks: dict[str, Any]
    collectors: dict[str, Any]
    receivers: dict[str, Any]
    metrics_address: str = ""
    #: section -> the file it was read from (the main file for inline sections)
    origin: dict[str, str] = field(default_factory=dict)


def _read_json(path: str, what: str) -> tuple[Any, bool]:
    """(value, present): a missing or zero-byte file is (None, False); bad JSON raises."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None, False
    except OSError as e:
        raise ConfigError(path, None, f"cannot read the {what}: {e.strerror or e}") from None
    if not raw.strip():
        return None, False
    try:
        return orjson.loads(raw), True
    except orjson.JSONDecodeError as e:
        line = raw[: e.pos].count(b"\n") + 1
        col = e.pos - (raw.rfind(b"\n", 0, e.pos) + 1) + 1
        raise ConfigError(path, None, f"invalid JSON: {e.msg}", line=line, column=col) from None


def _duration(value: Any, file: str, fld: str) -> float:
    if not isinstance(value, str):
        raise ConfigError(file, fld, f'must be a duration string such as "10s", not {value!r}')
    try:
        return parse_duration(value)
    except ValueError as e:
        raise ConfigError(file, fld, str(e)) from None


def parse_main(main: Any, file: str) -> tuple[float, float]:
    """(interval, duration) in seconds from the strict `main` section (spec §3.2)."""
    if main is None:
        raise ConfigError(file, "main", 'the section is missing (it needs at least "interval")')
    if not isinstance(main, dict):
        raise ConfigError(file, "main", "must be a JSON object")
    lowered = {k.lower(): k for k in main}
    unknown = sorted(k for k in main if k.lower() not in ("interval", "duration"))
    if unknown:
        raise ConfigError(file, f"main.{unknown[0]}", "unknown key (main accepts interval and duration)")
    if "interval" not in lowered:
        raise ConfigError(file, "main.interval", 'is required (e.g. "10s")')
    interval = _duration(main[lowered["interval"]], file, "main.interval")
    if interval <= 0:
        raise ConfigError(file, "main.interval", "must be greater than zero")
    duration = 0.0
    if "duration" in lowered:
        duration = _duration(main[lowered["duration"]], file, "main.duration")
        if duration <= 0:
            raise ConfigError(file, "main.duration", "must be greater than zero when given")
        if duration > interval:
            raise ConfigError(file, "main.duration", "The interval should be greater than duration")
    return interval, duration


def load_config(path: str) -> CollectorConfig:
    """Read the main file and every referenced section file."""
    data, present = _read_json(path, "main config file")
    if not present:
        data = {}  # upstream: a missing main file is an empty object; `main` is then missing
    if not isinstance(data, dict):
        raise ConfigError(path, None, "the main config file must hold a JSON object")

    sections: dict[str, Any] = {}
    origin: dict[str, str] = {}
    present_sections: set[str] = set()
    for key, value in data.items():
        parts = key.split("-")
        if len(parts) == 2 and parts[1] == "file":
            continue
        sections[key] = value
        origin[key] = path
        present_sections.add(key)
    for key, value in data.items():
        parts = key.split("-")
        if not (len(parts) == 2 and parts[1] == "file"):
            continue
        name = parts[0]
        if not isinstance(value, str):
            raise ConfigError(path, key, "must be a file path string")
        if name in sections:
            log.warning("%s: section %r is given inline and as %s; the file wins", path, name, key)
            present_sections.discard(name)
            sections.pop(name)
        content, ok = _read_json(value, f"{name} file")
        if not ok:
            if not os.path.exists(value):
                log.error("%s: %s %r cannot be read: no such file", path, key, value)
            continue
        sections[name] = content
        origin[name] = value
        present_sections.add(name)

    interval, duration = parse_main(sections.get("main"), origin.get("main", path))

    def obj(name: str, required: bool) -> dict[str, Any]:
        f = origin.get(name, path)
        if name not in present_sections:
            if required:
                raise ConfigError(
                    path, name, f'the {name} section is missing or empty (inline "{name}" or "{name}-file")'
                )
            return {}
        value = sections[name]
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f, name, "must be a JSON object")
        return value

    router = obj("router", True)
    sinks = obj("sinks", True)
    if not sinks:
        raise ConfigError(origin.get("sinks", path), "sinks", "no sink configured (at least one is required)")
    collectors = obj("collectors", True)
    receivers = obj("receivers", False)
    addr = data.get("metrics-address", "")
    if not isinstance(addr, str):
        raise ConfigError(path, "metrics-address", 'must be a "host:port" string')
    return CollectorConfig(
        file=path,
        interval=interval,
        duration=duration,
        router=router,
        sinks=sinks,
        collectors=collectors,
        receivers=receivers,
        metrics_address=addr,
        origin=origin,
    )
