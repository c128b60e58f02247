"""bcrypt password hashes as upstream writes them (`$2a$`, cost 10); hashing runs off the event loop."""

from __future__ import annotations

import asyncio

import bcrypt

__all__ = ["BCRYPT_COST", "check_password", "hash_password", "hash_password_sync", "check_password_sync"]

BCRYPT_COST = 10
_MAX_BYTES = 72


def hash_password_sync(password: str, cost: int = BCRYPT_COST) -> str:
    """A `$2a$` bcrypt hash (the prefix Go's x/crypto/bcrypt writes); ValueError above 72 bytes."""
    raw = password.encode("utf-8")
    if len(raw) > _MAX_BYTES:
        raise ValueError("password is longer than 72 bytes (bcrypt limit)")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=cost, prefix=b"2a")).decode("ascii")


def check_password_sync(password: str, hashed: str | None) -> bool:
    """Whether `password` matches a `$2a$`/`$2b$`/`$2y$` hash; False for empty or malformed hashes."""
    if not hashed:
        return False
    raw = password.encode("utf-8")[:_MAX_BYTES]
    try:
        return bcrypt.checkpw(raw, hashed.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False


async def hash_password(password: str, cost: int = BCRYPT_COST) -> str:
    return await asyncio.to_thread(hash_password_sync, password, cost)


async def check_password(password: str, hashed: str | None) -> bool:
    return await asyncio.to_thread(check_password_sync, password, hashed)
