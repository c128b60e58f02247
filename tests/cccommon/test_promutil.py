"""`/metrics` served from a real aiohttp app, with the registry the daemon passes in."""

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter

from cccommon.promutil import CONTENT_TYPE_LATEST, add_metrics_route, metrics_route


async def test_metrics_endpoint_serves_registry():
    reg = CollectorRegistry()
    c = Counter("cc_test_lines", "lines received", registry=reg)
    c.inc(3)
    app = web.Application()
    add_metrics_route(app, reg)
    app.router.add_get("/other", metrics_route(reg))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await resp.text()
        assert "cc_test_lines_total 3.0" in text
        c.inc()
        assert "cc_test_lines_total 4.0" in await (await client.get("/other")).text()
        assert (await client.post("/metrics")).status == 405


async def test_custom_path_and_isolated_registry():
    reg = CollectorRegistry()
    app = web.Application()
    add_metrics_route(app, reg, path="/internal/metrics")
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        resp = await client.get("/internal/metrics")
        assert resp.status == 200 and await resp.text() == ""
