"""The NATS connection as the nats sink and the nats receiver both make it (PX-11 TLS, credentials,
connecting in the background until a server answers, then nats-py's endless reconnects)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NATS

from .components import ComponentOptions

__all__ = ["connect_args", "connect_forever", "tls_context"]


def tls_context(opts: ComponentOptions, owner: str, force: bool = False) -> ssl.SSLContext | None:
    """The TLS context of the `ssl`, `ssl_cert`, `ssl_key`, `ssl_ca` options (None: plain NATS).

    `ssl: true` (or `force`) verifies the server with the system CAs or `ssl_ca`; `ssl_cert` +
    `ssl_key` present a client certificate. Missing or unreadable files raise `opts.error`.
    """
    error = opts.error
    use = opts.get_bool("ssl") or force
    cert = opts.get_str("ssl_cert") or ""
    key = opts.get_str("ssl_key") or ""
    ca = opts.get_str("ssl_ca") or ""
    if (cert or key) and not (cert and key):
        raise error(f"{owner}: a client certificate needs both 'ssl_cert' and 'ssl_key'")
    if not (use or cert or ca):
        return None
    for what, path in (("ssl_cert", cert), ("ssl_key", key), ("ssl_ca", ca)):
        if path and not os.path.exists(path):
            raise error(f"{owner}: {what} file {path!r} does not exist")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
        if cert:
            ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise error(f"{owner}: cannot load the TLS files: {e}") from e
    return ctx


def connect_args(
    servers: list[str],
    name: str,
    reconnect_time_wait: float,
    tls: ssl.SSLContext | None,
    user: str,
    password: str,
    nkey_file: str,
    callbacks: Any,
) -> dict[str, Any]:
    """Keyword arguments of `nats.connect`; `callbacks` has `_on_error`, `_on_disconnected`,
    `_on_reconnected`."""
    args: dict[str, Any] = {
        "servers": servers,
        "name": f"cc-metric-collector {name}",
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": reconnect_time_wait,
        "connect_timeout": 2,
        "error_cb": callbacks._on_error,
        "disconnected_cb": callbacks._on_disconnected,
        "reconnected_cb": callbacks._on_reconnected,
    }
    if tls is not None:
        args["tls"] = tls
    if user and password:
        args["user"] = user
        args["password"] = password
    elif nkey_file:
        args["user_credentials"] = nkey_file
    return args


async def connect_forever(
    args: Callable[[], dict[str, Any]],
    closed: Callable[[], bool],
    on_error: Callable[[Exception], Awaitable[None]],
    delay: float,
    after: Callable[[NATS], Awaitable[None]] | None = None,
) -> NATS | None:
    """Connect (and run `after`, e.g. subscribe) until it works; back off up to 30 s between tries.

    Returns the connection, or None when `closed()` became true first.
    """
    while not closed():
        nc = NATS()
        try:
            # with max_reconnect_attempts=-1 nats-py keeps trying until a server answers
            await nc.connect(**args())
            if after is not None:
                await after(nc)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await nc.close()
            raise
        except Exception as e:
            await on_error(e)
            with contextlib.suppress(Exception):
                await nc.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        return nc
    return None
