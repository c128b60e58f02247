"""Host list expressions of cc-lib `hostlist` (`node[01-04,07],gpu[1,3]-ib`), used by ipmi and redfish.

Entries are separated by commas outside brackets; each entry may hold one `[...]` group of
comma-separated numbers and increasing `X-Y` ranges (leading zeros give the width). Duplicates are
removed, order is kept. A bad expression raises ValueError naming the problem.
"""

from __future__ import annotations

import re

__all__ = ["expand_hostlist"]

_ENTRY = re.compile(r"([^\[\],]*)(?:\[([^\[\]]*)\])?([^\[\],]*)\Z")


def _split(expr: str) -> list[str]:
    out: list[str] = []
    depth = 0
    cur: list[str] = []
    for c in expr:
        if c == "[":
            depth += 1
            if depth > 1:
                raise ValueError(f"host list {expr!r}: nested '['")
        elif c == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"host list {expr!r}: ']' without '['")
        if c == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    if depth != 0:
        raise ValueError(f"host list {expr!r}: '[' without ']'")
    out.append("".join(cur))
    return [e.strip() for e in out if e.strip()]


def expand_hostlist(expr: str) -> list[str]:
    """`n[1-2],m[01,03]` → `["n1", "n2", "m01", "m03"]`."""
    hosts: dict[str, None] = {}
    for entry in _split(expr):
        m = _ENTRY.match(entry)
        if m is None:
            raise ValueError(f"host list entry {entry!r}: only one [...] group is allowed")
        prefix, spec, suffix = m.groups()
        if spec is None:
            hosts[prefix + suffix] = None
            continue
        for part in spec.split(","):
            part = part.strip()
            if not part:
                raise ValueError(f"host list entry {entry!r}: empty range")
            bounds = part.split("-")
            if len(bounds) > 2 or not all(b.isdigit() and b.isascii() for b in bounds):
                raise ValueError(f"host list entry {entry!r}: bad range {part!r}")
            lo, hi = bounds[0], bounds[-1]
            if int(lo) > int(hi):
                raise ValueError(f"host list entry {entry!r}: decreasing range {part!r}")
            width = len(lo) if len(bounds) == 1 or lo.startswith("0") else 0
            for v in range(int(lo), int(hi) + 1):
                hosts[f"{prefix}{v:0{width}d}{suffix}"] = None
    return list(hosts)
