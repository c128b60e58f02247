"""Shared base for the collectors that wrap a program (lctl, nfsstat, mmpmon, smartctl, …).

On top of `FileCollector` (clock, typed options, logger) it adds what these collectors share:
finding the program on the collector's PATH, the `sudo` prefix, the root check (a hook, so
tests can pretend not to be root), and running a program with optional stdin and the
collector's environment.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector
from .base import CollectorInitError

__all__ = ["CommandCollector", "CommandResult", "metric"]


def metric(
    name: str, tags: Mapping[str, str], meta: Mapping[str, str], value: Any, t_ns: int
) -> CCMessage | None:
    """A metric from a constant name and tag/meta maps (copied); None for a NaN/Inf float.

    The names and keys come from the collector code, never empty, so only the value rule of
    spec §4.1 needs checking.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return CCMessage(name, dict(tags), dict(meta), {"value": value}, t_ns)


class CommandResult:
    __slots__ = ("returncode", "stdout", "stderr")

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class CommandCollector(FileCollector):
    """FileCollector that runs programs; `self.sudo` is `[]` or `[<path of sudo>, "-n"]`."""

    #: seconds a program may run before it is killed (and the read of it skipped)
    command_timeout: float = 30.0

    def __init__(self, root: str = "/", env: Mapping[str, str] | None = None) -> None:
        super().__init__(root, env)
        #: effective uid; tests replace it to check the "root only" paths
        self.geteuid: Callable[[], int] = os.geteuid
        self.sudo: list[str] = []

    # ----------------------------------------------------------------- init helpers

    def find_program(self, name: str, option: str | None = None) -> str:
        """Absolute path of `name` (a name on PATH or a path), or CollectorInitError."""
        p = self.which(name)
        if p is None:
            how = f" (option {option})" if option else ""
            raise CollectorInitError(f"{self.type}: program '{name}'{how} not found in PATH")
        return p

    def setup_sudo(self, use_sudo: bool, root_required: bool, what: str) -> None:
        """With sudo: find it (`sudo -n`, never prompt). Without: fail unless root when required."""
        if use_sudo:
            p = self.which("sudo")
            if p is None:
                raise CollectorInitError(f"{self.type}: use_sudo is set but 'sudo' is not in PATH")
            self.sudo = [p, "-n"]
        else:
            self.sudo = []
            if root_required and self.geteuid() != 0:
                raise CollectorInitError(
                    f"{self.type}: {what} can only be read by root; run as root or set use_sudo"
                )

    # ----------------------------------------------------------------- running programs

    def run(self, argv: list[str], stdin: str | None = None, timeout: float | None = None) -> CommandResult:
        """Run `sudo + argv`; OSError/timeouts become RuntimeError naming the program."""
        full = self.sudo + argv
        try:
            r = subprocess.run(
                full,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout or self.command_timeout,
                env=self.env,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"{argv[0]} did not finish within {e.timeout:g}s") from None
        except OSError as e:
            raise RuntimeError(f"cannot run {full[0]}: {e.strerror or e}") from None
        return CommandResult(r.returncode, r.stdout, r.stderr)

    def output(self, argv: list[str], stdin: str | None = None) -> str:
        """stdout of a successful run; RuntimeError with the exit status and stderr otherwise."""
        r = self.run(argv, stdin)
        if r.returncode != 0:
            err = r.stderr.strip().replace("\n", " ")[:300]
            raise RuntimeError(f"{' '.join(self.sudo + argv)} exited with {r.returncode}: {err}")
        return r.stdout
