"""`cc-backend -init`: bootstrap a working directory (config.json, .env, ./var, job.db, job archive).

Unlike upstream, the `.env` gets a fresh Ed25519 key pair and a random SESSION_KEY instead of the
public demo keys, and existing `config.json` / `.env` files are kept rather than overwritten.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson

from cccommon.jwt import generate_keypair

from .archive.fs import FsArchive

__all__ = ["DEFAULT_CONFIG", "InitError", "env_text", "init_workdir"]

log = logging.getLogger("ccbackend.init")

DEFAULT_CONFIG: dict[str, object] = {
    "main": {
        "addr": "127.0.0.1:8080",
        "short-running-jobs-duration": 300,
        "resampling": {"minimum-points": 600, "trigger": 300, "resolutions": [240, 60]},
        "api-allowed-ips": ["*"],
        "emission-constant": 317,
    },
    "cron": {"commit-job-worker": "1m", "duration-worker": "5m", "footprint-worker": "10m"},
    "archive": {"kind": "file", "path": "./var/job-archive"},
    "auth": {"jwts": {"max-age": "2000h"}},
}
"""The config.json `-init` writes (spec §6.1)."""


class InitError(Exception):
    """The working directory cannot be initialised; the message says why."""


def env_text() -> str:
    """A `.env` with a fresh key pair and session key (never the template's demo keys)."""
    public, private = generate_keypair()
    session = base64.b64encode(secrets.token_bytes(32)).decode()
    return (
        "# Written by `cc-backend -init`. Keep this file secret (mode 0600).\n"
        "# Base64 encoded Ed25519 keys for signing (private) and checking (public) JWTs\n"
        f'JWT_PUBLIC_KEY="{public}"\n'
        f'JWT_PRIVATE_KEY="{private}"\n'
        "\n"
        "# Base64 encoded Ed25519 public key for accepting externally generated JWTs (optional)\n"
        'CROSS_LOGIN_JWT_PUBLIC_KEY=""\n'
        "\n"
        "# Random bytes (base64) used as secret for cookie-based sessions\n"
        f'SESSION_KEY="{session}"\n'
        "\n"
        "# Password for the LDAP server (optional)\n"
        '# LDAP_ADMIN_PASSWORD=""\n'
    )


def _write_new(path: Path, data: bytes, mode: int) -> bool:
    """Create `path` exclusively; False (and a warning) when it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        log.warning("%s exists already and is kept as it is", path)
        return False
    except OSError as e:
        raise InitError(f"{path}: cannot create file: {e.strerror or e}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return True


async def init_workdir(
    root: str | os.PathLike[str],
    migrate: Callable[[str, str], Awaitable[object] | object],
) -> list[str]:
    """Create config.json, .env, var/, var/job.db (via `migrate("sqlite3", path)`) and the archive.

    Refuses (InitError) when `root/var` exists.  Returns the paths created, for the summary.
    """
    base = Path(root)
    var = base / "var"
    if var.exists():
        raise InitError(f"Directory {var} already exists. Cautiously exiting application initialization.")
    created: list[str] = []
    cfg = orjson.dumps(DEFAULT_CONFIG, option=orjson.OPT_INDENT_2) + b"\n"
    if _write_new(base / "config.json", cfg, 0o644):
        created.append("config.json")
    if _write_new(base / ".env", env_text().encode(), 0o600):
        created.append(".env")
    try:
        var.mkdir(mode=0o755)
    except OSError as e:
        raise InitError(f"{var}: cannot create directory: {e.strerror or e}") from None
    created.append("var/")
    db = var / "job.db"
    result = migrate("sqlite3", os.fspath(db))
    if isinstance(result, Awaitable):
        await result
    created.append("var/job.db")
    archive = var / "job-archive"
    FsArchive(archive).version(bootstrap=True)
    created.append("var/job-archive/version.txt")
    return created
