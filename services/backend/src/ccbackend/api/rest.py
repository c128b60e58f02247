"""The REST API under `/api/` and `/userapi/` (spec backend-data.md §4.3-4.10, decisions.md).

Handlers validate input strictly (unknown JSON keys and query parameters → 400 naming them), call the
repository / archive / metric-data layers, and answer with upstream's JSON shapes and status codes.
Authentication happens before a handler runs (auth middleware per route group); handlers read the
caller from `request["principal"]` and apply the row-level visibility rules themselves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from typing import Any

from aiohttp import web
from pydantic import Field, field_validator

from ..auth.errors import AuthError
from ..auth.middleware import get_principal
from ..auth.principal import Principal
from ..auth.roles import apply_visibility, can_read_tag_scope, can_see_job, can_write_tag_scope
from ..auth.users import UserError, list_users, modify_user
from ..clusters import ClusterError
from ..jobdata import JobDataError, load_job_data, metrics_list
from ..model import JOB_STATES, BadRequest, Job, JobTag
from ..repository.base import DuplicateJobError, JobFilter, RepositoryError
from .common import ApiError, Route, StrictBody, decode_body, error_response, json_response, read_json

__all__ = ["ApiHandlers", "routes"]

log = logging.getLogger("ccbackend.api")

SCOPES = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")
DUPLICATE_WINDOW = 86400


# ---- request bodies --------------------------------------------------------------------------------
class StopJobRequest(StrictBody):
    """Body of stop_job: identifies the job (unless the DB id is in the path) and gives its end."""

    job_id: int | None = None
    cluster: str | None = None
    start_time: int | None = None
    job_state: str = ""
    stop_time: int = 0


class TagItem(StrictBody):
    type: str
    name: str
    scope: str = ""


class EditMetaRequest(StrictBody):
    key: str
    value: str


class EditMetaByJobRequest(StrictBody):
    job_id: int | None = None
    cluster: str | None = None
    start_time: int | None = None
    payload: EditMetaRequest


class DeleteJobRequest(StrictBody):
    job_id: int | None = None
    cluster: str | None = None
    start_time: int | None = None


class UpdateUserRequest(StrictBody):
    add_role: str = Field("", alias="add-role")
    remove_role: str = Field("", alias="remove-role")
    add_project: str = Field("", alias="add-project")
    remove_project: str = Field("", alias="remove-project")


class NodeReport(StrictBody):
    hostname: str
    states: list[str] = Field(default_factory=list)
    cpus_allocated: int = 0
    memory_allocated: int = 0
    gpus_allocated: int = 0
    jobs_running: int = 0

    @field_validator("hostname")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v:
            raise BadRequest("hostname must not be empty")
        return v


class NodeStateRequest(StrictBody):
    cluster: str
    nodes: list[NodeReport] = Field(default_factory=list)


# ---- principal helpers ----------------------------------------------------------------------------
def _principal(request: web.Request) -> Principal:
    return get_principal(request)


def visibility(principal: Principal, flt: JobFilter) -> JobFilter:
    """Restrict a filter to the jobs the caller may see (spec backend-behaviour §1.3); 403 without a role."""
    try:
        return apply_visibility(principal, flt)
    except PermissionError as e:
        raise ApiError(403, str(e)) from None


# ---- query-string parsing ---------------------------------------------------------------------------
def _int_param(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"invalid query parameter value: {name}") from None


def _path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"integer expected in path for {name}") from None


class ApiHandlers:
    """The handlers of `/api/` and `/userapi/`, bound to one BackendContext."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    # -- helpers -------------------------------------------------------------------------------------
    async def _tags_json(self, principal: Principal, job_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        tags = await self.ctx.repo.job_tags(job_ids) if job_ids else {}
        return {
            jid: [t.model_dump(by_alias=True) for t in ts if can_read_tag_scope(principal, t.scope)] for jid, ts in tags.items()
        }

    async def _statistics(self, job: Job) -> dict[str, Any] | None:
        if job.monitoring_status != 3:
            return None
        try:
            meta = await asyncio.to_thread(self.ctx.archive.load_meta, job.cluster, job.job_id, job.start_time)
        except Exception as e:
            log.warning("statistics of job %s (%s %s) unavailable: %s", job.id, job.cluster, job.job_id, e)
            return None
        stats = meta.get("statistics") if isinstance(meta, dict) else getattr(meta, "statistics", None)
        if stats is None:
            return None
        if not isinstance(stats, dict):
            return stats
        return {k: (v.model_dump(mode="json", by_alias=True, exclude_none=True) if hasattr(v, "model_dump") else v)
                for k, v in stats.items()}

    async def _job_out(self, principal: Principal, job: Job, *, tags: bool = True, stats: bool = True) -> dict[str, Any]:
        out = job.to_json_dict()
        if tags and job.id is not None:
            t = (await self._tags_json(principal, [job.id])).get(job.id) or []
            if t:
                out["tags"] = t
            else:
                out.pop("tags", None)
        if stats:
            out["statistics"] = await self._statistics(job)
        out.setdefault("concurrentJobs", {"items": None, "count": 0})
        if out.get("concurrentJobs") is None:
            out["concurrentJobs"] = {"items": None, "count": 0}
        return out

    async def _visible_job(self, request: web.Request, id: int, *, status: int = 422) -> Job:
        job = await self.ctx.repo.get_job(id)
        principal = _principal(request)
        if job is None:
            raise ApiError(status, f"finding job with db id {id} failed: sql: no rows in result set")
        if not can_see_job(principal, job):
            raise ApiError(status, f"finding job with db id {id} failed: job not visible for the current user")
        return job

    def _resolution(self) -> int | None:
        res = getattr(self.ctx.config.main, "resampling", None)
        if res is None or not getattr(res, "resolutions", None):
            return None
        return int(max(res.resolutions))

    # -- start / stop --------------------------------------------------------------------------------
    async def start_job(self, request: web.Request) -> web.Response:
        new_id = await self.do_start_job(await read_json(request), _principal(request))
        return json_response({"msg": "success", "id": new_id}, 201)

    async def do_start_job(self, body: Any, principal: Principal | None) -> int:
        """Validate and register a running job (REST and NATS); returns the DB id, ApiError otherwise.

        `principal` None (NATS path) means no user context: tags sent with the job are attached with the
        rights of an api-only principal, which is what the scheduler adapter holds on the REST path.
        """
        if not isinstance(body, dict):
            raise ApiError(400, "parsing request body failed: expected a JSON object")
        try:
            job = Job.parse_api(body)
        except BadRequest as e:
            raise ApiError(400, str(e)) from None
        if principal is None:
            principal = Principal(username="nats", roles=("api",))
        job.job_state = "running"
        job.id = None
        job.duration = 0
        job.statistics = None
        self._check_start(job)
        async with self.ctx.start_lock:
            for db_id, start in await self.ctx.repo.start_times(job.job_id, job.cluster):
                if job.start_time - start < DUPLICATE_WINDOW:
                    raise ApiError(
                        422,
                        "a job with that jobId, cluster and startTime already exists: "
                        f"dbid: {db_id}, jobid: {job.job_id}",
                    )
            tags = job.tags or []
            job.tags = None
            try:
                new_id = await self.ctx.repo.insert_job(job)
            except DuplicateJobError as e:
                raise ApiError(422, f"a job with that jobId, cluster and startTime already exists: {e}") from None
            except RepositoryError as e:
                raise ApiError(500, f"insert into database failed: {e}") from None
        for t in tags:
            try:
                await self._add_tag(principal, new_id, t.type, t.name, t.scope)
            except ApiError as e:
                raise ApiError(500, f"adding tag to new job {new_id} failed: {e.message}") from None
        job.id = new_id
        log.info(
            "new job (id: %d): cluster=%s, jobId=%d, user=%s, startTime=%d",
            new_id, job.cluster, job.job_id, job.user, job.start_time,
        )
        hooks = self.ctx.extra.get("on_job_start")
        if hooks is not None:
            await hooks(job)
        return new_id

    def _check_start(self, job: Job) -> None:
        reg = self.ctx.registry
        if job.cluster not in reg:
            raise ApiError(400, f"no such cluster: {job.cluster}")
        if not job.resources:
            raise ApiError(400, "resources must not be empty")
        if not job.user:
            raise ApiError(400, "user must not be empty")
        if job.num_nodes < 1:
            raise ApiError(400, f"numNodes must be at least 1 (got {job.num_nodes})")
        if job.num_acc < 0 or job.num_hwthreads < 0:
            raise ApiError(400, "numAcc and numHwthreads must not be negative")
        if len(job.resources) != job.num_nodes:
            raise ApiError(
                400, f"numNodes ({job.num_nodes}) does not match the number of resources ({len(job.resources)})"
            )
        if job.shared not in ("none", "single_user", "multi_user"):
            raise ApiError(400, f"invalid value for shared: {job.shared!r}")
        if job.sub_cluster:
            try:
                reg.sub_cluster(job.cluster, job.sub_cluster)
            except ClusterError as e:
                raise ApiError(400, str(e)) from None
        else:
            sc = reg.assign_sub_cluster(job.cluster, [r.hostname for r in job.resources])
            if not sc:
                raise ApiError(400, f"no subcluster of cluster {job.cluster!r} contains host {job.resources[0].hostname}")
            job.sub_cluster = sc

    async def _stop(self, req: StopJobRequest, job: Job) -> web.Response:
        return json_response(await self.do_stop_job(req, job), 200)

    async def _job_of_body(self, req: Any, missing: int) -> Job:
        """The newest job matching a body's jobId (+ cluster, startTime); 400 without jobId, `missing` if none."""
        if req.job_id is None:
            raise ApiError(400, "the field 'jobId' is required")
        job = await self.ctx.repo.find_job(req.job_id, req.cluster, req.start_time)
        if job is None:
            raise ApiError(missing, "finding job failed: sql: no rows in result set")
        return job

    async def stop_from_body(self, body: Any) -> dict[str, Any]:
        """stop_job with the job identified in the body (REST and NATS); the stopped job's JSON."""
        req = decode_body(body, StopJobRequest)
        return await self.do_stop_job(req, await self._job_of_body(req, 404))

    async def do_stop_job(self, req: StopJobRequest, job: Job) -> dict[str, Any]:
        if job.job_state != "running":
            raise ApiError(
                422,
                f"jobId {job.job_id} (id {job.id}) on {job.cluster} : job has already been stopped "
                f"(state is: {job.job_state})",
            )
        if job.start_time > req.stop_time:
            raise ApiError(400, f"stopTime {req.stop_time} must be larger/equal than startTime {job.start_time}")
        state = req.job_state or "completed"
        if state not in JOB_STATES or state == "running":
            raise ApiError(400, f"invalid job state: {state!r}")
        job.job_state = state
        job.duration = req.stop_time - job.start_time
        await self.ctx.repo.stop_job(job.id, state, job.duration, job.monitoring_status)
        log.info(
            "archiving job (dbid: %d): cluster=%s, jobId=%d, user=%s, startTime=%d, duration=%d, state=%s",
            job.id, job.cluster, job.job_id, job.user, job.start_time, job.duration, state,
        )
        out = job.to_json_dict()
        out.pop("tags", None)
        out["metaData"] = None  # upstream's stop path does not load metadata or tags
        out["statistics"] = None
        out.setdefault("concurrentJobs", {"items": None, "count": 0})
        if job.monitoring_status != 0 and self.ctx.archiver is not None:
            await self.ctx.archiver.enqueue(job)
        return out

    async def stop_job(self, request: web.Request) -> web.Response:
        return json_response(await self.stop_from_body(await read_json(request)), 200)

    async def stop_job_by_id(self, request: web.Request) -> web.Response:
        id = _path_id(request)
        req = decode_body(await read_json(request), StopJobRequest)
        job = await self.ctx.repo.get_job(id)
        if job is None:
            raise ApiError(404, f"finding job with db id {id} failed: sql: no rows in result set")
        if req.job_id is not None and req.job_id != job.job_id:
            raise ApiError(400, f"jobId {req.job_id} does not match the job with db id {id} (jobId {job.job_id})")
        if req.cluster and req.cluster != job.cluster:
            raise ApiError(400, f"cluster {req.cluster!r} does not match the job with db id {id} ({job.cluster})")
        return await self._stop(req, job)

    # -- queries -------------------------------------------------------------------------------------
    async def list_jobs(self, request: web.Request) -> web.Response:
        principal = _principal(request)
        flt = JobFilter()
        page, items, with_meta = 1, 25, False
        for key, value in request.query.items():
            if key == "state":
                if value not in JOB_STATES:
                    raise ApiError(400, "invalid query parameter value: state")
                flt.state = [*(flt.state or []), value]
            elif key == "cluster":
                flt.cluster = [value]
            elif key == "project":
                flt.project = [value]
            elif key == "start-time":
                m = re.fullmatch(r"(\d+)-(\d+)", value)
                if not m:
                    raise ApiError(400, "invalid query parameter value: startTime")
                flt.start_time = (int(m.group(1)), int(m.group(2)))
            elif key == "page":
                page = _int_param(value, "page")
                if page < 1:
                    raise ApiError(400, "invalid query parameter value: page")
            elif key == "items-per-page":
                items = _int_param(value, "items-per-page")
                if items < 1:
                    raise ApiError(400, "invalid query parameter value: items-per-page")
            elif key == "with-metadata":
                with_meta = True
            else:
                raise ApiError(400, f"invalid query parameter: {key}")
        flt = visibility(principal, flt)
        jobs = await self.ctx.repo.list_jobs(flt, None, items, (page - 1) * items, with_meta)
        tags = await self._tags_json(principal, [j.id for j in jobs if j.id is not None])
        stats = await asyncio.gather(*(self._statistics(j) for j in jobs))
        out = []
        for job, st in zip(jobs, stats, strict=True):
            d = job.to_json_dict()
            t = tags.get(job.id or 0)
            if t:
                d["tags"] = t
            else:
                d.pop("tags", None)
            if not with_meta:
                d["metaData"] = None
            d["statistics"] = st
            if d.get("concurrentJobs") is None:
                d["concurrentJobs"] = {"items": None, "count": 0}
            out.append(d)
        return json_response({"jobs": out, "items": items, "page": page})

    async def get_job(self, request: web.Request) -> web.Response:
        principal = _principal(request)
        id = _path_id(request)
        job = await self._visible_job(request, id)
        unknown = [k for k in request.query if k != "all-metrics"]
        if unknown:
            raise ApiError(400, f"invalid query parameter: {unknown[0]}")
        meta = await self._job_out(principal, job)
        data = None
        if request.query.get("all-metrics", "").lower() == "true":
            scopes = ["core"] if job.num_nodes == 1 else ["node"]
            try:
                data = await load_job_data(self.ctx, job, None, scopes, None)
            except JobDataError as e:
                log.warning("%s", e)
                return web.Response(status=200)
        return json_response({"Meta": meta, "Data": data})

    async def post_job(self, request: web.Request) -> web.Response:
        principal = _principal(request)
        id = _path_id(request)
        body = await read_json(request)
        if body is not None and (not isinstance(body, list) or not all(isinstance(m, str) for m in body)):
            raise ApiError(400, "parsing request body failed: expected a JSON array of metric names")
        job = await self._visible_job(request, id)
        meta = await self._job_out(principal, job)
        metrics = None if body is None else list(body)
        if metrics == []:
            return json_response({"Meta": meta, "Data": []})
        scopes = ["core"] if job.num_nodes == 1 else ["node"]
        try:
            data = await load_job_data(self.ctx, job, metrics, scopes, None)
        except JobDataError as e:
            raise ApiError(500, str(e)) from None
        return json_response({"Meta": meta, "Data": metrics_list(data)})

    async def job_metrics(self, request: web.Request) -> web.Response:
        id = _path_id(request)
        metrics: list[str] | None = None
        scopes: list[str] = []
        for key, value in request.query.items():
            if key == "metric":
                metrics = [*(metrics or []), value]
            elif key == "scope":
                if value not in SCOPES:
                    raise ApiError(400, f"invalid scope: {value}")
                scopes.append(value)
            else:
                raise ApiError(400, f"invalid query parameter: {key}")
        try:
            job = await self._visible_job(request, id)
            data = await load_job_data(self.ctx, job, metrics, scopes or None, self._resolution())
        except (ApiError, JobDataError) as e:
            msg = e.message if isinstance(e, ApiError) else str(e)
            return json_response({"data": None, "error": {"message": msg}})
        return json_response({"data": {"jobMetrics": metrics_list(data)}, "error": None})

    async def used_nodes(self, request: web.Request) -> web.Response:
        principal = _principal(request)
        if not principal.has_role("api"):
            raise ApiError(403, "missing role: api")
        if "ts" not in request.query:
            raise ApiError(400, "missing query parameter: ts")
        ts = _int_param(request.query["ts"], "ts")
        return json_response({"usedNodes": await self.ctx.repo.used_nodes(ts)})

    # -- tags ----------------------------------------------------------------------------------------
    async def _add_tag(self, principal: Principal, job_id: int, tag_type: str, name: str, scope: str) -> JobTag:
        scope = scope or "global"
        if not can_write_tag_scope(principal, scope):
            raise ApiError(500, "adding tag failed: cannot write tag scope with current authorization")
        repo = self.ctx.repo
        tag = await repo.find_tag(tag_type, name, scope)
        try:
            if tag is None:
                tag = await repo.create_tag(tag_type, name, scope)
            await repo.attach_tag(job_id, tag.id)
        except RepositoryError as e:
            raise ApiError(500, f"adding tag failed: {e}") from None
        return tag

    async def _sync_archive_tags(self, job: Job) -> None:
        if job.job_state == "running":
            return
        tags = (await self.ctx.repo.job_tags([job.id])).get(job.id, [])
        payload = [{"type": t.type, "name": t.name, "scope": t.scope, "id": 0} for t in tags]
        try:
            await asyncio.to_thread(
                self.ctx.archive.update_meta, job.cluster, job.job_id, job.start_time, tags=payload
            )
        except Exception as e:
            log.warning("updating tags in meta.json of job %s failed: %s", job.id, e)

    async def _tag_items(self, request: web.Request) -> list[TagItem]:
        body = await read_json(request)
        if not isinstance(body, list):
            raise ApiError(400, "parsing request body failed: expected a JSON array of tags")
        return [decode_body(item, TagItem) for item in body]

    async def tag_job(self, request: web.Request) -> web.Response:
        principal = _principal(request)
        id = _path_id(request)
        items = await self._tag_items(request)
        job = await self._visible_job(request, id, status=404)
        added = [await self._add_tag(principal, id, t.type, t.name, t.scope) for t in items]
        await self._sync_archive_tags(job)
        out = await self._job_out(principal, job)
        # upstream answers with the visible tags plus the ones just added (whatever their scope)
        shown = out.setdefault("tags", [])
        for t in added:
            if not any(x["id"] == t.id for x in shown):
                shown.append(t.model_dump(by_alias=True))
        return json_response(out)

    async def _shared_tags(self, principal: Principal, items: list[TagItem], action: str) -> list[JobTag]:
        """The global/admin tags named in a removal request; private ones are skipped (REST rule)."""
        out = []
        for t in items:
            scope = t.scope or "global"
            if scope not in ("global", "admin"):
                log.warning("%s tag: private tag %s:%s (scope %s) skipped", action, t.type, t.name, scope)
                continue
            if not can_write_tag_scope(principal, scope):
                raise ApiError(500, f"{action} tag failed: cannot write tag scope with current authorization")
            tag = await self.ctx.repo.find_tag(t.type, t.name, scope)
            if tag is None:
                raise ApiError(
                    500, f"{action} tag failed: tag does not exist (name, type, scope): {t.name}, {t.type}, {scope}"
                )
            out.append(tag)
        return out

    async def untag_job(self, request: web.Request) -> web.Response:
        principal = _principal(request)
        id = _path_id(request)
        items = await self._tag_items(request)
        job = await self._visible_job(request, id, status=404)
        for tag in await self._shared_tags(principal, items, "removing"):
            await self.ctx.repo.detach_tag(id, tag.id)
        await self._sync_archive_tags(job)
        return json_response(await self._job_out(principal, job))

    async def delete_tags(self, request: web.Request) -> web.Response:
        principal = _principal(request)
        items = await self._tag_items(request)
        tags = await self._shared_tags(principal, items, "deleting")
        for tag in tags:
            await self.ctx.repo.delete_tag(tag.id)
        done = len(tags)
        return web.Response(
            text=f"Deleted Tags from DB: {done} successfull of {len(items)} requested\n", content_type="text/plain"
        )

    # -- metadata, deletion --------------------------------------------------------------------------
    async def _edit_meta(self, request: web.Request, job: Job, key: str, value: str) -> web.Response:
        principal = _principal(request)
        job.meta_data = await self.ctx.repo.set_meta_data(job.id, key, value)
        if job.job_state != "running":
            try:
                await asyncio.to_thread(
                    self.ctx.archive.update_meta, job.cluster, job.job_id, job.start_time, meta_data={key: value}
                )
            except Exception as e:
                raise ApiError(500, f"updating meta.json of job {job.id} failed: {e}") from None
        return json_response(await self._job_out(principal, job))

    async def edit_meta(self, request: web.Request) -> web.Response:
        id = _path_id(request)
        req = decode_body(await read_json(request), EditMetaRequest)
        job = await self._visible_job(request, id, status=404)
        return await self._edit_meta(request, job, req.key, req.value)

    async def edit_meta_by_job(self, request: web.Request) -> web.Response:
        req = decode_body(await read_json(request), EditMetaByJobRequest)
        job = await self._job_of_body(req, 422)
        return await self._edit_meta(request, job, req.payload.key, req.payload.value)

    async def delete_job_by_id(self, request: web.Request) -> web.Response:
        id = _path_id(request)
        await self.ctx.repo.delete_job(id)
        log.info("deleted job %d from the database", id)
        return json_response({"msg": f"Successfully deleted job {id}"})

    async def delete_job(self, request: web.Request) -> web.Response:
        req = decode_body(await read_json(request), DeleteJobRequest)
        job = await self._job_of_body(req, 422)
        await self.ctx.repo.delete_job(job.id)
        log.info("deleted job %d (jobId %d on %s) from the database", job.id, job.job_id, job.cluster)
        return json_response({"msg": f"Successfully deleted job {job.id}"})

    async def delete_job_before(self, request: web.Request) -> web.Response:
        ts = _path_id(request, "ts")
        omit = request.query.get("omit-tagged", "none")
        if omit not in ("none", "all", "user"):
            raise ApiError(400, f"invalid value for omit-tagged: {omit!r} (none, all or user)")
        n = await self.ctx.repo.delete_jobs_before(ts, omit)
        log.info("deleted %d jobs started before %d from the database", n, ts)
        return json_response({"msg": f"Successfully deleted {n} jobs"})

    # -- clusters, users, nodes ----------------------------------------------------------------------
    async def clusters(self, request: web.Request) -> web.Response:
        principal = _principal(request)
        if not principal.has_role("api"):
            raise ApiError(403, "missing role: api")
        reg = self.ctx.registry
        names = reg.names()
        if "cluster" in request.query:
            if request.query["cluster"] not in names:
                raise ApiError(400, f"unknown cluster: {request.query['cluster']}")
            names = [request.query["cluster"]]
        out = []
        for n in names:
            c = reg.with_derived(n)
            out.append(c.model_dump(mode="json", by_alias=True, exclude_none=True))
        return json_response({"clusters": out})

    def _require_admin(self, request: web.Request) -> None:
        principal = _principal(request)
        if not principal.has_role("admin"):
            raise ApiError(403, "only admins are allowed to manage users")

    async def users(self, request: web.Request) -> web.Response:
        self._require_admin(request)
        users = await list_users(self.ctx.repo, request.query.get("not-just-user", "").lower() == "true")
        return json_response([u.api_json() for u in users])

    async def update_user(self, request: web.Request) -> web.Response:
        self._require_admin(request)
        username = request.match_info["username"]
        req = decode_body(await read_json(request), UpdateUserRequest)
        try:
            phrase = await modify_user(self.ctx.repo, username, add_role=req.add_role, remove_role=req.remove_role,
                                       add_project=req.add_project, remove_project=req.remove_project)
        except UserError as e:
            raise ApiError(e.status, e.message) from None
        return json_response({"msg": f"{phrase} for user {username}"})

    async def node_state(self, request: web.Request) -> web.Response:
        req = decode_body(await read_json(request), NodeStateRequest)
        try:
            await self.ctx.nodestates.report(req.cluster, [n.model_dump() for n in req.nodes], int(time.time()))
        except ValueError as e:
            raise ApiError(400, str(e)) from None
        return web.Response(status=200)

    # -- machine state -------------------------------------------------------------------------------
    def _machine_state_path(self, request: web.Request) -> str:
        base = self.ctx.config.main.machine_state_dir
        cluster, host = request.match_info["cluster"], request.match_info["host"]
        for part in (cluster, host):
            if not part or ".." in part or "/" in part or "\\" in part:
                raise ApiError(400, f"invalid cluster or host name: {part!r}")
        return os.path.join(base, cluster, f"{host}.json")

    async def get_machine_state(self, request: web.Request) -> web.StreamResponse:
        path = self._machine_state_path(request)
        try:
            body = await asyncio.to_thread(_read_file, path)
        except FileNotFoundError:
            raise ApiError(404, "machine state not found") from None
        return web.Response(body=body, content_type="application/json")

    async def put_machine_state(self, request: web.Request) -> web.Response:
        path = self._machine_state_path(request)
        body = await request.read()

        def write() -> None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp{os.getpid()}"
            with open(tmp, "wb") as f:
                f.write(body)
            os.replace(tmp, path)

        await asyncio.to_thread(write)
        return web.Response(status=201)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def routes(h: ApiHandlers, *, job_events_via_nats: bool = False, machine_state: bool = False) -> list[Route]:
    """The endpoint table of `/api/` and `/userapi/`; start/stop are left out when NATS delivers job events."""
    ok, bad, unauth, notfound, unproc = 200, 400, 401, 404, 422
    job_body = {"$ref": "#/components/schemas/Job"}
    r: list[Route] = []
    if not job_events_via_nats:
        for m in ("POST", "PUT"):
            r.append(Route(m, "/api/jobs/start_job/", h.start_job, "api", "Add a newly started job", body=job_body,
                           responses={201: "Job added: {\"msg\":\"success\",\"id\":<db id>}", bad: "Bad request",
                                      unauth: "Unauthorized", unproc: "Duplicate job"}))
            r.append(Route(m, "/api/jobs/stop_job/", h.stop_job, "api", "Mark a job as completed and archive it",
                           body=StopJobRequest, responses={ok: "The stopped job", bad: "Bad request",
                                                           notfound: "Job not found", unproc: "Job already stopped"}))
            r.append(Route(m, "/api/jobs/stop_job/{id}", h.stop_job_by_id, "api",
                           "Stop a job identified by its database id (hands-on demo form)", body=StopJobRequest,
                           responses={ok: "The stopped job", bad: "Bad request", notfound: "Job not found",
                                      unproc: "Job already stopped"}))
    list_q = [("state", "string", "job state (repeatable)"), ("cluster", "string", "cluster name"),
              ("project", "string", "project"), ("start-time", "string", "<from>-<to> epoch seconds"),
              ("page", "integer", "page number, from 1"), ("items-per-page", "integer", "page size (default 25)"),
              ("with-metadata", "boolean", "include metaData")]
    for prefix, group in (("/api", "api"), ("/userapi", "userapi")):
        tag = "Job API" if prefix == "/api" else "User API"
        r.append(Route("GET", f"{prefix}/jobs/", h.list_jobs, group, "List jobs", tag=tag, query=list_q,
                       responses={ok: "{\"jobs\":[Job],\"items\":n,\"page\":p}", bad: "Bad request"}))
        r.append(Route("GET", f"{prefix}/jobs/metrics/{{id}}", h.job_metrics, group, "Metric data of a job",
                       tag=tag, query=[("metric", "string", "metric name (repeatable)"),
                                       ("scope", "string", "metric scope (repeatable)")],
                       responses={ok: "{\"data\":{\"jobMetrics\":[...]},\"error\":null}", bad: "Invalid scope"}))
        r.append(Route("GET", f"{prefix}/jobs/{{id}}", h.get_job, group, "Job by database id", tag=tag,
                       query=[("all-metrics", "boolean", "also load all metric data")],
                       responses={ok: "{\"Meta\":Job,\"Data\":JobData|null}", bad: "Bad id",
                                  unproc: "Not found or not visible"}))
        r.append(Route("POST", f"{prefix}/jobs/{{id}}", h.post_job, group, "Job by database id with selected metrics",
                       tag=tag, body={"type": "array", "items": {"type": "string"}, "nullable": True},
                       responses={ok: "{\"Meta\":Job,\"Data\":[...]}", bad: "Bad request",
                                  unproc: "Not found or not visible"}))
    r.append(Route("GET", "/api/jobs/used_nodes", h.used_nodes, "api", "Hosts of running jobs at a time",
                   query=[("ts", "integer", "epoch seconds")], responses={ok: "{\"usedNodes\":{...}}", bad: "ts missing"}))
    for m in ("POST", "PATCH"):
        r.append(Route(m, "/api/jobs/tag_job/{id}", h.tag_job, "api", "Add tags to a job",
                       body={"type": "array", "items": {"$ref": "#/components/schemas/TagItem"}},
                       responses={ok: "The job with its tags", notfound: "Job not found", 500: "Tag error"}))
    r.append(Route("DELETE", "/api/jobs/tag_job/{id}", h.untag_job, "api", "Remove tags from a job",
                   body={"type": "array", "items": {"$ref": "#/components/schemas/TagItem"}},
                   responses={ok: "The job with its remaining tags", notfound: "Job not found", 500: "Tag error"}))
    for m in ("PATCH", "POST"):
        r.append(Route(m, "/api/jobs/edit_meta/{id}", h.edit_meta, "api", "Set one metaData key of a job",
                       body=EditMetaRequest, responses={ok: "The job", notfound: "Job not found"}))
    r.append(Route("PATCH", "/api/jobs/edit_meta/", h.edit_meta_by_job, "api",
                   "Set one metaData key of a job identified by jobId/cluster/startTime", body=EditMetaByJobRequest,
                   responses={ok: "The job", bad: "jobId missing", unproc: "Job not found"}))
    r.append(Route("DELETE", "/api/jobs/delete_job/{id}", h.delete_job_by_id, "api", "Delete a job by database id",
                   responses={ok: "{\"msg\":...}"}))
    r.append(Route("DELETE", "/api/jobs/delete_job/", h.delete_job, "api",
                   "Delete a job identified by jobId/cluster/startTime", body=DeleteJobRequest,
                   responses={ok: "{\"msg\":...}", bad: "jobId missing", unproc: "Job not found"}))
    r.append(Route("DELETE", "/api/jobs/delete_job_before/{ts}", h.delete_job_before, "api",
                   "Delete all jobs started before a time",
                   query=[("omit-tagged", "string", "none | all | user")], responses={ok: "{\"msg\":...}"}))
    r.append(Route("DELETE", "/api/tags/", h.delete_tags, "api", "Delete tags and all their job links",
                   body={"type": "array", "items": {"$ref": "#/components/schemas/TagItem"}},
                   responses={ok: "text: Deleted Tags from DB: X successfull of Y requested"}))
    r.append(Route("GET", "/api/clusters/", h.clusters, "api", "Cluster configurations", tag="Cluster API",
                   query=[("cluster", "string", "only this cluster")], responses={ok: "{\"clusters\":[...]}"}))
    r.append(Route("GET", "/api/users/", h.users, "api", "List users (admin)", tag="User API",
                   query=[("not-just-user", "boolean", "only users with more than the user role")],
                   responses={ok: "[User]", 403: "Not an admin"}))
    r.append(Route("POST", "/api/user/{username}", h.update_user, "api", "Change roles or projects of a user (admin)",
                   tag="User API", body=UpdateUserRequest,
                   responses={ok: "{\"msg\":...}", bad: "Nothing to do", unproc: "Invalid change"}))
    for m in ("POST", "PUT"):
        r.append(Route(m, "/api/nodestate/", h.node_state, "api", "Scheduler node states of a cluster",
                       tag="Node API", body=NodeStateRequest, responses={ok: "Stored"}))
    for p in ("/api/healthcheck", "/api/healthcheck/"):
        r.append(Route("POST", p, h.node_state, "metricstore", "Node states of a cluster (same as /api/nodestate/)",
                       tag="Node API", body=NodeStateRequest, responses={ok: "Stored"}))
    if machine_state:
        r.append(Route("GET", "/api/machine_state/{cluster}/{host}", h.get_machine_state, "api",
                       "Stored machine state of a host", tag="Node API", responses={ok: "File", notfound: "None"}))
        for m in ("PUT", "POST"):
            r.append(Route(m, "/api/machine_state/{cluster}/{host}", h.put_machine_state, "api",
                           "Store the machine state of a host", tag="Node API", responses={201: "Stored"}))
    return r


def error_middleware_factory() -> Any:
    """Middleware turning ApiError into upstream's error JSON and unknown API paths into JSON 404s."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            if e.status >= 500:
                log.error("%s %s: %s", request.method, request.path, e.message)
            return error_response(e.status, e.message)
        except AuthError as e:
            return error_response(e.status, e.message)
        except web.HTTPNotFound:
            if request.path.startswith(("/api/", "/userapi/", "/frontend/", "/config/")):
                return json_response({"status": "Resource not found", "error": "the requested endpoint does not exist"}, 404)
            raise
        except web.HTTPMethodNotAllowed:
            return web.Response(status=405)
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "request body too large")

    return middleware
