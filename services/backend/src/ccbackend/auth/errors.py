"""Authentication/authorisation failures and their upstream JSON shape."""

from __future__ import annotations

from http import HTTPStatus

import orjson
from aiohttp import web

__all__ = ["AuthError", "LoginRequired", "auth_error_response"]


class AuthError(Exception):
    """A request was refused by the auth layer; 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginRequired(AuthError):
    """No credentials at all on a web page: answered with the login page, not an error body."""

    def __init__(self, message: str = "unauthorized (please login first)") -> None:
        super().__init__(message, 401)


def auth_error_response(status: int, message: str) -> web.Response:
    """`{"status": "<HTTP reason phrase>", "error": "<message>"}` as every API error of upstream."""
    return web.Response(
        body=orjson.dumps({"status": HTTPStatus(status).phrase, "error": message}),
        status=status,
        content_type="application/json",
    )
