"""`eecpt` receiver: HTTP line-protocol receiver with phase-transition detection for the EECPT
library (spec collector §8.4).

Options (lenient): every option of the `http` receiver (`address`, `port` default `"8080"`,
`path`, `idle_timeout`, `keep_alives_enabled`, `username`, `password`, `precision`,
`process_messages`), plus:

* `analysis_buffer_size` (`4`, must be > 0) — samples kept per task.
* `analysis_interval` (`5m`) — analysis period.
* `analysis_metric` (`region_metric`) — name of the messages that feed the analysis.

Every received message is forwarded like the `http` receiver does (meta
`source=EECPTReceiver(<name>)`). Messages named `analysis_metric` are also appended to the ring
buffer of their task (job, rank): job = tag `jobid`, else tag `application`, else `""`; rank =
tag `rank`, else field `rank`, overridden by tag or field `pid`; the sample is field `value`.
Every `analysis_interval`, per job: for each task with n >= 3 samples b, `prev = (b[n-2] - b[0]) /
(n - 2)` and `last = b[n-1] - b[n-2]`; when `prev > 1e-12`, `(last - prev)^2 / prev` is added up.
If the sum exceeds the 95 % chi-square limit for the job's number of tasks, an event `region`
with tags `type=node,stype=application,stype-id=<job>` and field `event="region changed"` goes
through the receiver's rules to the router, and every task buffer of that job keeps only its last
sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque

from cccommon.message import CCMessage, MessageError, new_message

from .base import ReceiverError, ReceiverOptions, register
from .http import HttpReceiver

__all__ = ["EECPTReceiver", "chi_square_limit", "job_statistic"]

#: (number of tasks below, 95 % chi-square limit)
_LIMITS = (
    (3, 3.8145),
    (5, 7.8147),
    (9, 14.067),
    (17, 24.996),
    (33, 44.985),
    (65, 82.529),
    (73, 91.670),
    (129, 154.30),
    (257, 293.25),
    (513, 564.70),
)


def chi_square_limit(tasks: int) -> float:
    for below, limit in _LIMITS:
        if tasks < below:
            return limit
    return 1098.5


def job_statistic(buffers: list[deque[float]]) -> float:
    """Sum over the tasks of a job of (last step - mean earlier step)^2 / mean earlier step."""
    total = 0.0
    for b in buffers:
        n = len(b)
        if n < 3:
            continue
        prev = (b[n - 2] - b[0]) / (n - 2)
        last = b[n - 1] - b[n - 2]
        if prev > 1e-12:
            total += (last - prev) ** 2 / prev
    return total


def _int(v: object) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        with contextlib.suppress(ValueError):
            return int(v.strip())
    return None


@register
class EECPTReceiver(HttpReceiver):
    type = "eecpt"
    label = "EECPTReceiver"
    options = HttpReceiver.options | {"analysis_buffer_size", "analysis_interval", "analysis_metric"}

    def configure(self, opts: ReceiverOptions) -> None:
        super().configure(opts)
        size = opts.get_int("analysis_buffer_size", 4)
        if size is None or size <= 0:
            raise ReceiverError(f"{self}: 'analysis_buffer_size' must be greater than 0")
        self.buffer_size = size
        self.analysis_interval = opts.get_duration("analysis_interval", 300.0)
        if self.analysis_interval <= 0:
            raise opts.err("analysis_interval", "must be a positive duration")
        self.analysis_metric = opts.get_str("analysis_metric", "region_metric") or "region_metric"
        #: job → rank → samples
        self.tasks: dict[str, dict[int, deque[float]]] = {}
        self.events = 0
        self._analysis: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        self._analysis = asyncio.create_task(self._analyse_loop(), name=f"{self} analysis")

    async def close(self) -> None:
        if self._analysis is not None:
            self._analysis.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._analysis
            self._analysis = None
        await super().close()

    async def handle_message(self, msg: CCMessage) -> None:
        if msg.name == self.analysis_metric:
            self._record(msg)
        await self.forward(msg)

    def _record(self, msg: CCMessage) -> None:
        value = msg.fields.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return
        job = msg.tags.get("jobid") or msg.tags.get("application") or ""
        rank = _int(msg.tags["rank"]) if "rank" in msg.tags else _int(msg.fields.get("rank"))
        pid = _int(msg.tags["pid"]) if "pid" in msg.tags else _int(msg.fields.get("pid"))
        if pid is not None:
            rank = pid
        key = rank if rank is not None else 0
        tasks = self.tasks.setdefault(job, {})
        buf = tasks.get(key)
        if buf is None:
            buf = tasks[key] = deque(maxlen=self.buffer_size)
        buf.append(float(value))

    async def _analyse_loop(self) -> None:
        while True:
            await asyncio.sleep(self.analysis_interval)
            try:
                await self.analyse()
            except Exception as e:  # the analysis must not stop the receiver
                self.limited(logging.ERROR, "analysis", "analysis failed: %r", e)

    async def analyse(self) -> None:
        """One analysis round over every job (also callable directly)."""
        for job, tasks in list(self.tasks.items()):
            stat = job_statistic(list(tasks.values()))
            if stat <= chi_square_limit(len(tasks)):
                continue
            self.log.debug("job %r: statistic %g over the limit: region changed", job, stat)
            for buf in tasks.values():
                if buf:
                    last = buf[-1]
                    buf.clear()
                    buf.append(last)
            try:
                event = new_message(
                    "region",
                    {"type": "node", "stype": "application", "stype-id": job},
                    self.meta,
                    {"event": "region changed"},
                    time.time_ns(),
                )
            except MessageError as e:
                self.limited(logging.ERROR, "event", "cannot create the region event: %s", e)
                continue
            self.events += 1
            await self.forward(event)
