"""`cc-gen-keypair`: make the Ed25519 key pair for `.env`, and optionally sign a token with it.

Upstream's gen-keypair only prints keys (`ED25519 PUBLIC_KEY="…"`); we print them in the `.env`
form (`JWT_PUBLIC_KEY=…`) so they can be pasted directly, and add `-sign` because the Python
stack has no Go toolchain to build golang-jwt's signing tool.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cccommon import jwt as ccjwt
from cccommon.cliutil import GoFlagParser
from cccommon.durations import parse_duration

NOTE = (
    "This is NO JWT token. You can generate JWT tokens with cc-backend (or `cc-gen-keypair -sign`). "
    "Use this keypair for signing and validation of JWT tokens in ClusterCockpit."
)


def _env_file_value(path: Path, name: str) -> str | None:
    """Read one variable from a dotenv file (`NAME=value`, optional quotes and `export`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[7:].lstrip()
        if not line.startswith(name + "="):
            continue
        v = line[len(name) + 1 :].strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        return v
    return None


def _private_key_b64(explicit: str, env_file: str) -> str | None:
    if explicit:
        return explicit
    if os.environ.get("JWT_PRIVATE_KEY"):
        return os.environ["JWT_PRIVATE_KEY"]
    return _env_file_value(Path(env_file), "JWT_PRIVATE_KEY")


def build_parser() -> GoFlagParser:
    p = GoFlagParser(
        prog="cc-gen-keypair",
        description="Generate an Ed25519 key pair for ClusterCockpit JWTs, or sign a token with an existing key.",
    )
    p.add_flag("sign", action="store_true", help="sign a JWT instead of generating keys")
    p.add_flag("user", default="", help="username for the token's 'sub' claim (with -sign)")
    p.add_flag("roles", default="", help="comma-separated roles, e.g. admin,api (with -sign)")
    p.add_flag("key", default="", help="base64 private key (default: $JWT_PRIVATE_KEY, then -env file)")
    p.add_flag("env", default=".env", help="dotenv file to read JWT_PRIVATE_KEY from (default ./.env)")
    p.add_flag("max-age", default="", help="token lifetime as a Go duration (e.g. 2000h); default: no exp")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    p = build_parser()
    args = p.parse_args(argv)
    if not args.sign:
        pub, priv = ccjwt.generate_keypair()
        print(f"JWT_PUBLIC_KEY={pub}")
        print(f"JWT_PRIVATE_KEY={priv}")
        print(NOTE)
        return 0
    if not args.user:
        p.fail("-sign needs -user <name>")
    key_b64 = _private_key_b64(args.key, args.env)
    if not key_b64:
        p.fail(
            "-sign needs a private key: -key <base64>, $JWT_PRIVATE_KEY or JWT_PRIVATE_KEY in the -env file"
        )
    try:
        key = ccjwt.load_private_key(key_b64)
    except ValueError as e:
        p.fail(f"invalid private key: {e}")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": args.user,
        "roles": [r.strip() for r in args.roles.split(",") if r.strip()],
        "iat": now,
    }
    if args.max_age:
        try:
            age = parse_duration(args.max_age)
        except ValueError as e:
            p.fail(f"invalid -max-age: {e}")
        if age > 0:
            claims["exp"] = now + int(age)
    print(ccjwt.sign(claims, key))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
