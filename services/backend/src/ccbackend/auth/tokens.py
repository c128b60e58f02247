"""API tokens: issuing EdDSA JWTs and turning a request's token into a Principal.

Signature and time claims are checked by `cccommon.jwt` (EdDSA only; `none` and HMAC refused).
Here: where the token comes from (`X-Auth-Token`, else `Authorization` with optional `Bearer `),
the claims upstream uses (`sub`, `roles`, `projects`, `name`) and `validate-user` (roles from the DB).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cccommon import jwt as ccjwt

from ..model import AuthSource
from ..repository.base import Repository
from .errors import AuthError
from .principal import AuthType, Principal

__all__ = ["TokenAuthenticator", "extract_token"]

log = logging.getLogger("ccbackend.auth")

_TIME_ERRORS = ("Token is expired", "Token is not valid yet", "Token used before issued")


def extract_token(headers: Mapping[str, str]) -> str | None:
    """The raw JWT of a request: `X-Auth-Token` first, else `Authorization` minus a `Bearer ` prefix."""
    token = headers.get("X-Auth-Token", "").strip()
    if not token:
        token = headers.get("Authorization", "").strip()
        if token[:7].lower() == "bearer " or token.lower() == "bearer":
            token = token[6:].strip()
    return token or None


def _claim_strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str)]


def _claim_name(value: Any) -> str:
    """`name` is a string, or an object `{"values": [...]}` whose parts are joined by spaces."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(str(v) for v in value.get("values") or [] if isinstance(v, str | int | float))
    return ""


class TokenAuthenticator:
    """Issues and validates the server's own EdDSA tokens."""

    def __init__(
        self,
        public_key: Ed25519PublicKey | None,
        private_key: Ed25519PrivateKey | None = None,
        *,
        repo: Repository | None = None,
        validate_user: bool = False,
        max_age: float | None = None,
        max_age_error: str | None = None,
        cache_size: int = 1024,
    ) -> None:
        self.public_key = public_key
        self.private_key = private_key
        self.repo = repo
        self.validate_user = validate_user
        self.max_age = max_age
        self.max_age_error = max_age_error
        self._cache = ccjwt.TokenCache(cache_size)

    @property
    def can_issue(self) -> bool:
        return self.private_key is not None

    def issue(self, username: str, roles: Iterable[str], *, now: float | None = None) -> str:
        """A token with `sub`, `roles`, `iat` and, when `max-age` is set, `exp = iat + max-age`."""
        if self.private_key is None:
            raise AuthError("token generation is disabled: JWT_PRIVATE_KEY is not set", 500)
        if self.max_age_error:
            raise AuthError(f"token generation failed: {self.max_age_error}", 500)
        iat = int(time.time() if now is None else now)
        claims: dict[str, Any] = {"sub": username, "roles": list(roles), "iat": iat}
        if self.max_age is not None:
            claims["exp"] = iat + int(self.max_age)
        return ccjwt.sign(claims, self.private_key)

    def verify_claims(self, token: str, *, now: float | None = None) -> dict[str, Any]:
        """Claims of a valid token; AuthError(401) with upstream-like reasons otherwise."""
        if self.public_key is None:
            raise AuthError("token authentication is disabled: JWT_PUBLIC_KEY is not set")
        try:
            return self._cache.verify(token, self.public_key, now=now)
        except ccjwt.TokenError as e:
            msg = str(e)
            if msg in _TIME_ERRORS:
                msg = f"token has invalid claims: {msg[0].lower()}{msg[1:]}"
            raise AuthError(msg) from None

    async def authenticate(self, token: str, *, now: float | None = None) -> Principal:
        """Principal of a token: from the claims, or with `validate-user` from the user table."""
        claims = self.verify_claims(token, now=now)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError("token has invalid claims: missing 'sub'")
        if self.validate_user:
            if self.repo is None:
                raise AuthError("validate-user is set but no user database is available", 500)
            user = await self.repo.get_user(sub)
            if user is None:
                log.info("token of unknown user %r refused (validate-user)", sub)
                raise AuthError("unknown user")
            return Principal.from_user(user, AuthType.TOKEN)
        return Principal(
            username=sub,
            roles=tuple(_claim_strings(claims.get("roles"))),
            projects=(),
            auth_source=AuthSource.token,
            name=_claim_name(claims.get("name")),
            auth_type=AuthType.TOKEN,
        )
