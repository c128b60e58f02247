"""The login page (jinja2 template `web/templates/login.html`), rendered for GET /login and 401s."""

from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web

__all__ = ["LoginPage", "TEMPLATES_DIR", "safe_redirect"]

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "web" / "templates"


def safe_redirect(target: str | None) -> str:
    """`target` when it is a relative path on this site (`/x?y`), else `/` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    return target


class LoginPage:
    """Renders the login form with an optional alert; the template is loaded once, at construction."""

    def __init__(self, templates_dir: Path = TEMPLATES_DIR, *, oidc_enabled: bool = False) -> None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir)),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
        )
        self._template = env.get_template("login.html")
        self.oidc_enabled = oidc_enabled

    def render(
        self, *, message: str = "", kind: str = "danger", redirect: str = "", username: str = ""
    ) -> str:
        return self._template.render(
            message=message,
            kind=kind,
            redirect=safe_redirect(redirect) if redirect else "",
            username=username,
            oidc_enabled=self.oidc_enabled,
        )

    def response(
        self,
        status: int = 200,
        *,
        message: str = "",
        kind: str = "danger",
        redirect: str = "",
        username: str = "",
    ) -> web.Response:
        return web.Response(
            text=self.render(message=message, kind=kind, redirect=redirect, username=username),
            status=status,
            content_type="text/html",
            charset="utf-8",
        )
