"""Helpers shared by the REST handlers: error JSON, strict body decoding, the route table.

Every endpoint is declared once as a `Route` (method, path, handler, auth group, summary, request and
response description); the router and the OpenAPI document are both generated from that table, so
the documentation cannot drift from what is served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from ..model import BadRequest, describe_validation_error

__all__ = [
    "ApiError",
    "MAX_BODY",
    "Route",
    "StrictBody",
    "decode_body",
    "error_response",
    "json_response",
    "read_json",
]

MAX_BODY = 64 * 1024 * 1024
"""Largest request body accepted by the job API (aiohttp's client_max_size is set to this)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An error answered with `{"status": <reason>, "error": <message>}` and the given status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        content_type="application/json",
    )


def error_response(status: int, message: str) -> web.Response:
    """Upstream's error object: `{"status": "<HTTP reason phrase>", "error": "<message>"}`."""
    return json_response({"status": HTTPStatus(status).phrase, "error": message}, status)


class StrictBody(BaseModel):
    """Base of request bodies: camelCase keys, unknown keys refused (Go's DisallowUnknownFields)."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel, extra="forbid", strict=True)


async def read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    """The request body as JSON; 400 when it is not JSON (or empty unless allowed)."""
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return None
        raise ApiError(400, "parsing request body failed: empty body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ApiError(400, f"parsing request body failed: {e}") from None


def decode_body(data: Any, model: type[M]) -> M:
    """Validate decoded JSON against a strict model; 400 naming the offending key."""
    if not isinstance(data, dict):
        raise ApiError(400, "parsing request body failed: expected a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ApiError(400, f"parsing request body failed: {describe_validation_error(e)}") from None
    except BadRequest as e:
        raise ApiError(400, str(e)) from None


@dataclass
class Route:
    """One endpoint: the router entry and its OpenAPI description."""

    method: str
    path: str
    handler: Handler
    group: str
    """Auth group: `api` (JWT, api role, IP allow-list), `api-admin`, `userapi`, `open`."""
    summary: str
    tag: str = "Job API"
    body: type[BaseModel] | dict[str, Any] | None = None
    responses: dict[int, str] = field(default_factory=dict)
    query: list[tuple[str, str, str]] = field(default_factory=list)
    """Query parameters: (name, type, description)."""
