"""`prometheus` receiver: scrapes a Prometheus text exposition endpoint (spec collector §8.3).

Options (lenient: unknown keys are ignored with a warning):

* `address`, `port` (required; `port` string or number) — the target.
* `interval` (`5s`, the value the upstream README documents; upstream requires the key) — scrape
  period; the first scrape happens at start.
* `path` (`""`) — URL path; the URL is `<scheme>://<address>:<port>/<path>` with exactly one
  slash before the path (upstream writes two when `path` starts with `/`).
* `ssl` (`false`) — use `https` (certificates are verified).
* `process_messages` — the receiver's own rules (upstream accepts but never applies them; here
  they are applied).

Every scrape parses the text format (version 0.0.4, and OpenMetrics text): `#` lines and blank
lines are skipped; `name{label="value",...} value [timestamp]` becomes a message `name` with the
labels as tags (escapes `\\\\`, `\\"`, `\\n` decoded, commas and braces inside values kept; labels
with an empty value are left out, as Prometheus treats them as absent), field `value` as float,
meta `source=PrometheusReceiver(<name>)`. The time is the sample's own timestamp when the target
exposes one (milliseconds; seconds for OpenMetrics), else the scrape time. Lines whose value does
not parse or is NaN/±Inf are skipped. The target's host name is not added (the router adds the
receiving host's). An HTTP or connection error is logged once when the target starts failing and
once when it works again; the receiver keeps scraping (upstream terminates the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass

import aiohttp

from cccommon.message import CCMessage, MessageError, new_message

from .base import PollingReceiver, ReceiverError, ReceiverOptions, register

__all__ = ["PrometheusReceiver", "Sample", "parse_exposition"]

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_SPACE = " \t"


@dataclass(slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    #: nanoseconds since the epoch, None when the target gives no timestamp
    time: int | None = None


class _Bad(ValueError):
    pass


def _quoted(s: str, i: int) -> tuple[str, int]:
    """The string starting at the quote s[i]; returns (text, index after the closing quote)."""
    out: list[str] = []
    i += 1
    n = len(s)
    start = i
    while i < n:
        c = s[i]
        if c == '"':
            out.append(s[start:i])
            return "".join(out), i + 1
        if c == "\\" and i + 1 < n:
            out.append(s[start:i])
            nxt = s[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            start = i
            continue
        i += 1
    raise _Bad("unterminated quoted string")


def _skip(s: str, i: int) -> int:
    while i < len(s) and s[i] in _SPACE:
        i += 1
    return i


def _labels(s: str, i: int, name: str) -> tuple[str, dict[str, str], int]:
    """Parse `{...}` starting at s[i] == '{'; a quoted entry without `=` is the metric name."""
    labels: dict[str, str] = {}
    i += 1
    n = len(s)
    while True:
        i = _skip(s, i)
        if i >= n:
            raise _Bad("unterminated label set")
        if s[i] == "}":
            return name, labels, i + 1
        if s[i] == '"':
            key, i = _quoted(s, i)
        else:
            j = i
            while j < n and s[j] not in '=,}"' and s[j] not in _SPACE:
                j += 1
            key, i = s[i:j], j
        i = _skip(s, i)
        if i < n and s[i] in ",}" and not name:  # {"metric.name", ...}
            name = key
        else:
            if i >= n or s[i] != "=" or not key:
                raise _Bad('expected label="value"')
            i = _skip(s, i + 1)
            if i >= n or s[i] != '"':
                raise _Bad(f"label {key!r}: value must be quoted")
            value, i = _quoted(s, i)
            labels[key] = value
            i = _skip(s, i)
        if i < n and s[i] == ",":
            i += 1
        elif i < n and s[i] == "}":
            continue
        else:
            raise _Bad("expected ',' or '}' in the label set")


def parse_sample(line: str, openmetrics: bool = False) -> Sample | None:
    """One exposition line → Sample; None for blank lines, comments and unparsable lines."""
    s = line.strip()
    if not s or s[0] == "#":
        return None
    try:
        n = len(s)
        i = 0
        name = ""
        if s[0] != "{":
            while i < n and s[i] != "{" and s[i] not in _SPACE:
                i += 1
            name = s[:i]
        labels: dict[str, str] = {}
        i = _skip(s, i)
        if i < n and s[i] == "{":
            name, labels, i = _labels(s, i, name)
        if not name:
            return None
        rest = s[i:].split("#", 1)[0].split()  # OpenMetrics exemplars follow a '#'
        if not rest:
            return None
        value = float(rest[0])
        ts: int | None = None
        if len(rest) > 1:
            if openmetrics:
                ts = int(float(rest[1]) * 1e9)
            elif rest[1].lstrip("+-").isdigit():
                ts = int(rest[1]) * 1_000_000
            else:
                ts = int(float(rest[1]) * 1e6)
    except (_Bad, ValueError, OverflowError):
        return None
    return Sample(name, labels, value, ts)


def parse_exposition(text: str, openmetrics: bool = False) -> list[Sample]:
    """All samples of a scrape body, skipping what does not parse."""
    out: list[Sample] = []
    for line in text.splitlines():
        smp = parse_sample(line, openmetrics)
        if smp is not None:
            out.append(smp)
    return out


def _messages(samples: list[Sample], meta: dict[str, str], now: int) -> list[CCMessage]:
    out: list[CCMessage] = []
    for smp in samples:
        if not math.isfinite(smp.value):
            continue
        tags = {k: v for k, v in smp.labels.items() if v != "" and k != "__name__"}
        try:
            out.append(new_message(smp.name, tags, meta, {"value": smp.value}, smp.time or now))
        except MessageError:
            continue
    return out


@register
class PrometheusReceiver(PollingReceiver):
    type = "prometheus"
    label = "PrometheusReceiver"
    options = frozenset({"address", "port", "path", "interval", "ssl"})
    accept = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"

    def configure(self, opts: ReceiverOptions) -> None:
        address = opts.get_str("address", "") or ""
        port = opts.get_port("port")
        if not address or not port:
            raise ReceiverError(
                f"{self}: not all configuration variables set required by PrometheusReceiver (address and port)"
            )
        self.interval = opts.get_duration("interval", 5.0)
        if self.interval <= 0:
            raise opts.err("interval", "must be a positive duration")
        host = f"[{address}]" if ":" in address and not address.startswith("[") else address
        scheme = "https" if opts.get_bool("ssl") else "http"
        path = (opts.get_str("path", "") or "").lstrip("/")
        self.url = f"{scheme}://{host}:{port}/{path}"
        self._session: aiohttp.ClientSession | None = None
        self._failing = False
        self.scrapes = 0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=max(1.0, self.interval)),
            headers={"Accept": self.accept, "User-Agent": "cc-metric-collector"},
        )
        self.log.info("scraping %s every %gs", self.url, self.interval)
        await super().start()

    async def poll(self) -> None:
        assert self._session is not None
        now = time.time_ns()
        try:
            async with self._session.get(self.url) as resp:
                if resp.status != 200:
                    raise ReceiverError(f"HTTP {resp.status} {resp.reason}")
                openmetrics = "openmetrics" in resp.headers.get("Content-Type", "")
                body = await resp.read()
        except (aiohttp.ClientError, TimeoutError, ReceiverError, OSError) as e:
            if not self._failing:
                self._failing = True
                self.log.error("scrape of %s failed: %s", self.url, str(e) or type(e).__name__)
            else:
                self.log.debug("scrape of %s failed again: %r", self.url, e)
            return
        if self._failing:
            self._failing = False
            self.log.info("scrape of %s works again", self.url)
        text = body.decode("utf-8", "replace")
        if len(body) > self.thread_threshold:
            msgs = await asyncio.to_thread(_parse_to_messages, text, openmetrics, self.meta, now)
        else:
            msgs = _parse_to_messages(text, openmetrics, self.meta, now)
        self.scrapes += 1
        await self.forward_all(msgs)

    async def close(self) -> None:
        await super().close()
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()


def _parse_to_messages(text: str, openmetrics: bool, meta: dict[str, str], now: int) -> list[CCMessage]:
    return _messages(parse_exposition(text, openmetrics), meta, now)
