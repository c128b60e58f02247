"""The `.env` file of the working directory: secrets the backend reads at start (spec §5.10).

The file is mandatory, as upstream (`godotenv.Load`); variables already set in the real environment
win over the file.  Syntax accepted: `KEY=value`, `export KEY=value`, `KEY: value`, single quotes
(literal), double quotes (with `\\n`, `\\t`, `\\"`, `\\\\` escapes), `#` comment lines and ` #`
comments after unquoted values, blank lines.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEMO_PUBLIC_KEY", "Env", "EnvError", "load_env", "parse_env_text"]

log = logging.getLogger("ccbackend.env")

DEMO_PUBLIC_KEY = "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0="
"""Public key of upstream's `configs/env-template.txt` (the private half is public knowledge)."""

DEMO_SESSION_KEY = "67d829bf61dc5f87a73fd814e2c9f629"

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


class EnvError(Exception):
    """An unusable `.env` file; the message names the file and line."""


def _unquote_double(raw: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _parse_value(rest: str, where: str, lines: list[str], idx: int) -> tuple[str, int]:
    """Value of one assignment; returns (value, index of the last line used)."""
    rest = rest.strip()
    if rest[:1] in ("'", '"'):
        q = rest[0]
        body = rest[1:]
        # a quoted value may span lines (godotenv allows multi-line double-quoted values)
        j = idx
        while True:
            end = _closing_quote(body, q)
            if end >= 0:
                trailing = body[end + 1 :].strip()
                if trailing and not trailing.startswith("#"):
                    raise EnvError(f"{where}: unexpected text after the closing quote: {trailing!r}")
                value = body[:end]
                return (value if q == "'" else _unquote_double(value)), j
            j += 1
            if j >= len(lines):
                raise EnvError(f"{where}: unterminated {q} quoted value")
            body += "\n" + lines[j]
    value = rest
    m = re.search(r"\s#", value)
    if m:
        value = value[: m.start()]
    return value.strip(), idx


def _closing_quote(body: str, q: str) -> int:
    i = 0
    while i < len(body):
        if body[i] == "\\" and q == '"':
            i += 2
            continue
        if body[i] == q:
            return i
        i += 1
    return -1


def parse_env_text(text: str, file: str = ".env") -> dict[str, str]:
    """Parse dotenv text into a dict; EnvError names file and line for malformed lines."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        lineno = i + 1
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        eq = line.find("=")
        colon = line.find(":")
        if eq < 0 and colon < 0:
            raise EnvError(f"{file}: line {lineno}: expected KEY=value, got {line!r}")
        sep = eq if eq >= 0 and (colon < 0 or eq < colon) else colon
        key = line[:sep].strip()
        if not _KEY_RE.match(key):
            raise EnvError(f"{file}: line {lineno}: invalid variable name {key!r}")
        value, last = _parse_value(line[sep + 1 :], f"{file}: line {lineno}", lines, i - 1)
        i = last + 1
        out[key] = value
    return out


@dataclass
class Env:
    """The secrets of the backend, after `.env` and the real environment are merged."""

    jwt_public_key: str = ""
    jwt_private_key: str = ""
    session_key: str = ""
    ldap_admin_password: str = ""
    cross_login_jwt_hs512_key: str = ""
    cross_login_jwt_public_key: str = ""
    oid_client_id: str = ""
    oid_client_secret: str = ""
    debug: bool = False
    file: str = ""
    """The `.env` file read ("" when none)."""
    values: dict[str, str] = field(default_factory=dict)
    """Every variable of the file (after environment overrides), for components with own keys."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, str], file: str = "") -> Env:
        """Build from a merged mapping of variable names to values."""
        g = values.get
        return cls(
            jwt_public_key=(g("JWT_PUBLIC_KEY") or "").strip(),
            jwt_private_key=(g("JWT_PRIVATE_KEY") or "").strip(),
            session_key=(g("SESSION_KEY") or "").strip(),
            ldap_admin_password=g("LDAP_ADMIN_PASSWORD") or "",
            cross_login_jwt_hs512_key=(g("CROSS_LOGIN_JWT_HS512_KEY") or "").strip(),
            cross_login_jwt_public_key=(g("CROSS_LOGIN_JWT_PUBLIC_KEY") or "").strip(),
            oid_client_id=g("OID_CLIENT_ID") or "",
            oid_client_secret=g("OID_CLIENT_SECRET") or "",
            debug=(g("DEBUG") or "") == "1",
            file=file,
            values=dict(values),
        )

    @property
    def demo_keys(self) -> bool:
        """Whether the publicly known key pair of upstream's template is in use."""
        return self.jwt_public_key == DEMO_PUBLIC_KEY


def load_env(
    path: str | os.PathLike[str] = ".env",
    *,
    environ: Mapping[str, str] | None = None,
    apply: bool = True,
) -> Env:
    """Read the `.env` file; real environment variables win.  Missing or malformed file: EnvError.

    With `apply`, variables of the file that are not yet in `os.environ` are exported there (as
    godotenv does), so libraries reading the environment see them too.
    """
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnvError(
            f"{name}: file not found; the backend needs it for JWT_PUBLIC_KEY, JWT_PRIVATE_KEY and "
            "SESSION_KEY (create one with `cc-backend -init` or copy configs/env-template.txt)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise EnvError(f"{name}: cannot read file: {e}") from None
    file_values = parse_env_text(text, name)
    env_map = os.environ if environ is None else environ
    merged = dict(file_values)
    for key in file_values:
        if key in env_map:
            merged[key] = env_map[key]
    for key in (
        "JWT_PUBLIC_KEY",
        "JWT_PRIVATE_KEY",
        "SESSION_KEY",
        "LDAP_ADMIN_PASSWORD",
        "CROSS_LOGIN_JWT_HS512_KEY",
        "CROSS_LOGIN_JWT_PUBLIC_KEY",
        "OID_CLIENT_ID",
        "OID_CLIENT_SECRET",
        "DEBUG",
    ):
        if key in env_map:
            merged[key] = env_map[key]
    if apply and environ is None:
        for key, value in file_values.items():
            os.environ.setdefault(key, value)
    env = Env.from_mapping(merged, file=name)
    if env.demo_keys:
        log.warning(
            "%s: JWT_PUBLIC_KEY is the public demo key of the upstream template; generate your own "
            "key pair (cc-gen-keypair) before production use",
            name,
        )
    if env.session_key == DEMO_SESSION_KEY:
        log.warning("%s: SESSION_KEY is the demo value of the upstream template; set random bytes", name)
    return env
