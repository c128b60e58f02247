"""Command lines in Go `flag` syntax, so upstream systemd units and scripts keep working."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["GoFlagParser", "fail", "parse_go_bool"]

_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
_NEG = "--\x00no-"  # internal option prefix for `-flag=false`; never typed by users
_FLAG_RE = re.compile(r"^--?[A-Za-z]")


def parse_go_bool(value: str) -> bool:
    """Go's strconv.ParseBool, used for `-flag=true|false`."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"invalid boolean value {value!r}")


def fail(message: str, prog: str | None = None) -> NoReturn:
    """Print `<prog>: message` to stderr and exit 2, the Go convention for usage errors."""
    name = prog or os.path.basename(sys.argv[0] or "cc") or "cc"
    print(f"{name}: {message}", file=sys.stderr)
    raise SystemExit(2)


class GoFlagParser(argparse.ArgumentParser):
    """argparse accepting `-flag value`, `--flag value`, `-flag=value`, `--flag=value`."""

    def __init__(self, prog: str | None = None, description: str | None = None, **kw: Any) -> None:
        kw.setdefault("allow_abbrev", False)
        kw.setdefault("add_help", False)
        super().__init__(prog=prog, description=description, **kw)
        self._bool_flags: set[str] = set()
        self.add_argument("-h", "-help", "--help", action="help", help="show this help message and exit")

    def add_flag(self, name: str, **kw: Any) -> argparse.Action:
        """Register `-name`/`--name`; `action="store_true"` (or a bool default) makes a Go bool flag."""
        name = name.lstrip("-")
        kw.setdefault("dest", name.replace("-", "_"))
        is_bool = kw.get("action") == "store_true" or (
            "action" not in kw and "type" not in kw and isinstance(kw.get("default"), bool)
        )
        if is_bool:
            kw["action"] = "store_true"
            kw.setdefault("default", False)
            self._bool_flags.add(name)
            action = self.add_argument(f"-{name}", f"--{name}", **kw)
            self.add_argument(
                _NEG + name,
                dest=kw["dest"],
                action="store_false",
                default=kw["default"],
                help=argparse.SUPPRESS,
            )
            return action
        return self.add_argument(f"-{name}", f"--{name}", **kw)

    def _rewrite(self, args: Sequence[str]) -> list[str]:
        """Turn Go's `-boolflag=value` into forms argparse understands."""
        out: list[str] = []
        it = iter(args)
        takes_value = False
        for a in it:
            if takes_value:  # the value of the previous flag, even if it starts with "-" (as in Go)
                out[-1] = f"{out[-1]}={a}"
                takes_value = False
                continue
            if a == "--":
                out.append(a)
                out.extend(it)
                break
            if _FLAG_RE.match(a):
                opt = a.partition("=")[0]
                action = self._option_string_actions.get(opt)
                if action is None:
                    self.error(f"flag provided but not defined: {opt}")  # no prefix matching, as Go
                takes_value = "=" not in a and action.nargs is None
            if a.startswith("-") and "=" in a:
                opt, _, val = a.partition("=")
                name = opt.lstrip("-")
                if opt in (f"-{name}", f"--{name}") and name in self._bool_flags:
                    try:
                        on = parse_go_bool(val)
                    except ValueError:
                        self.error(f'invalid boolean value "{val}" for -{name}')
                    out.append(f"--{name}" if on else _NEG + name)
                    continue
            out.append(a)
        return out

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self._rewrite(argv), namespace)

    def fail(self, message: str) -> NoReturn:
        """Usage error with this parser's program name."""
        fail(message, self.prog)
