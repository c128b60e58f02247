"""aiohttp middlewares: security headers, CORS, the cross-site block and authentication.

Order (outermost first): `security_headers_middleware`, `cors_middleware`, `cross_site_middleware`,
the auth middleware.  The auth middleware sets `request["principal"]` (a Principal, or None on
public routes) from the route group of the path, or from a group pinned on the handler with
`auth_group(...)`.  Requests that match no route pass through untouched so the router answers
404/405 (as upstream, where unknown paths never reach the auth check).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from .errors import AuthError, LoginRequired, auth_error_response
from .principal import Principal
from .service import AUTH_KEY, AuthService, RouteGroup, route_group
from .sessions import SESSION_COOKIE, expire_session_cookie, is_https

__all__ = [
    "PRINCIPAL_KEY",
    "auth_group",
    "auth_middleware",
    "cors_middleware",
    "cross_site_middleware",
    "get_principal",
    "middlewares",
    "require_any_role",
    "security_headers_middleware",
    "setup_auth",
]

log = logging.getLogger("ccbackend.auth")

PRINCIPAL_KEY: web.RequestKey[Principal | None] = web.RequestKey("principal", Principal)
"""`request[PRINCIPAL_KEY]`: the Principal of the request (None on public routes)."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
}
HSTS = "max-age=31536000; includeSubDomains"

CORS_METHODS = ("GET", "POST", "HEAD", "OPTIONS")
CORS_HEADERS = ("X-Requested-With", "Content-Type", "Authorization", "Origin")
_CORS_SIMPLE_HEADERS = {"accept", "accept-language", "content-language", "origin"}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _add_security_headers(request: web.Request, headers: Any) -> None:
    for k, v in SECURITY_HEADERS.items():
        headers.setdefault(k, v)
    if is_https(request):
        headers.setdefault("Strict-Transport-Security", HSTS)


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The hardening headers of spec §1.13 on every response, errors included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _add_security_headers(request, exc.headers)
        raise
    if not response.prepared:
        _add_security_headers(request, response.headers)
    return response


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Any origin, methods GET/POST/HEAD/OPTIONS, a fixed header list, no credentials."""
    origin = request.headers.get("Origin")
    wanted = request.headers.get("Access-Control-Request-Method")
    if request.method == "OPTIONS" and origin is not None and wanted is not None:
        if wanted.upper() not in CORS_METHODS:
            return web.Response(status=405)
        requested = [h.strip() for h in request.headers.get("Access-Control-Request-Headers", "").split(",")]
        allowed = {h.lower() for h in CORS_HEADERS} | _CORS_SIMPLE_HEADERS
        if any(h and h.lower() not in allowed for h in requested):
            return web.Response(status=403)
        headers = {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": ", ".join(CORS_METHODS),
        }
        if any(requested):
            headers["Access-Control-Allow-Headers"] = ", ".join(h for h in requested if h)
        return web.Response(status=200, headers=headers)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if origin is not None:
            exc.headers.setdefault("Access-Control-Allow-Origin", "*")
        raise
    if origin is not None and not response.prepared:
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
    return response


@web.middleware
async def cross_site_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CSRF defence: state-changing requests a browser marks `Sec-Fetch-Site: cross-site` → 403."""
    if (
        request.method not in _SAFE_METHODS
        and request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site"
    ):
        log.info("cross-site %s %s from %s blocked", request.method, request.path, request.remote)
        return web.Response(status=403, text="cross-site request blocked")
    return await handler(request)


def auth_group(group: RouteGroup | str) -> Callable[[H], H]:
    """Pin the route group of a handler (overrides the path rule), e.g. `@auth_group(RouteGroup.PUBLIC)`."""
    g = RouteGroup(group)

    def mark(handler: H) -> H:
        handler.__cc_auth_group__ = g  # type: ignore[attr-defined]
        return handler

    return mark


def _group_of(request: web.Request) -> RouteGroup:
    handler = getattr(request.match_info, "handler", None)
    pinned = getattr(handler, "__cc_auth_group__", None)
    return pinned if isinstance(pinned, RouteGroup) else route_group(request.path)


def auth_middleware(service: AuthService) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Authenticate each request for its route group; 401/403 JSON on API groups, login page on pages."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if getattr(request.match_info, "http_exception", None) is not None:
            request[PRINCIPAL_KEY] = None
            return await handler(request)
        group = _group_of(request)
        try:
            request[PRINCIPAL_KEY] = await service.authorize(request, group)
        except LoginRequired as e:
            log.info("%s %s: %s", request.method, request.path, e.message)
            response = service.login_page.response(401, message=e.message, redirect=request.path_qs)
            if SESSION_COOKIE in request.cookies:  # a stale or forged cookie: tell the browser to drop it
                expire_session_cookie(response, secure=is_https(request))
            return response
        except AuthError as e:
            log.info("%s %s from %s refused: %s", request.method, request.path, request.remote, e.message)
            if group is RouteGroup.PAGE:
                return web.Response(status=e.status, text=e.message)
            return auth_error_response(e.status, e.message)
        return await handler(request)

    return middleware


def middlewares(service: AuthService) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
    """The four middlewares in the right order, for `web.Application(middlewares=...)`."""
    return [security_headers_middleware, cors_middleware, cross_site_middleware, auth_middleware(service)]


def setup_auth(app: web.Application, service: AuthService, *, routes: bool = True) -> None:
    """Store the service on the app, append the middlewares and (unless auth is disabled) the routes."""
    app[AUTH_KEY] = service
    app.middlewares.extend(middlewares(service))
    if routes:
        from .routes import add_auth_routes

        add_auth_routes(app, service)


def get_principal(request: web.Request) -> Principal:
    """The authenticated caller; AuthError(401) on public routes where nobody logged in."""
    p = request.get(PRINCIPAL_KEY)
    if not isinstance(p, Principal):
        raise AuthError("unauthorized")
    return p


def require_any_role(request: web.Request, *roles: str, message: str | None = None) -> Principal:
    """The caller if it holds one of `roles`, else AuthError(403) (handler-level checks)."""
    p = get_principal(request)
    if not p.has_any_role(roles):
        raise AuthError(message or f"forbidden: requires one of the roles {', '.join(roles)}", 403)
    return p
