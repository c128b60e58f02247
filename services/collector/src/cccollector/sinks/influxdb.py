"""`influxdb` sink: batched writes to InfluxDB over HTTP (spec collector §7.4).

Options (strict):

* `host`, `port`, `database` (bucket), `password` (token) — required; `organization` — required
  for InfluxDB 2.x (the 1.x write API, chosen from the `/ping` version header, needs none).
* `user` — with it the token sent is `<user>:<password>` (InfluxDB 1.8 compatibility); on 1.x
  it is basic auth.
* `ssl` (`false`) — https; the certificate is not verified (as upstream).
* `batch_size` (`1000`, must be > 0) — write as soon as this many lines are buffered.
* `flush_delay` (`1s`) — batching window; `0` writes at every message.
* `precision` (`s`) — timestamps are encoded in this precision and sent as the `precision`
  parameter (upstream encodes nanoseconds and sends `s`; fixed).
* `http_request_timeout` (`20s`) — per request, whole seconds.
* `retry_interval`, `max_retry_interval`, `retry_exponential_base` — back-off between delivery
  rounds while the server is down or failing (first pause, largest pause, factor; defaults
  1 s, 30 s, 2). Upstream passes them to a client path that never retries.
* `max_retries`, `max_retry_time` — when given, a batch is dropped after that many failed
  rounds / that much time; by default it is kept (bounded by the sink's buffer).
* `use_gzip` (`false`) — gzip request bodies (`Content-Encoding: gzip`).
* `meta_as_tags`, `process_messages` — common options; a message dropped by the sink's own rules
  is just skipped (upstream aborts the process).

Start pings the server (`/ping` must answer 204) and fails otherwise. Lines are writer B
(`_encode.line_b`). HTTP 400/413/422 drop the batch; other failures retry with back-off.
"""

from __future__ import annotations

import time

from cccommon.message import CCMessage

from ._batch import _Batch
from ._encode import line_b, lines_b
from ._influx import INFLUX_OPTIONS, InfluxBatchingSink, InfluxTarget
from .base import SinkError, SinkOptions, register

__all__ = ["InfluxSink"]


@register
class InfluxSink(InfluxBatchingSink):
    type = "influxdb"
    label = "InfluxSink"
    options = INFLUX_OPTIONS | {
        "batch_size",
        "flush_delay",
        "http_request_timeout",
        "retry_interval",
        "max_retry_interval",
        "retry_exponential_base",
        "max_retries",
        "max_retry_time",
        "use_gzip",
    }

    def configure(self, opts: SinkOptions) -> None:
        self.target = InfluxTarget(self, opts)
        batch_size = opts.get_int("batch_size", 1000)
        if batch_size is None or batch_size <= 0:
            raise SinkError(f"{self}: batch_size={batch_size} in InfluxDB config must be > 0")
        self.batch_size = batch_size
        self.max_request_lines = batch_size
        self.flush_delay = opts.get_duration("flush_delay", 1.0) or 0.0
        timeout = opts.get_duration("http_request_timeout", 20.0)
        self.target.timeout = float(max(1, int(timeout))) if timeout else None
        self.target.gzip = opts.get_bool("use_gzip")
        self.retry_initial = opts.get_duration("retry_interval", self.retry_initial) or self.retry_initial
        self.retry_max = max(
            opts.get_duration("max_retry_interval", self.retry_max) or self.retry_max, self.retry_initial
        )
        base = opts.get_int("retry_exponential_base")
        if base:
            self.retry_factor = float(base)
        self.max_rounds = opts.get_int("max_retries")
        self.max_retry_time = opts.get_duration("max_retry_time", None)

    def _encode(self, msg: CCMessage) -> str:
        return line_b(msg, self.target.unit_ns)

    def _encode_many(self, msgs: list[CCMessage]) -> list[str]:
        return lines_b(msgs, self.target.unit_ns, self._encode_failed)

    def _give_up(self, batch: _Batch) -> bool:
        if self.max_rounds and batch.failures > self.max_rounds:
            self.log.error(
                "dropping a batch of %d lines after %d failed writes", len(batch.lines), batch.failures
            )
            return True
        if self.max_retry_time and time.monotonic() - batch.first_failure > self.max_retry_time:
            self.log.error(
                "dropping a batch of %d lines: retried for more than %gs",
                len(batch.lines),
                self.max_retry_time,
            )
            return True
        return False

    async def _close_transport(self) -> None:
        await self.target.close()
