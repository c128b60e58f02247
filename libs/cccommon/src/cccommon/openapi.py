"""Swagger UI for the daemons' OpenAPI documents, served from the installed package (no CDN)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

__all__ = ["add_swagger_routes"]

_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{prefix}swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{prefix}swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({{url: "{spec_url}", dom_id: "#swagger-ui", deepLinking: true}});</script>
</body></html>
"""


def add_swagger_routes(app: web.Application, spec: dict[str, Any], prefix: str = "/swagger/") -> None:
    """Serve `spec` at `<prefix>openapi.json` and Swagger UI at `<prefix>` and `<prefix>index.html`."""
    from swagger_ui_bundle import swagger_ui_path

    body = orjson.dumps(spec)
    title = spec.get("info", {}).get("title", "API")
    index = _INDEX.format(title=title, prefix=prefix, spec_url=f"{prefix}openapi.json")

    async def spec_handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def index_handler(request: web.Request) -> web.Response:
        return web.Response(text=index, content_type="text/html")

    app.router.add_get(f"{prefix}openapi.json", spec_handler)
    app.router.add_get(prefix, index_handler)
    app.router.add_get(f"{prefix}index.html", index_handler)
    app.router.add_static(prefix + "assets/", str(swagger_ui_path), show_index=False)
    for name in ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"):
        path = swagger_ui_path / name

        async def asset(request: web.Request, path: Any = path) -> web.FileResponse:
            return web.FileResponse(str(path))

        app.router.add_get(prefix + name, asset)
