"""The browser session: a `session` cookie signed with HMAC-SHA256 under the SESSION_KEY bytes.

Cookie value: `<payload>.<mac>`, both base64url without padding; the payload is JSON
`{"u": username, "r": roles, "p": projects, "s": auth source, "t": issue time}`.  A cookie older
than the session lifetime, from the future, or with a bad MAC is rejected.  Cookies of the Go server
(gorilla securecookie) are not readable: users log in again after a switch-over.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from .config import SESSION_FALLBACK_MAX_AGE

__all__ = [
    "SESSION_COOKIE",
    "SessionCodec",
    "SessionData",
    "SessionError",
    "decode_session_key",
    "expire_session_cookie",
    "is_https",
    "set_session_cookie",
]

SESSION_COOKIE = "session"
_CLOCK_SKEW = 60


class SessionError(Exception):
    """A session cookie that cannot be trusted; the message says why (for the log)."""


def decode_session_key(value: str) -> bytes:
    """SESSION_KEY is base64 (std, padding optional); the decoded bytes are the HMAC key."""
    s = value.strip()
    if not s:
        raise ValueError("SESSION_KEY is empty")
    try:
        key = base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"SESSION_KEY is not valid base64: {e}") from None
    if len(key) < 16:
        raise ValueError(f"SESSION_KEY decodes to {len(key)} bytes; use at least 16 (32 recommended)")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SessionData:
    """What a session remembers about the login."""

    username: str
    roles: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    auth_source: int = 0
    issued_at: int = field(default_factory=lambda: int(time.time()))


class SessionCodec:
    """Signs and verifies session cookie values."""

    def __init__(self, key: bytes, max_age: int = SESSION_FALLBACK_MAX_AGE) -> None:
        if len(key) < 16:
            raise ValueError("session key must be at least 16 bytes")
        self._key = key
        self.max_age = max_age

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def encode(self, data: SessionData) -> str:
        payload = _b64(
            orjson.dumps(
                {
                    "u": data.username,
                    "r": list(data.roles),
                    "p": list(data.projects),
                    "s": data.auth_source,
                    "t": data.issued_at,
                }
            )
        )
        return f"{payload}.{self._mac(payload)}"

    def decode(self, value: str, *, now: float | None = None) -> SessionData:
        """The session of a cookie value; SessionError when forged, malformed or expired."""
        payload, sep, mac = value.partition(".")
        if not sep or not payload or not mac:
            raise SessionError("malformed session cookie")
        try:
            expected = self._mac(payload)
        except UnicodeEncodeError:
            raise SessionError("malformed session cookie") from None
        if not hmac.compare_digest(expected, mac):
            raise SessionError("session cookie signature mismatch")
        try:
            obj = orjson.loads(_unb64(payload))
        except (binascii.Error, ValueError, orjson.JSONDecodeError):
            raise SessionError("malformed session payload") from None
        if not isinstance(obj, dict):
            raise SessionError("malformed session payload")
        username, issued = obj.get("u"), obj.get("t")
        roles, projects, source = obj.get("r", []), obj.get("p", []), obj.get("s", 0)
        if (
            not isinstance(username, str)
            or not username
            or not isinstance(issued, int)
            or not isinstance(roles, list)
            or not isinstance(projects, list)
            or not isinstance(source, int)
        ):
            raise SessionError("malformed session payload")
        t = time.time() if now is None else now
        if issued > t + _CLOCK_SKEW:
            raise SessionError("session cookie issued in the future")
        if t - issued > self.max_age:
            raise SessionError("session expired")
        return SessionData(
            username=username,
            roles=tuple(str(r) for r in roles),
            projects=tuple(str(p) for p in projects),
            auth_source=source,
            issued_at=issued,
        )


def is_https(request: web.Request) -> bool:
    """Whether the client used HTTPS: TLS on this socket or `X-Forwarded-Proto: https` from a proxy."""
    if request.transport is not None and request.transport.get_extra_info("sslcontext") is not None:
        return True
    return request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower() == "https"


def set_session_cookie(response: web.StreamResponse, value: str, max_age: int, *, secure: bool) -> None:
    """`session=<value>; Path=/; Max-Age=...; HttpOnly; SameSite=Lax` (+ `Secure` over HTTPS)."""
    response.set_cookie(
        SESSION_COOKIE, value, max_age=max_age, path="/", httponly=True, samesite="Lax", secure=secure
    )


def expire_session_cookie(response: web.StreamResponse, *, secure: bool = False) -> None:
    """Tell the browser to drop the session cookie (Max-Age=0, expiry in the past)."""
    response.set_cookie(
        SESSION_COOKIE,
        "",
        max_age=0,
        expires="Thu, 01 Jan 1970 00:00:01 GMT",
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure,
    )
