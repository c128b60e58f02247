"""`/metrics` for aiohttp apps, so every daemon exposes its own Prometheus metrics the same way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

__all__ = ["metrics_route", "add_metrics_route", "CONTENT_TYPE_LATEST"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def metrics_route(registry: CollectorRegistry | None = None) -> Handler:
    """Handler serving `registry` (default: the global one) in Prometheus text format."""
    reg = REGISTRY if registry is None else registry

    async def handle_metrics(request: web.Request) -> web.Response:
        body = generate_latest(reg)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle_metrics


def add_metrics_route(
    app: web.Application, registry: CollectorRegistry | None = None, path: str = "/metrics"
) -> None:
    """Register GET `path` on `app` for the given registry."""
    app.router.add_get(path, metrics_route(registry))
