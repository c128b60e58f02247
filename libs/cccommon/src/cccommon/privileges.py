"""Drop root after binding privileged ports, as the `user`/`group` config keys ask."""

from __future__ import annotations

import grp
import os
import pwd

__all__ = ["PrivilegeError", "drop_privileges"]


class PrivilegeError(PermissionError):
    """Privileges could not be dropped as configured; the daemon must not go on as root."""


def _lookup_user(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        pass
    if user.isdigit():
        try:
            return pwd.getpwuid(int(user))
        except KeyError:
            pass
    raise PrivilegeError(f"cannot drop privileges: unknown user {user!r}")


def _lookup_gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        pass
    if group.isdigit():
        return int(group)
    raise PrivilegeError(f"cannot drop privileges: unknown group {group!r}")


def drop_privileges(user: str | None, group: str | None) -> None:
    """Switch to `group` then `user` (names or numeric ids); no-op when both are empty."""
    if not user and not group:
        return
    pw = _lookup_user(user) if user else None
    gid = _lookup_gid(group) if group else (pw.pw_gid if pw else None)
    uid = pw.pw_uid if pw else None
    if os.geteuid() != 0:
        if (uid is None or uid == os.getuid()) and (gid is None or gid == os.getgid()):
            return  # already running as the configured identity
        raise PrivilegeError(
            f"cannot drop privileges to user={user or '-'} group={group or '-'}: "
            f"not running as root (euid {os.geteuid()})"
        )
    try:
        if gid is not None:
            if pw is not None:
                os.initgroups(pw.pw_name, gid)
            else:
                os.setgroups([gid])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
    except OSError as e:
        raise PrivilegeError(f"cannot drop privileges to user={user or '-'} group={group or '-'}: {e}") from e
