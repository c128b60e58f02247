"""AuthService: the one object that knows the keys, the user table and the rules of every route group.

`authorize(request, group)` is the whole gate of backend-data.md §4.2: it finds the credentials the
group accepts (JWT, session cookie or either), builds the Principal and applies the group's role rule
and, for `/api/`, the IP allow-list.  The middleware and any handler-level check call it.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from cccommon import jwt as ccjwt
from cccommon.config import ConfigError

from ..model import AuthSource
from ..repository.base import Repository
from .config import AuthSettings
from .errors import AuthError, LoginRequired
from .pages import TEMPLATES_DIR, LoginPage
from .principal import AuthType, Principal
from .ratelimit import LoginRateLimiter
from .roles import passes_api_gate, passes_metricstore_gate, passes_userapi_gate
from .sessions import SESSION_COOKIE, SessionCodec, SessionData, SessionError, decode_session_key
from .tokens import TokenAuthenticator, extract_token
from .users import DEFAULT_METRICS_FILE

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["AUTH_KEY", "AuthService", "RouteGroup", "route_group"]

log = logging.getLogger("ccbackend.auth")


class RouteGroup(enum.StrEnum):
    """The credential/role classes of backend-data.md §4.2."""

    PUBLIC = "public"
    PAGE = "page"
    """Web pages and UI data: JWT (any roles) first, else session; unauthenticated → login page."""
    API = "api"
    """`/api/` main REST API: JWT, roles exactly [api] or admin+api, IP allow-list."""
    METRICSTORE = "metricstore"
    """`/api/write|free|debug|healthcheck`: JWT, api alone or with user/manager/admin."""
    USERAPI = "userapi"
    """`/userapi/`: JWT, api alone or with user/manager/support/admin."""
    CONFIG = "config"
    """`/config/`: session only, role admin."""
    FRONTEND = "frontend"
    """`/frontend/`: session only, any logged-in user."""


PUBLIC_PATHS = frozenset(
    {
        "/login",
        "/logout",
        "/jwt-login",
        "/oidc-login",
        "/oidc-callback",
        "/imprint",
        "/privacy",
        "/favicon.ico",
    }
)
PUBLIC_PREFIXES = ("/build/", "/img/", "/css/", "/fonts/", "/static/", "/js/", "/swagger/", "/media/")
_METRICSTORE = frozenset(
    p + s for p in ("/api/write", "/api/free", "/api/debug", "/api/healthcheck") for s in ("", "/")
)


def route_group(path: str) -> RouteGroup:
    """The group a request path belongs to (prefix rules of upstream's router)."""
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return RouteGroup.PUBLIC
    if path in _METRICSTORE:
        return RouteGroup.METRICSTORE
    if path.startswith("/api/"):
        return RouteGroup.API
    if path.startswith("/userapi/"):
        return RouteGroup.USERAPI
    if path.startswith("/config/"):
        return RouteGroup.CONFIG
    if path.startswith("/frontend/"):
        return RouteGroup.FRONTEND
    return RouteGroup.PAGE


SYNTHETIC_ADMIN = Principal(
    username="admin",
    roles=("admin", "api"),
    auth_source=AuthSource.local,
    name="Authentication disabled",
    auth_type=AuthType.NONE,
)
"""The principal of every request under `disable-authentication` (upstream has none; the UI needs one)."""


def _strip_port(addr: str) -> str:
    addr = addr.strip()
    if addr.startswith("["):
        end = addr.find("]")
        return addr[1:end] if end > 0 else addr
    if addr.count(":") == 1:
        return addr.split(":", 1)[0]
    return addr


class AuthService:
    """Keys, user table, session codec, token validation and login rate limit of one server."""

    def __init__(
        self,
        settings: AuthSettings,
        repo: Repository,
        *,
        session_key: bytes | None,
        jwt_public_key: Ed25519PublicKey | None = None,
        jwt_private_key: Ed25519PrivateKey | None = None,
        templates_dir: Path = TEMPLATES_DIR,
        rate_limiter: LoginRateLimiter | None = None,
        default_metrics: Path | None = DEFAULT_METRICS_FILE,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.disabled = settings.disable_authentication
        if session_key is None and not self.disabled:
            raise ConfigError(".env", "SESSION_KEY", "is required unless main.disable-authentication is true")
        self.sessions = SessionCodec(session_key, settings.session_max_age) if session_key else None
        jwts = settings.jwts
        self.tokens = TokenAuthenticator(
            jwt_public_key,
            jwt_private_key,
            repo=repo,
            validate_user=jwts.validate_user,
            max_age=settings.jwt_max_age,
            max_age_error=settings.jwt_max_age_error,
        )
        self.limiter = rate_limiter or LoginRateLimiter()
        self.login_page = LoginPage(templates_dir, oidc_enabled=settings.auth.oidc is not None)
        self.default_metrics = default_metrics
        if jwt_public_key is None:
            log.warning("JWT_PUBLIC_KEY not set: token authentication is disabled")
        if jwt_private_key is None:
            log.warning("JWT_PRIVATE_KEY not set: token generation is disabled")
        if self.disabled:
            log.warning("authentication is disabled (main.disable-authentication); every request is admin")

    @classmethod
    def from_env(cls, settings: AuthSettings, env: object, repo: Repository, **kw: object) -> AuthService:
        """Build from the `.env` secrets (an object with `session_key`, `jwt_public_key`, `jwt_private_key`
        strings such as `ccbackend.env.Env`); bad values raise ConfigError naming the variable."""

        def get(name: str) -> str:
            return str(getattr(env, name, "") or "").strip()

        session_key = None
        if get("session_key"):
            try:
                session_key = decode_session_key(get("session_key"))
            except ValueError as e:
                raise ConfigError(".env", "SESSION_KEY", str(e)) from None
        pub = priv = None
        if get("jwt_public_key"):
            try:
                pub = ccjwt.load_public_key(get("jwt_public_key"))
            except ValueError as e:
                raise ConfigError(".env", "JWT_PUBLIC_KEY", str(e)) from None
        if get("jwt_private_key"):
            try:
                priv = ccjwt.load_private_key(get("jwt_private_key"))
            except ValueError as e:
                raise ConfigError(".env", "JWT_PRIVATE_KEY", str(e)) from None
        return cls(settings, repo, session_key=session_key, jwt_public_key=pub, jwt_private_key=priv, **kw)  # type: ignore[arg-type]

    # ---- credentials --------------------------------------------------------------------------------

    async def principal_from_token(self, request: web.Request) -> Principal | None:
        """The token's principal, None without a token; AuthError(401) for a bad token."""
        token = extract_token(request.headers)
        if token is None:
            return None
        return await self.tokens.authenticate(token)

    async def principal_from_session(self, request: web.Request) -> Principal | None:
        """The session's principal, None without a valid session cookie.

        Roles and projects are re-read from the user table on every request (role changes apply at
        once, deleted users lose access); a user missing from the table keeps the login-time roles
        unless it was a local-password user.
        """
        value = request.cookies.get(SESSION_COOKIE)
        if not value or self.sessions is None:
            return None
        try:
            data = self.sessions.decode(value)
        except SessionError as e:
            log.info("session cookie refused from %s: %s", request.remote, e)
            return None
        user = await self.repo.get_user(data.username)
        if user is not None:
            return Principal.from_user(user, AuthType.SESSION)
        if data.auth_source == AuthSource.local:
            log.info("session of deleted user %r refused", data.username)
            return None
        return Principal(
            username=data.username,
            roles=data.roles,
            projects=data.projects,
            auth_source=data.auth_source,
            auth_type=AuthType.SESSION,
        )

    def session_cookie_value(self, principal: Principal) -> str:
        if self.sessions is None:
            raise AuthError("sessions are disabled", 500)
        return self.sessions.encode(
            SessionData(
                username=principal.username,
                roles=principal.roles,
                projects=principal.projects,
                auth_source=principal.auth_source,
            )
        )

    # ---- IP allow-list ------------------------------------------------------------------------------

    @staticmethod
    def client_ip(request: web.Request) -> str:
        """`X-Real-Ip`, else the first `X-Forwarded-For` entry, else the TCP peer; port stripped."""
        addr = request.headers.get("X-Real-Ip", "").strip()
        if not addr:
            addr = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
        if not addr:
            addr = request.remote or ""
        return _strip_port(addr)

    def check_ip(self, request: web.Request) -> None:
        allowed = self.settings.api_allowed_ips
        if not allowed or allowed[0] == "*":
            return
        ip = self.client_ip(request)
        if ip in allowed:
            return
        try:  # also match a differently written form of the same address (::1 vs 0:0:...:1)
            parsed = ipaddress.ip_address(ip)
            if any(_same_ip(parsed, a) for a in allowed):
                return
        except ValueError:
            pass
        raise AuthError(f"unknown ip: {ip}")

    # ---- the gate -----------------------------------------------------------------------------------

    async def authorize(self, request: web.Request, group: RouteGroup) -> Principal | None:
        """Principal of a request to `group`, or AuthError; None only for public routes."""
        if group is RouteGroup.PUBLIC:
            return None
        if self.disabled:
            return SYNTHETIC_ADMIN
        if group in (RouteGroup.API, RouteGroup.METRICSTORE, RouteGroup.USERAPI):
            p = await self.principal_from_token(request)
            if group is RouteGroup.API:
                if p is None:
                    raise AuthError("no user for secured check")
                self.check_ip(request)
                ok = passes_api_gate(p)
            elif p is None:
                raise AuthError("unauthorized")
            elif group is RouteGroup.METRICSTORE:
                ok = passes_metricstore_gate(p)
            else:
                ok = passes_userapi_gate(p)
            if not ok:
                log.info("%s refused for %r: roles %s do not qualify", group.value, p.username, list(p.roles))
                raise AuthError("unauthorized")
            return p
        if group in (RouteGroup.CONFIG, RouteGroup.FRONTEND):
            p = await self.principal_from_session(request)
            if p is None or (group is RouteGroup.CONFIG and not p.has_role("admin")):
                raise AuthError("unauthorized")
            return p
        p = await self.principal_from_token(request)
        if p is None:
            p = await self.principal_from_session(request)
        if p is None:
            raise LoginRequired()
        return p


AUTH_KEY = web.AppKey("ccbackend.auth", AuthService)
"""Where `setup_auth` stores the service on the application."""


def _same_ip(parsed: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    try:
        return ipaddress.ip_address(text.strip()) == parsed
    except ValueError:
        return False
