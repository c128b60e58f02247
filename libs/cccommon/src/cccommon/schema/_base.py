"""Shared base model, the unit type, and JSON read/write helpers for the ClusterCockpit data structures."""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from cccommon.config import ConfigError, load_json, parse_config

__all__ = ["SchemaModel", "Unit", "MetricStatistics", "dump", "dumps", "read_json", "parse_file"]

log = logging.getLogger("cccommon.schema")

M = TypeVar("M", bound=BaseModel)


class SchemaModel(BaseModel):
    """Base of the data-structure models: camelCase JSON keys, unknown keys kept for round trips."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", alias_generator=to_camel)


class Unit(SchemaModel):
    """Metric unit (unit.schema.json); `base` is free text because real files use e.g. `load`, `Flops/s`."""

    base: str
    prefix: str | None = None


class MetricStatistics(SchemaModel):
    """Statistics of one value over time or over a job: `min`, `avg`, `max` (job-metric-statistics)."""

    avg: float
    min: float
    max: float


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, transparently gunzipping `*.gz`; failures become a ConfigError naming the file."""
    name = os.fspath(path)
    if not name.endswith(".gz"):
        return load_json(path)
    try:
        raw = gzip.decompress(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigError(name, None, "file not found") from None
    except (OSError, EOFError, zlib.error) as e:
        raise ConfigError(name, None, f"cannot read gzip file: {e}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ConfigError(name, None, f"invalid JSON: {e.msg}", line=e.lineno, column=e.colno) from None


def parse_file(path: str | os.PathLike[str], model: type[M]) -> M:
    """Load `path` and validate it against `model`; errors name the file and the JSON key path."""
    return parse_config(read_json(path), model, file=os.fspath(path), log=log)


def dumps(obj: BaseModel, *, indent: bool = True) -> bytes:
    """Serialise a model with the upstream (camelCase) key spelling, leaving out fields that were absent."""
    data = obj.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 if indent else 0)


def dump(obj: BaseModel, path: str | os.PathLike[str] | None = None, *, indent: bool = True) -> bytes:
    """Serialise `obj` like `dumps`; when `path` is given also write it there (gzip for `*.gz`)."""
    data = dumps(obj, indent=indent)
    if path is not None:
        p = Path(path)
        p.write_bytes(gzip.compress(data) if p.name.endswith(".gz") else data)
    return data
