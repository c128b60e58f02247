"""Ed25519 (EdDSA) JWTs with upstream's key format, shared by all three daemons.

Only EdDSA is ever accepted: `alg: none`, HMAC and RSA/ECDSA tokens are refused before any key
is touched. Time claims (`exp`, `nbf`, `iat`) are checked only when present, without leeway,
like golang-jwt; no other claim is interpreted here.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import jwt as _pyjwt
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

__all__ = [
    "TokenError",
    "TokenCache",
    "load_public_key",
    "load_private_key",
    "generate_keypair",
    "public_key_b64",
    "sign",
    "verify",
    "check_time_claims",
]


class TokenError(Exception):
    """A token was refused; the message is meant for the 401 body and the log."""


def _b64decode(value: str, what: str) -> bytes:
    s = value.strip()
    if not s:
        raise ValueError(f"{what} is empty")
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"{what} is not valid standard base64: {e}") from None


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_public_key(b64: str) -> Ed25519PublicKey:
    """Decode `JWT_PUBLIC_KEY` (base64 of the raw 32-byte key) as upstream stores it."""
    raw = _b64decode(b64, "Ed25519 public key")
    if len(raw) != 32:
        raise ValueError(f"Ed25519 public key must decode to 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private_key(b64: str) -> Ed25519PrivateKey:
    """Decode `JWT_PRIVATE_KEY`: Go's 64-byte seed||public form, or a bare 32-byte seed."""
    raw = _b64decode(b64, "Ed25519 private key")
    if len(raw) not in (32, 64):
        raise ValueError(
            f"Ed25519 private key must decode to 64 bytes (seed + public key) or 32 bytes, got {len(raw)}"
        )
    key = Ed25519PrivateKey.from_private_bytes(raw[:32])
    if len(raw) == 64 and _raw_public(key.public_key()) != raw[32:]:
        raise ValueError("Ed25519 private key is inconsistent: its public half does not match its seed")
    return key


def public_key_b64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Base64 of the raw public key (the `JWT_PUBLIC_KEY` form) for any key object."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return base64.b64encode(_raw_public(key)).decode()


def generate_keypair() -> tuple[str, str]:
    """Fresh key pair as (public_b64, private_b64) in the format upstream's gen-keypair prints."""
    priv = Ed25519PrivateKey.generate()
    seed = priv.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    pub = _raw_public(priv.public_key())
    return base64.b64encode(pub).decode(), base64.b64encode(seed + pub).decode()


def _as_private(key: Ed25519PrivateKey | str | bytes) -> Ed25519PrivateKey:
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, bytes):
        return Ed25519PrivateKey.from_private_bytes(key[:32])
    return load_private_key(key)


def _as_public(key: Ed25519PublicKey | str | bytes) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, bytes):
        return Ed25519PublicKey.from_public_bytes(key)
    return load_public_key(key)


def sign(claims: dict[str, Any], private_key: Ed25519PrivateKey | str | bytes) -> str:
    """Sign claims as an EdDSA JWS (header `{"alg":"EdDSA","typ":"JWT"}`)."""
    return _pyjwt.encode(dict(claims), _as_private(private_key), algorithm="EdDSA", headers={"typ": "JWT"})


def _b64url(part: str, what: str) -> bytes:
    try:
        return base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise TokenError(f"token is malformed: could not base64 decode {what}") from None


def _numeric(claims: dict[str, Any], name: str) -> float | None:
    v = claims.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TokenError(f"token is malformed: invalid type for claim '{name}'")
    return float(v)


def check_time_claims(
    claims: dict[str, Any], *, max_age: float | None = None, now: float | None = None
) -> None:
    """Validate `exp`/`nbf`/`iat` when present (no leeway), and `max_age` against `iat`."""
    t = time.time() if now is None else now
    exp = _numeric(claims, "exp")
    if exp is not None and not t < exp:
        raise TokenError("Token is expired")
    nbf = _numeric(claims, "nbf")
    if nbf is not None and t < nbf:
        raise TokenError("Token is not valid yet")
    iat = _numeric(claims, "iat")
    if iat is not None and t < iat:
        raise TokenError("Token used before issued")
    if max_age is not None and iat is not None and t - iat > max_age:
        raise TokenError("Token is older than the configured max-age")


def _verify_signature(token: str, public_key: Ed25519PublicKey | str | bytes) -> dict[str, Any]:
    if not isinstance(token, str):
        raise TokenError("token is malformed: not a string")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise TokenError("token is malformed: token contains an invalid number of segments")
    h64, p64, s64 = parts
    try:
        header = orjson.loads(_b64url(h64, "header"))
    except orjson.JSONDecodeError:
        raise TokenError("token is malformed: could not JSON decode header") from None
    if not isinstance(header, dict):
        raise TokenError("token is malformed: header is not a JSON object")
    alg = header.get("alg")
    if alg != "EdDSA":
        raise TokenError(f"token signing method {alg!r} is not accepted: only Ed25519/EdDSA supported")
    sig = _b64url(s64, "signature")
    key = _as_public(public_key)
    try:
        key.verify(sig, f"{h64}.{p64}".encode("ascii", "replace"))
    except InvalidSignature:
        raise TokenError("token signature is invalid: ed25519: verification error") from None
    try:
        claims = orjson.loads(_b64url(p64, "claims"))
    except orjson.JSONDecodeError:
        raise TokenError("token is malformed: could not JSON decode claims") from None
    if not isinstance(claims, dict):
        raise TokenError("token is malformed: claims are not a JSON object")
    return claims


def verify(
    token: str,
    public_key: Ed25519PublicKey | str | bytes,
    *,
    max_age: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Return the claims of a validly signed EdDSA token, else raise `TokenError`."""
    claims = _verify_signature(token, public_key)
    check_time_claims(claims, max_age=max_age, now=now)
    return claims


class TokenCache:
    """Remembers validated tokens so the signature is checked once; time claims every use."""

    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self._cache: dict[tuple[str, bytes], dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()

    def verify(
        self,
        token: str,
        public_key: Ed25519PublicKey | str | bytes,
        *,
        max_age: float | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Like `verify()`, answering repeated tokens from the cache."""
        key = _as_public(public_key)
        ck = (token, _raw_public(key))
        claims = self._cache.get(ck)
        if claims is not None:
            try:
                check_time_claims(claims, max_age=max_age, now=now)
            except TokenError:
                self._cache.pop(ck, None)
                raise
            return dict(claims)
        claims = _verify_signature(token, key)
        check_time_claims(claims, max_age=max_age, now=now)
        if len(self._cache) >= self.maxsize:
            self._cache.clear()
        self._cache[ck] = claims
        return dict(claims)
