"""sd_notify without libsystemd, so units can use `Type=notify` (see spec/decisions.md)."""

from __future__ import annotations

import logging as _logging
import os
import socket

__all__ = ["notify"]

_log = _logging.getLogger("cccommon.systemd")


def notify(state: str = "READY=1") -> bool:
    """Send `state` to `$NOTIFY_SOCKET`; False when unset or unreachable (never raises)."""
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if not addr:
        return False
    if addr[0] == "@":
        target = "\0" + addr[1:]
    elif addr[0] == "/":
        target = addr
    else:
        _log.warning("NOTIFY_SOCKET %r is not a unix socket path; systemd notification skipped", addr)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), target)
    except OSError as e:
        _log.warning("systemd notification %r to %r failed: %s", state, addr, e)
        return False
    return True
