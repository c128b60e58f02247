"""What sinks and receivers share: option decoding, rate-limited logging, the rules-engine hook
and the `sinks.json`/`receivers.json` name → config forms.

`ComponentOptions` decodes one component's option object the way Go's JSON decoder does (keys
match case-insensitively, aliases allowed) with typed getters whose errors name the component and
the key as the user spelled it; subclasses set the error type and the options every component of
their kind accepts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import orjson

from cccommon.durations import parse_duration

__all__ = ["ComponentOptions", "LimitedLog", "MessageProcessor", "ProcessorFactory", "named_configs"]


class MessageProcessor(Protocol):
    """The rules engine of spec §5.3 as sinks and receivers see it."""

    def process(self, msg: Any) -> Any: ...


#: turns a `process_messages` value (object or list) into a MessageProcessor; raises on bad config
ProcessorFactory = Callable[[Any], MessageProcessor]


class ComponentOptions:
    """The decoded option object of one component: case-insensitive keys, typed getters, clear errors."""

    #: raised for bad options
    error: ClassVar[type[Exception]] = ValueError
    #: keys every component of this kind accepts
    common: ClassVar[frozenset[str]] = frozenset()
    default_log: ClassVar[logging.Logger] = logging.getLogger("collector")

    def __init__(
        self,
        label: str,
        config: Mapping[str, Any] | None,
        allowed: Iterable[str],
        aliases: Mapping[str, str] | None = None,
        strict: bool = True,
        logger: logging.Logger | None = None,
    ) -> None:
        self.label = label
        self.log = logger or self.default_log
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise self.error(f"{label}: the configuration must be a JSON object, not {type(config).__name__}")
        lower = {k.lower(): k for k in set(allowed) | self.common}
        lower.update({a.lower(): canon for a, canon in (aliases or {}).items()})
        self.values: dict[str, Any] = {}
        #: the spelling the user wrote, for error messages
        self.spelled: dict[str, str] = {}
        unknown: list[str] = []
        for key, value in config.items():
            canon = lower.get(str(key).lower())
            if canon is None:
                unknown.append(str(key))
                continue
            self.values[canon] = value
            self.spelled[canon] = str(key)
        if unknown:
            if strict:
                keys = ", ".join(repr(k) for k in unknown)
                raise self.error(f"{label}: unknown configuration key(s) {keys}")
            self.log.warning("ignoring unknown configuration key(s) %s", ", ".join(unknown))

    def has(self, key: str) -> bool:
        return key in self.values

    def raw(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def err(self, key: str, what: str) -> Exception:
        return self.error(f"{self.label}: option {self.spelled.get(key, key)!r} {what}")

    def get_str(self, key: str, default: str | None = None) -> str | None:
        value = self.values.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.err(key, f"must be a string, not {value!r}")
        return value

    def get_port(self, key: str, default: str | None = None) -> str | None:
        """A port option: a JSON string upstream, numbers accepted too (PX-2)."""
        value = self.values.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.err(key, f"must be a port number, not {value!r}")
        text = str(value).strip()
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise self.err(key, f"must be a port number between 1 and 65535, not {value!r}")
        return text

    def get_int(self, key: str, default: int | None = None) -> int | None:
        value = self.values.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise self.err(key, f"must be an integer, not {value!r}")
        return int(value)

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self.values.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.err(key, f"must be true or false, not {value!r}")
        return value

    def get_duration(self, key: str, default: Any, strict: bool = False) -> Any:
        """Seconds of a Go duration string; a bad value keeps the default with a warning (or fails)."""
        value = self.values.get(key)
        if value is None or value == "":
            return default
        if not isinstance(value, str):
            raise self.err(key, f'must be a Go duration string such as "5s", not {value!r}')
        try:
            return parse_duration(value)
        except ValueError as e:
            if strict:
                raise self.err(key, f"is not a valid duration: {e}") from None
            self.log.warning("option %r: %s; keeping the default", self.spelled.get(key, key), e)
            return default

    def get_list(self, key: str) -> list[str]:
        value = self.values.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise self.err(key, f"must be a list of strings, not {value!r}")
        return list(value)


class LimitedLog:
    """At most one line per key and period; repeats are counted and reported with the next line."""

    def __init__(self, logger: logging.Logger, period: float = 60.0) -> None:
        self.log = logger
        self.period = period
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, level: int, key: str, fmt: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        n = self._suppressed.pop(key, 0)
        if n:
            fmt += " (%d similar messages suppressed)"
            args = (*args, n)
        self.log.log(level, fmt, *args)


def named_configs(
    config: Any, kind: str, error: type[Exception], none_ok: bool = False
) -> list[tuple[str, Any]]:
    """(name, config) pairs of a `sinks`/`receivers` section: an object, a list, or raw JSON.

    List entries may carry a `name`; otherwise they are called `<type><index>`. `None` is an empty
    section when `none_ok`, else an error.
    """
    if config is None and none_ok:
        return []
    if isinstance(config, bytes | str):
        try:
            config = orjson.loads(config) if config.strip() else {}
        except orjson.JSONDecodeError as e:
            raise error(f"{kind}s: invalid JSON: {e}") from None
    if isinstance(config, Mapping):
        return [(str(k), v) for k, v in config.items()]
    if isinstance(config, Sequence):
        out: list[tuple[str, Any]] = []
        for i, c in enumerate(config):
            if isinstance(c, Mapping) and isinstance(c.get("name"), str):
                c = dict(c)
                out.append((c.pop("name"), c))
            else:
                typ = c.get("type", kind) if isinstance(c, Mapping) else kind
                out.append((f"{typ}{i}", c))
        return out
    raise error(f"{kind}s: the configuration must be a JSON object, not {type(config).__name__}")
