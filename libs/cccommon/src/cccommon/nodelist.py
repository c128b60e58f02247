"""Host lists of cc-lib `hostlist`: `node[01-04,07],gpu[1,3]-ib` (ipmi/redfish `host_list`).

Entries are separated by commas outside brackets; each entry may hold one `[...]` group of
comma-separated numbers and increasing `X-Y` ranges (leading zeros give the width). Duplicates are
removed, order is kept. A bad expression raises ValueError naming the problem.

* `expand_hostlist(expr)` → the host names, in order;
* `NodeList(expr)` → membership test (`"f0102" in NodeList("f[0101-0188]")`) without expanding,
  and `len()`; an empty expression matches nothing;
* `compact_hostlist(names)` → the shortest expression of that kind for a list of names.

cc-backend's cluster.json `nodes` (backend spec §2.5) is a related but stricter grammar (several
range sets per term, no singletons in brackets, first-fitting range wins); it gets its own parser.
"""

from __future__ import annotations

import re

__all__ = ["NodeList", "compact_hostlist", "expand_hostlist"]

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


class NodeList:
    """A parsed node list; `name in nodes` tests membership without expanding the ranges."""

    def __init__(self, expr: str) -> None:
        self.expr = expr.strip()
        self._entries: list[tuple[str, list[tuple[int, int, int]] | None, str]] = []
        for entry in _split(self.expr):
            m = _ENTRY.match(entry)
            if m is None:
                raise ValueError(f"host list entry {entry!r}: only one [...] group is allowed")
            prefix, spec, suffix = m.groups()
            if spec is None:
                self._entries.append((prefix + suffix, None, ""))
                continue
            ranges = []
            for part in spec.split(","):
                bounds = part.strip().split("-")
                if len(bounds) > 2 or not all(b.isdigit() and b.isascii() for b in bounds):
                    raise ValueError(f"host list entry {entry!r}: bad range {part.strip()!r}")
                lo, hi = bounds[0], bounds[-1]
                if int(lo) > int(hi):
                    raise ValueError(f"host list entry {entry!r}: decreasing range {part.strip()!r}")
                width = len(lo) if len(bounds) == 1 or lo.startswith("0") else 0
                ranges.append((int(lo), int(hi), width))
            self._entries.append((prefix, ranges, suffix))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        for prefix, ranges, suffix in self._entries:
            if ranges is None:
                if name == prefix:
                    return True
                continue
            if not (name.startswith(prefix) and name.endswith(suffix)):
                continue
            digits = name[len(prefix) : len(name) - len(suffix)] if suffix else name[len(prefix) :]
            if not digits.isdigit() or not digits.isascii():
                continue
            v = int(digits)
            for lo, hi, width in ranges:
                if lo <= v <= hi and (width == 0 and str(v) == digits or width and len(digits) == width):
                    return True
        return False

    def __len__(self) -> int:
        return len(expand_hostlist(self.expr))

    def __repr__(self) -> str:
        return f"NodeList({self.expr!r})"


_NUM_TAIL = re.compile(r"^(.*?)(\d+)$")


def compact_hostlist(names: list[str]) -> str:
    """`["n01", "n02", "n03", "m1"]` → `"n[01-03],m1"` (order of first appearance per prefix)."""
    groups: dict[tuple[str, int], list[int]] = {}
    plain: list[str] = []
    order: list[tuple[str, int] | str] = []
    for n in dict.fromkeys(names):
        m = _NUM_TAIL.match(n)
        if m is None:
            plain.append(n)
            order.append(n)
            continue
        prefix, digits = m.groups()
        width = len(digits) if digits.startswith("0") and len(digits) > 1 else 0
        key = (prefix, width)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(int(digits))
    parts: list[str] = []
    for item in order:
        if isinstance(item, str):
            parts.append(item)
            continue
        prefix, width = item
        nums = sorted(set(groups[item]))
        if len(nums) == 1:
            parts.append(f"{prefix}{nums[0]:0{width}d}")
            continue
        spans: list[str] = []
        lo = prev = nums[0]
        for v in nums[1:] + [None]:  # type: ignore[list-item]
            if v is not None and v == prev + 1:
                prev = v
                continue
            spans.append(f"{lo:0{width}d}" if lo == prev else f"{lo:0{width}d}-{prev:0{width}d}")
            if v is not None:
                lo = prev = v
        parts.append(f"{prefix}[{','.join(spans)}]")
    return ",".join(parts)
