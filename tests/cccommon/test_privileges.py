"""Dropping root: real setuid in a child process when we are root, clear errors otherwise."""

import os
import pwd
import subprocess
import sys

import pytest

from cccommon.privileges import PrivilegeError, drop_privileges


def test_noop_when_unconfigured():
    drop_privileges(None, None)
    drop_privileges("", "")


def test_unknown_user_and_group():
    with pytest.raises(PrivilegeError, match="unknown user 'no-such-user-cc'"):
        drop_privileges("no-such-user-cc", None)
    with pytest.raises(PermissionError, match="unknown group"):
        drop_privileges(None, "no-such-group-cc")


def test_same_identity_is_fine_for_non_root():
    if os.geteuid() == 0:
        pytest.skip("runs as root")
    me = pwd.getpwuid(os.getuid()).pw_name
    drop_privileges(me, None)
    with pytest.raises(PrivilegeError, match="not running as root"):
        drop_privileges("root", None)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_drop_in_child_process():
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    code = (
        "import os; from cccommon.privileges import drop_privileges;"
        "drop_privileges('nobody', None);"
        "print(os.getuid(), os.getgid(), os.getgroups())"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    uid, gid, *_ = r.stdout.split(" ", 2)
    assert int(uid) == nobody.pw_uid and int(gid) == nobody.pw_gid
    code2 = "from cccommon.privileges import drop_privileges; drop_privileges(None, '65534'); import os; print(os.getgid())"
    r = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "65534", r.stderr
