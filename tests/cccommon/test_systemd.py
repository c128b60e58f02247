"""sd_notify over a real AF_UNIX datagram socket, path and abstract forms."""

import os
import socket

from cccommon.systemd import notify


def test_unset_is_noop(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify() is False


def test_path_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(path)
        srv.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert notify() is True
        assert srv.recv(4096) == b"READY=1"
        assert notify("STOPPING=1") is True
        assert srv.recv(4096) == b"STOPPING=1"


def test_abstract_socket(monkeypatch):
    name = f"cc-test-notify-{os.getpid()}-{id(monkeypatch)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind("\0" + name)
        srv.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1\nSTATUS=listening") is True
        assert srv.recv(4096) == b"READY=1\nSTATUS=listening"


def test_unreachable_returns_false(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert notify() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert notify() is False
