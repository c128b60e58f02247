"""`influxasync` sink: InfluxDB writes with the influx client's background batching and retry
rules, reimplemented on aiohttp (spec collector §7.5).

Options (strict):

* `port`, `database`, `password` (token) — required; `organization` — required for InfluxDB
  2.x; `host` (not checked upstream, `localhost` when empty), `user`, `ssl` — as `influxdb`.
* `batch_size` (`5000`) — points per write.
* `flush_interval` (`1000`) — **integer milliseconds** between background writes.
* `custom_flush_interval` — Go duration; a one-shot timer started by the first write after a
  flush forces the next flush (the earlier of the two timers wins here).
* `retry_interval` — Go duration; upstream applies it as the *maximum* pause between retries
  (default 125 s).
* `retry_exponential_base` (`2`), `max_retries` (`5`), `max_retry_time` (`180s`).
* `max_retry_attempts` (`1`) — a failed batch is retried while its number of failures is at most
  this (and at most `max_retries`, within `max_retry_time`); then it is dropped with an error log.
* `precision` (`s`).
* `meta_as_tags`, `process_messages` — common options.

Lines follow writer A (`_encode.line_a`, as influxdb-client-go's point encoder) with the
timestamp in `precision`. The first retry waits 5 s (the client's retry interval), multiplied by
`retry_exponential_base` per further failure, capped by `retry_interval`. Start pings the server
(`/ping` must answer 204). Close flushes and closes.
"""

from __future__ import annotations

import time

from cccommon.message import CCMessage

from ._batch import _Batch
from ._encode import line_a
from ._influx import INFLUX_OPTIONS, InfluxBatchingSink, InfluxTarget
from .base import SinkError, SinkOptions, register

__all__ = ["InfluxAsyncSink"]


@register
class InfluxAsyncSink(InfluxBatchingSink):
    type = "influxasync"
    label = "InfluxAsyncSink"
    options = INFLUX_OPTIONS | {
        "batch_size",
        "flush_interval",
        "retry_interval",
        "retry_exponential_base",
        "max_retries",
        "max_retry_time",
        "custom_flush_interval",
        "max_retry_attempts",
    }
    retry_initial = 5.0
    retry_max = 125.0

    def configure(self, opts: SinkOptions) -> None:
        self.target = InfluxTarget(self, opts, require_host=False)
        batch_size = opts.get_int("batch_size") or 5000
        if batch_size < 0:
            raise SinkError(f"{self}: batch_size must be > 0")
        self.batch_size = batch_size
        self.max_request_lines = batch_size
        flush_ms = opts.get_int("flush_interval") or 1000
        if flush_ms < 0:
            raise SinkError(f"{self}: flush_interval must be a positive number of milliseconds")
        self.flush_delay = flush_ms / 1000.0
        if opts.has("custom_flush_interval") and opts.raw("custom_flush_interval"):
            raw = opts.raw("custom_flush_interval")
            custom = opts.get_duration("custom_flush_interval", None)
            if custom is None:
                raise SinkError(f"{self}: invalid duration in 'custom_flush_interval': {raw!r}")
            if custom > 0:
                self.flush_delay = min(self.flush_delay, custom)
        self.retry_max = opts.get_duration("retry_interval", None) or self.retry_max
        self.retry_initial = min(self.retry_initial, self.retry_max)
        base = opts.get_int("retry_exponential_base")
        if base:
            self.retry_factor = float(base)
        self.max_retries = opts.get_int("max_retries") or 5
        self.max_retry_time = opts.get_duration("max_retry_time", None) or 180.0
        attempts = opts.get_int("max_retry_attempts")
        self.max_retry_attempts = 1 if attempts is None else attempts

    def _encode(self, msg: CCMessage) -> str:
        return line_a(msg, self.target.unit_ns)

    def _give_up(self, batch: _Batch) -> bool:
        limit = min(self.max_retry_attempts, self.max_retries)
        too_long = time.monotonic() - batch.first_failure > self.max_retry_time
        if batch.failures > limit or too_long:
            self.log.error(
                "Failed to write batch with %d metrics %d times (max: %d)%s; dropped",
                len(batch.lines),
                batch.failures,
                self.max_retry_attempts,
                f", retried for more than {self.max_retry_time:g}s" if too_long else "",
            )
            return True
        return False

    async def _close_transport(self) -> None:
        await self.target.close()
