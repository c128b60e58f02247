"""Session routes: /login, /logout, /config/roles|users|user, /frontend/jwt, /frontend/configuration.

Spec backend-data.md §4.11.  Authentication of `/config/` (admin session) and `/frontend/` (any
session) is done by the auth middleware; handlers re-check the role where the rule is per request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from ..model import ROLES, AuthSource
from ..repository.base import RepositoryError
from .errors import AuthError, auth_error_response
from .middleware import get_principal, require_any_role
from .pages import safe_redirect
from .passwords import check_password
from .principal import AuthType, Principal
from .service import AuthService
from .sessions import expire_session_cookie, is_https, set_session_cookie
from .users import UserError, create_user_from_form, delete_user, list_users, modify_user

__all__ = ["add_auth_routes"]

log = logging.getLogger("ccbackend.auth")

TOO_MANY = "too many login attempts, try again in a few minutes"


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _user_error(e: UserError) -> web.Response:
    return auth_error_response(e.status, e.message)


class _Handlers:
    def __init__(self, service: AuthService) -> None:
        self.s = service

    # ---- login / logout ------------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.Response:
        return self.s.login_page.response(200, redirect=request.query.get("redirect", ""))

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        username = str(form.get("username", ""))
        password = str(form.get("password", ""))
        redirect = str(form.get("redirect", ""))
        page = self.s.login_page
        if not self.s.limiter.allow(request.remote or "", username):
            log.warning("login of %r from %s rate-limited", username, request.remote)
            return page.response(429, message=TOO_MANY, redirect=redirect, username=username)
        user = await self.s.repo.get_user(username) if username else None
        # Authenticators in upstream's order; LDAP and the JWT login flows come with a later issue.
        if user is None or user.auth_source != AuthSource.local:
            log.info("login of %r from %s: no authenticator applied", username, request.remote)
            return page.response(
                401, message="no authenticator applied", redirect=redirect, username=username
            )
        if not await check_password(password, user.password):
            log.warning("login of %r from %s failed: wrong password", username, request.remote)
            return page.response(401, message="Authentication failed", redirect=redirect, username=username)
        principal = Principal.from_user(user, AuthType.SESSION)
        target = safe_redirect(redirect)
        response = web.Response(status=302, headers={"Location": target})
        set_session_cookie(
            response,
            self.s.session_cookie_value(principal),
            self.s.settings.session_max_age,
            secure=is_https(request),
        )
        log.info(
            'login successful: user: "%s" (roles: %s, projects: %s)', user.username, user.roles, user.projects
        )
        return response

    async def logout(self, request: web.Request) -> web.Response:
        response = self.s.login_page.response(200, message="Logout successful", kind="info")
        expire_session_cookie(response, secure=is_https(request))
        return response

    # ---- /config/ (admin session) --------------------------------------------------------------------

    async def roles(self, request: web.Request) -> web.Response:
        require_any_role(request, "admin")
        return _json(list(ROLES))

    async def get_users(self, request: web.Request) -> web.Response:
        require_any_role(request, "admin", message="only admins are allowed to list users")
        users = await list_users(self.s.repo, request.query.get("not-just-user") == "true")
        return _json([u.api_json() for u in users])

    async def create_user(self, request: web.Request) -> web.Response:
        require_any_role(request, "admin", message="only admins are allowed to create new users")
        form = await request.post()
        try:
            user = await create_user_from_form(
                self.s.repo,
                {k: str(v) for k, v in form.items()},
                default_metrics=self.s.default_metrics,
            )
        except UserError as e:
            return _user_error(e)
        return web.Response(text=f"User {user.username} successfully created!\n", content_type="text/plain")

    async def delete_user(self, request: web.Request) -> web.Response:
        require_any_role(request, "admin", message="only admins are allowed to delete a user")
        form = await request.post()
        username = str(form.get("username", "")) or request.query.get("username", "")
        if not username:
            return auth_error_response(400, "missing form field 'username'")
        await delete_user(self.s.repo, username)
        return web.Response(status=200)

    async def update_user(self, request: web.Request) -> web.Response:
        require_any_role(request, "admin", message="only admins are allowed to update a user")
        form = await request.post()
        try:
            phrase = await modify_user(
                self.s.repo,
                request.match_info["username"],
                add_role=str(form.get("add-role", "")),
                remove_role=str(form.get("remove-role", "")),
                add_project=str(form.get("add-project", "")),
                remove_project=str(form.get("remove-project", "")),
            )
        except UserError as e:
            return _user_error(e)
        return _json({"msg": phrase})

    # ---- /frontend/ (any session) --------------------------------------------------------------------

    async def jwt(self, request: web.Request) -> web.Response:
        me = get_principal(request)
        username = request.query.get("username", "") or me.username
        if username != me.username and not me.has_role("admin"):
            return auth_error_response(403, "only admins are allowed to sign JWTs not for themselves")
        user = await self.s.repo.get_user(username)
        if user is None:
            return auth_error_response(404, f"user {username!r} does not exist")
        if "api" not in user.roles:
            log.warning("JWT issued for user %r who lacks the api role", username)
        token = self.s.tokens.issue(user.username, user.roles)
        log.info("JWT issued for user %r by %r", username, me.username)
        return web.Response(text=token, content_type="text/plain")

    async def configuration(self, request: web.Request) -> web.Response:
        me = get_principal(request)
        form = await request.post()
        key = str(form.get("key", ""))
        raw = str(form.get("value", ""))
        if not key:
            return auth_error_response(400, "missing form field 'key'")
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            return auth_error_response(400, f"form field 'value' of key {key!r} is not valid JSON: {e}")
        try:
            await self.s.repo.set_user_config(me.username, key, value)
        except RepositoryError as e:
            return auth_error_response(422, str(e))
        return web.Response(text="success", content_type="text/plain")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _wrap(fn: Handler) -> Handler:
    """Turn an AuthError raised inside a handler into the JSON error response."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except AuthError as e:
            return auth_error_response(e.status, e.message)

    handler.__name__ = getattr(fn, "__name__", "handler")
    return handler


def add_auth_routes(app: web.Application, service: AuthService) -> None:
    """Register the session routes; the login routes only when authentication is enabled."""
    h = _Handlers(service)
    r = app.router
    if not service.disabled:
        r.add_get("/login", _wrap(h.login_form))
        r.add_post("/login", _wrap(h.login))
        r.add_post("/logout", _wrap(h.logout))
    r.add_get("/config/roles/", _wrap(h.roles))
    r.add_get("/config/users/", _wrap(h.get_users))
    r.add_post("/config/users/", _wrap(h.create_user))
    r.add_put("/config/users/", _wrap(h.create_user))
    r.add_delete("/config/users/", _wrap(h.delete_user))
    r.add_post("/config/user/{username}", _wrap(h.update_user))
    r.add_get("/frontend/jwt/", _wrap(h.jwt))
    r.add_post("/frontend/configuration/", _wrap(h.configuration))
