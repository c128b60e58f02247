"""JSON config files into pydantic models, with errors that tell the admin which file and field."""

from __future__ import annotations

import logging as _logging
import os
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict

__all__ = ["ConfigError", "CCModel", "load_json", "parse_config", "load_config", "resolve_path"]

_log = _logging.getLogger("cccommon.config")

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A config file that cannot be used; names the file and, when known, the field or position."""

    def __init__(
        self,
        file: str,
        field: str | None,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.file = file
        self.field = field
        self.message = message
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.field:
            return f"{self.file}: field '{self.field}': {self.message}"
        if self.line is not None:
            return f"{self.file}: line {self.line}, column {self.column}: {self.message}"
        return f"{self.file}: {self.message}"


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class CCModel(BaseModel):
    """Base of config models: JSON keys are the field names with hyphens; unknown keys are kept."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", alias_generator=_kebab)


def load_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a missing file or bad JSON becomes a ConfigError with line and column."""
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(name, None, "file not found") from None
    except OSError as e:
        raise ConfigError(name, None, f"cannot read file: {e.strerror or e}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        msg = e.msg if hasattr(e, "msg") else str(e)
        raise ConfigError(name, None, f"invalid JSON: {msg}", line=e.lineno, column=e.colno) from None


def _render(path: list[str | int]) -> str:
    out = ""
    for el in path:
        if isinstance(el, int):
            out += f"[{el}]"
        else:
            out += ("." if out else "") + el
    return out


_TYPE_TAGS = {"int", "str", "float", "bool", "none", "dict", "list", "bytes", "decimal"}


def _is_tag(el: Any) -> bool:
    """Pydantic puts union members (`Nats`, `list[Nats]`, `int`) into error locations."""
    return isinstance(el, str) and ("[" in el or el in _TYPE_TAGS or el[:1].isupper())


def _error_path(data: Any, loc: tuple[Any, ...], missing: bool) -> str:
    """Map a pydantic error location to the JSON keys the user wrote, dropping union tags."""
    path: list[str | int] = []
    cur = data
    for i, el in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(cur, dict) and isinstance(el, str) and el in cur:
            path.append(el)
            cur = cur[el]
        elif isinstance(cur, dict) and isinstance(el, str) and el.replace("-", "_") in cur:
            path.append(el.replace("-", "_"))  # the user wrote the field name, not the alias
            cur = cur[el.replace("-", "_")]
        elif isinstance(cur, list) and isinstance(el, int) and 0 <= el < len(cur):
            path.append(el)
            cur = cur[el]
        elif (last and missing) or not _is_tag(el):
            path.append(el)
            cur = None
    return _render(path)


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _warn_unknown(model: BaseModel, prefix: str, file: str, log: _logging.Logger) -> None:
    extra = model.model_extra or {}
    for key in extra:
        log.warning("%s: unknown key '%s' ignored", file, f"{prefix}.{key}" if prefix else key)
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        sub = f"{prefix}.{key}" if prefix else key
        _walk(getattr(model, name, None), sub, file, log)


def _walk(value: Any, prefix: str, file: str, log: _logging.Logger) -> None:
    if isinstance(value, BaseModel):
        _warn_unknown(value, prefix, file, log)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _walk(v, f"{prefix}[{i}]", file, log)
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk(v, f"{prefix}.{k}", file, log)


def parse_config(data: Any, model: type[M], *, file: str, log: _logging.Logger | None = None) -> M:
    """Validate loaded JSON against `model`; first error → ConfigError, unknown keys → warnings."""
    try:
        obj = model.model_validate(data)
    except pydantic.ValidationError as e:
        errs = e.errors(include_url=False)
        err = errs[0]
        field = _error_path(data, tuple(err.get("loc", ())), err.get("type") == "missing")
        msg = str(err.get("msg", "invalid value"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif msg.startswith("Assertion failed, "):
            msg = msg[len("Assertion failed, ") :]
        if err.get("type") not in ("missing", "value_error", "assertion_error") and "input" in err:
            msg += f" (got {_short(err['input'])})"
        if len(errs) > 1:
            msg += f" [{len(errs) - 1} more error(s)]"
        raise ConfigError(file, field or None, msg) from None
    _warn_unknown(obj, "", file, log or _log)
    return obj


def load_config(path: str | os.PathLike[str], model: type[M], *, log: _logging.Logger | None = None) -> M:
    """Load and validate a JSON config file in one step."""
    return parse_config(load_json(path), model, file=os.fspath(path), log=log)


def resolve_path(base_file: str | os.PathLike[str], value: str | os.PathLike[str]) -> Path:
    """Resolve a path from a config file against that file's directory (absolute paths unchanged)."""
    p = Path(os.path.expanduser(os.fspath(value)))
    if p.is_absolute():
        return p
    return Path(os.fspath(base_file)).parent / p
