"""The `auth` section of the backend config (jwts, ldap, oidc) and the auth-related `main` keys.

Accepts the 1.5 kebab-case keys and the 1.4 spellings (`cookieName`, `validateUser`, `user_base`, ...;
spec backend-data.md §5.11).  LDAP and OIDC are only parsed here; their authenticators come later.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import model_validator

from cccommon.config import CCModel, ConfigError, parse_config
from cccommon.durations import parse_duration

__all__ = [
    "AuthConfig",
    "AuthSettings",
    "DEFAULT_SESSION_MAX_AGE",
    "JwtsConfig",
    "LdapConfig",
    "OidcConfig",
    "SESSION_FALLBACK_MAX_AGE",
    "jwt_max_age_seconds",
    "resolve_jwt_max_age",
    "session_max_age_seconds",
]

log = logging.getLogger("ccbackend.auth")

DEFAULT_SESSION_MAX_AGE = "168h"
SESSION_FALLBACK_MAX_AGE = 30 * 24 * 3600
"""Cookie lifetime when `session-max-age` is 0, empty or unparsable (gorilla's 30-day default)."""


def _rename_legacy(data: Any, names: Mapping[str, str]) -> Any:
    """Map 1.4 camelCase/snake_case keys to the kebab-case ones (the kebab key wins if both exist)."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for old, new in names.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
    return out


class JwtsConfig(CCModel):
    """`auth.jwts`: tokens issued by this server and external tokens accepted at login."""

    max_age: str | None = None
    cookie_name: str = ""
    validate_user: bool = False
    trusted_issuer: str = ""
    sync_user_on_login: bool = False
    update_user_on_login: bool = False

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        return _rename_legacy(
            data,
            {
                "maxAge": "max-age",
                "cookieName": "cookie-name",
                "validateUser": "validate-user",
                "trustedIssuer": "trusted-issuer",
                "syncUserOnLogin": "sync-user-on-login",
                "updateUserOnLogin": "update-user-on-login",
            },
        )


class LdapConfig(CCModel):
    """`auth.ldap` (outline only; the LDAP authenticator is a later issue)."""

    url: str = ""
    user_base: str = ""
    search_dn: str = ""
    user_bind: str = ""
    user_filter: str = ""
    username_attr: str = "gecos"
    uid_attr: str = "uid"
    sync_interval: str = ""
    sync_del_old_users: bool = False
    sync_user_on_login: bool = False
    update_user_on_login: bool = False

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        return _rename_legacy(
            data,
            {
                "syncUserOnLogin": "sync-user-on-login",
                "updateUserOnLogin": "update-user-on-login",
                "userBase": "user-base",
                "searchDN": "search-dn",
                "userBind": "user-bind",
                "userFilter": "user-filter",
                "usernameAttr": "username-attr",
                "uidAttr": "uid-attr",
                "syncInterval": "sync-interval",
                "syncDelOldUsers": "sync-del-old-users",
            },
        )


class OidcConfig(CCModel):
    """`auth.oidc` (outline only)."""

    provider: str = ""
    sync_user_on_login: bool = False
    update_user_on_login: bool = False

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        return _rename_legacy(
            data, {"syncUserOnLogin": "sync-user-on-login", "updateUserOnLogin": "update-user-on-login"}
        )


class AuthConfig(CCModel):
    """The `auth` object; `jwt` (singular) is accepted as a spelling of `jwts`."""

    jwts: JwtsConfig | None = None
    ldap: LdapConfig | None = None
    oidc: OidcConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        return _rename_legacy(data, {"jwt": "jwts"})

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], *, file: str = "config.json") -> AuthConfig:
        """The auth settings of a whole config file: `auth`, or the 1.4 top-level `jwts`/`ldap`/`oidc`."""
        section = raw.get("auth")
        if section is None:
            section = {k: raw[k] for k in ("jwts", "jwt", "ldap", "oidc") if k in raw}
        if not isinstance(section, dict):
            raise ConfigError(file, "auth", "must be a JSON object")
        cfg = parse_config(section, cls, file=f"{file} (auth)", log=log)
        max_age = resolve_jwt_max_age(raw, file=file)
        if cfg.jwts is None:
            cfg.jwts = JwtsConfig()
        cfg.jwts.max_age = max_age
        return cfg


_MAX_AGE_PATHS = (("auth", "jwts"), ("auth", "jwt"), ("jwts",), ("jwt",))


def resolve_jwt_max_age(raw: Mapping[str, Any], *, file: str = "config.json") -> str | None:
    """The token lifetime string from any accepted spelling (decisions.md "Spellings"), or None.

    Order: `auth.jwts.max-age`, `auth.jwt.max-age`, `jwts.max-age`, `jwt.max-age`; an empty string
    counts as absent.  A value that is not a string raises ConfigError naming the key.
    """
    for path in _MAX_AGE_PATHS:
        node: Any = raw
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            continue
        for key in ("max-age", "maxAge", "max_age"):
            if key in node:
                value = node[key]
                name = ".".join((*path, key))
                if value is None or value == "":
                    return None
                if not isinstance(value, str):
                    raise ConfigError(file, name, f'must be a duration string such as "2000h", got {value!r}')
                return value
    return None


def jwt_max_age_seconds(value: str | None) -> float | None:
    """Seconds of a `max-age` string; None when unset.  ValueError for unparsable values."""
    if value is None or value == "":
        return None
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"jwts.max-age must be positive, got {value!r}")
    return seconds


def session_max_age_seconds(value: str | None) -> int:
    """Cookie `Max-Age` from `session-max-age`: default 168h; 0, empty or unparsable give 30 days."""
    if value is None:
        value = DEFAULT_SESSION_MAX_AGE
    try:
        seconds = parse_duration(value) if isinstance(value, str) else float(value)
    except ValueError:
        log.warning("session-max-age %r is not a duration; sessions last 30 days", value)
        return SESSION_FALLBACK_MAX_AGE
    if seconds <= 0:
        return SESSION_FALLBACK_MAX_AGE
    return max(1, int(seconds))


def _main_value(raw: Mapping[str, Any], *keys: str) -> Any:
    main = raw.get("main")
    for src in (main if isinstance(main, Mapping) else {}, raw):
        for key in keys:
            if key in src:
                return src[key]
    return None


@dataclass
class AuthSettings:
    """Everything the auth layer needs from the config file, already typed."""

    auth: AuthConfig = field(default_factory=AuthConfig)
    disable_authentication: bool = False
    api_allowed_ips: list[str] = field(default_factory=list)
    session_max_age: int = 7 * 24 * 3600
    jwt_max_age: float | None = None
    jwt_max_age_error: str | None = None
    """Set when `max-age` is unparsable: token issuance then fails with this message (as upstream)."""

    @property
    def jwts(self) -> JwtsConfig:
        return self.auth.jwts or JwtsConfig()

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], *, file: str = "config.json") -> AuthSettings:
        """Read `main` (or 1.4 flat keys) and `auth` from a loaded config file."""
        auth = AuthConfig.from_config(raw, file=file)
        ips = _main_value(raw, "api-allowed-ips", "apiAllowedIPs")
        if ips is None:
            ips = []
        if not isinstance(ips, list) or not all(isinstance(x, str) for x in ips):
            raise ConfigError(file, "main.api-allowed-ips", "must be a list of strings")
        disable = _main_value(raw, "disable-authentication") or False
        if not isinstance(disable, bool):
            raise ConfigError(file, "main.disable-authentication", "must be true or false")
        session_raw = _main_value(raw, "session-max-age")
        settings = cls(
            auth=auth,
            disable_authentication=disable,
            api_allowed_ips=list(ips),
            session_max_age=session_max_age_seconds(session_raw if session_raw is not None else None),
        )
        settings.set_jwt_max_age(auth.jwts.max_age if auth.jwts else None)
        return settings

    def set_jwt_max_age(self, value: str | None) -> None:
        """Parse the token lifetime; an unparsable value is remembered and logged, not fatal."""
        try:
            self.jwt_max_age = jwt_max_age_seconds(value)
            self.jwt_max_age_error = None
        except ValueError as e:
            self.jwt_max_age = None
            self.jwt_max_age_error = f"invalid jwts.max-age {value!r}: {e}"
            log.warning("%s; issuing tokens will fail", self.jwt_max_age_error)
