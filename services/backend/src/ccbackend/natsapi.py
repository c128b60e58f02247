"""The NATS job and node API (spec backend-data.md §4.12), enabled by `main.api-subjects` + `nats`.

Messages are InfluxDB line protocol whose string field `event` holds the JSON payload of the REST
endpoint: `job,function=start_job event="{...}"`, `job,function=stop_job event="{...}"` on
`subject-job-event`, `nodestate event="{...}"` on `subject-node-state`.  The same validation, duplicate
and stop rules as the REST endpoints apply (the handlers are shared); there are no replies, so every
rejected message is logged with its reason.  Concurrency is bounded by `job-concurrency` and
`node-concurrency`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from cccommon.lineprotocol import parse_lines

from .api.common import ApiError

__all__ = ["NatsJobApi"]

log = logging.getLogger("ccbackend.nats")


class NatsJobApi:
    """Subscribes the job and node-state subjects and feeds the shared REST logic."""

    def __init__(self, handlers: Any, nats_cfg: Any, subjects: Any) -> None:
        self.handlers = handlers
        self.nats_cfg = nats_cfg
        self.subjects = subjects
        self.nc: Any = None
        self._job_sem = asyncio.Semaphore(max(1, int(subjects.job_concurrency or 8)))
        self._node_sem = asyncio.Semaphore(max(1, int(subjects.node_concurrency or 2)))
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        import nats

        opts: dict[str, Any] = {"servers": [self.nats_cfg.address], "max_reconnect_attempts": -1}
        if self.nats_cfg.username:
            opts["user"] = self.nats_cfg.username
            opts["password"] = self.nats_cfg.password
        if self.nats_cfg.creds_file_path:
            opts["user_credentials"] = self.nats_cfg.creds_file_path
        self.nc = await nats.connect(**opts)
        await self.nc.subscribe(self.subjects.subject_job_event, cb=self._on_job)
        await self.nc.subscribe(self.subjects.subject_node_state, cb=self._on_node)
        log.info(
            "NATS job API: job events on %r, node states on %r (%s)",
            self.subjects.subject_job_event, self.subjects.subject_node_state, self.nats_cfg.address,
        )

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.nc is not None:
            await self.nc.drain()
            self.nc = None

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    @staticmethod
    def _events(data: bytes, subject: str) -> list[tuple[str, dict[str, str], Any]]:
        lines, errors = parse_lines(data)
        for e in errors:
            log.warning("NATS %s: invalid line protocol: %s", subject, e)
        out = []
        for line in lines:
            raw = line.fields.get("event")
            if not isinstance(raw, str):
                log.warning("NATS %s: message %r has no string field 'event'", subject, line.measurement)
                continue
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                log.warning("NATS %s: event of %r is not JSON: %s", subject, line.measurement, e)
                continue
            out.append((line.measurement, line.tags, payload))
        return out

    async def _on_job(self, msg: Any) -> None:
        for measurement, tags, payload in self._events(msg.data, msg.subject):
            self._spawn(self._job_event(measurement, tags.get("function", ""), payload))

    async def _job_event(self, measurement: str, function: str, payload: Any) -> None:
        async with self._job_sem:
            try:
                if function == "start_job":
                    new_id = await self.handlers.do_start_job(payload, None)
                    log.info("NATS start_job: job registered with db id %d", new_id)
                elif function == "stop_job":
                    out = await self.handlers.stop_from_body(payload)
                    log.info("NATS stop_job: job %s stopped (%s)", out.get("id"), out.get("jobState"))
                else:
                    log.warning("NATS job event %r with unknown function %r ignored", measurement, function)
            except ApiError as e:
                log.warning("NATS %s rejected (%d): %s", function or measurement, e.status, e.message)
            except Exception:
                log.exception("NATS %s failed", function or measurement)

    async def _on_node(self, msg: Any) -> None:
        for _m, _tags, payload in self._events(msg.data, msg.subject):
            self._spawn(self._node_event(payload))

    async def _node_event(self, payload: Any) -> None:
        from .api.common import decode_body
        from .api.rest import NodeStateRequest

        async with self._node_sem:
            try:
                req = decode_body(payload, NodeStateRequest)
                await self.handlers.ctx.nodestates.report(
                    req.cluster, [n.model_dump() for n in req.nodes], int(time.time())
                )
            except (ApiError, ValueError) as e:
                log.warning("NATS node state rejected: %s", getattr(e, "message", e))
            except Exception:
                log.exception("NATS node state failed")
