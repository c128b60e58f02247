"""OpenAPI 3 document of the REST API, generated from the route table of `api.rest` and the models.

Request bodies declared as pydantic models contribute their JSON schema (with the camelCase names the
API uses); the Job object comes from `model.Job`.  Served under `/swagger/` with `-dev`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from ..model import Job
from .common import Route

__all__ = ["openapi_spec"]


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def openapi_spec(routes: list[Route], version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document for `routes`; every route appears with its method, path and statuses."""
    from .rest import TagItem

    components: dict[str, Any] = {}
    _schema(Job, components)
    _schema(TagItem, components)
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {
            "summary": r.summary,
            "tags": [r.tag],
            "operationId": f"{r.method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', r.path).strip('_')}",
            "responses": {
                str(code): {"description": text}
                for code, text in sorted({**r.responses, 401: "Unauthorized", 403: "Forbidden"}.items())
            },
        }
        if r.group in ("api", "userapi"):
            op["security"] = [{"ApiKeyAuth": []}]
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string" if name in
             ("username", "cluster", "host") else "integer"}}
            for name in re.findall(r"{(\w+)}", r.path)
        ]
        params += [{"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
                   for n, t, d in r.query]
        if params:
            op["parameters"] = params
        if r.body is not None:
            schema = _schema(r.body, components) if isinstance(r.body, type) else r.body
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ClusterCockpit REST API",
            "version": version,
            "description": "REST API of cc-backend (Python implementation), compatible with cc-backend 1.5.",
            "license": {"name": "MIT"},
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                               "description": "JWT (Ed25519); `Authorization: Bearer <jwt>` works as well"},
            },
        },
    }
