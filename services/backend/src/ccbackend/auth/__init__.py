"""Authentication and authorisation of cc-backend (spec backend-behaviour.md §1, backend-data.md §4.2).

Modules: `config` (auth config, session/JWT lifetimes), `principal` (the caller), `roles` (every
authorisation rule as a pure function), `passwords` (bcrypt), `users` (user management shared by
CLI, /config/ and /api/), `tokens` (JWT issue/validate), `sessions` (signed cookie), `ratelimit`
(login attempts), `service` (AuthService: keys + rules per route group), `middleware` (aiohttp
middlewares, `setup_auth`), `routes` (login/logout/config/frontend routes), `pages` (login page).
"""

from .config import AuthConfig, AuthSettings, resolve_jwt_max_age, session_max_age_seconds
from .errors import AuthError, LoginRequired, auth_error_response
from .middleware import (
    PRINCIPAL_KEY,
    auth_group,
    get_principal,
    middlewares,
    require_any_role,
    setup_auth,
)
from .principal import AuthType, Principal
from .roles import (
    apply_visibility,
    can_delete_tag,
    can_read_node_data,
    can_read_tag_scope,
    can_see_job,
    can_view_user,
    can_write_tag_scope,
    hides_restricted_metrics,
    normalize_role,
    visible_tags,
)
from .routes import add_auth_routes
from .service import AUTH_KEY, AuthService, RouteGroup, route_group
from .tokens import TokenAuthenticator, extract_token
from .users import UserError, create_user, create_user_from_form, delete_user, list_users, modify_user

__all__ = [
    "AUTH_KEY",
    "PRINCIPAL_KEY",
    "AuthConfig",
    "AuthError",
    "AuthService",
    "AuthSettings",
    "AuthType",
    "LoginRequired",
    "Principal",
    "RouteGroup",
    "TokenAuthenticator",
    "UserError",
    "add_auth_routes",
    "apply_visibility",
    "auth_error_response",
    "auth_group",
    "can_delete_tag",
    "can_read_node_data",
    "can_read_tag_scope",
    "can_see_job",
    "can_view_user",
    "can_write_tag_scope",
    "create_user",
    "create_user_from_form",
    "delete_user",
    "extract_token",
    "get_principal",
    "hides_restricted_metrics",
    "list_users",
    "middlewares",
    "modify_user",
    "normalize_role",
    "require_any_role",
    "resolve_jwt_max_age",
    "route_group",
    "session_max_age_seconds",
    "setup_auth",
    "visible_tags",
]
