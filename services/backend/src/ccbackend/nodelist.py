"""Node-list expressions of cluster.json subclusters, with cc-backend's grammar (spec backend-data §2.5).

This is deliberately not `cccommon.nodelist` (cc-lib's host lists): the backend's grammar has
fixed-width, zero-padded ranges matched first-range-wins without backtracking, rejects singleton
brackets such as `[0731]`, and allows several rangesets per term (`r[1-2]n[01-04]`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["NodeList", "Range", "RangeSet"]

_LITERAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


def _is_digits(s: str) -> bool:
    """ASCII digits only (str.isdigit accepts other Unicode digits, int() signs and underscores)."""
    return bool(s) and all("0" <= c <= "9" for c in s)


@dataclass(frozen=True)
class Range:
    """`lo-hi` with a fixed width: matches exactly `width` digits whose value lies in [lo, hi]."""

    lo: int
    hi: int
    width: int


@dataclass(frozen=True)
class RangeSet:
    """A bracket `[a-b,c-d,...]`; the first range (in written order) that fits wins."""

    ranges: tuple[Range, ...]


Atom = str | RangeSet


def _match_term(atoms: tuple[Atom, ...], name: str) -> bool:
    pos = 0
    for atom in atoms:
        if isinstance(atom, str):
            if not name.startswith(atom, pos):
                return False
            pos += len(atom)
            continue
        for r in atom.ranges:
            chunk = name[pos : pos + r.width]
            if len(chunk) == r.width and _is_digits(chunk) and r.lo <= int(chunk) <= r.hi:
                pos += r.width
                break
        else:
            return False
    return pos == len(name)


def _expand_term(atoms: tuple[Atom, ...]) -> Iterator[str]:
    parts: list[list[str]] = []
    for atom in atoms:
        if isinstance(atom, str):
            parts.append([atom])
        else:
            parts.append([f"{v:0{r.width}d}" for r in atom.ranges for v in range(r.lo, r.hi + 1)])
    for combo in itertools.product(*parts):
        yield "".join(combo)


class NodeList:
    """A parsed node-list expression: `contains(host)`, iteration over all hostnames, node count."""

    def __init__(self, expr: str, terms: list[tuple[Atom, ...]]) -> None:
        self.expr = expr
        self.terms = terms

    def __repr__(self) -> str:
        return f"NodeList({self.expr!r})"

    @classmethod
    def parse(cls, expr: str) -> NodeList:
        """Parse `expr`; a syntax error raises ValueError naming the expression and the position."""
        if not isinstance(expr, str):
            raise ValueError(f"node list {expr!r}: expected a string")
        terms: list[tuple[Atom, ...]] = []
        pos, n = 0, len(expr)
        atoms: list[Atom] = []

        def fail(at: int, problem: str) -> ValueError:
            return ValueError(f"invalid node list {expr!r} at position {at}: {problem}")

        while pos < n:
            c = expr[pos]
            if c == ",":
                terms.append(tuple(atoms))
                atoms = []
                pos += 1
            elif c == "[":
                close = expr.find("]", pos)
                if close < 0:
                    raise fail(pos, "unclosed '['")
                body = expr[pos + 1 : close]
                if "[" in body:
                    raise fail(pos, "'[' inside a bracket")
                ranges: list[Range] = []
                for item in body.split(","):
                    lo, sep, hi = item.partition("-")
                    if not sep:
                        raise fail(pos, f"bracket item {item!r} is not a range 'lo-hi' (write singletons outside [])")
                    if not _is_digits(lo) or not _is_digits(hi):
                        raise fail(pos, f"range {item!r}: bounds must be non-empty decimal digits")
                    if len(lo) != len(hi):
                        raise fail(pos, f"range {item!r}: both bounds need the same number of digits")
                    ranges.append(Range(int(lo), int(hi), len(lo)))
                atoms.append(RangeSet(tuple(ranges)))
                pos = close + 1
            else:
                m = _LITERAL.match(expr, pos)
                if m is None:
                    raise fail(pos, f"unexpected character {c!r}")
                atoms.append(m.group())
                pos = m.end()
        terms.append(tuple(atoms))
        return cls(expr, terms)

    def contains(self, hostname: str) -> bool:
        """Whether `hostname` is matched by any term (an empty term matches nothing)."""
        return any(atoms and _match_term(atoms, hostname) for atoms in self.terms)

    __contains__ = contains

    def __iter__(self) -> Iterator[str]:
        """All hostnames the expression denotes, term by term (duplicates across terms are kept)."""
        for atoms in self.terms:
            if atoms:
                yield from _expand_term(atoms)

    def hostnames(self) -> list[str]:
        """All hostnames, in written order, without duplicates."""
        return list(dict.fromkeys(self))

    def upstream_node_count(self) -> int:
        """Node count as upstream computes it (GraphQL numberOfNodes), quirks included.

        1 per single-atom term (even a bare rangeset), Σ(hi-lo+1) over the ranges of a
        literal+rangeset term (further atoms ignored); empty terms count nothing.
        """
        total = 0
        for atoms in self.terms:
            if len(atoms) == 1:
                total += 1
            elif len(atoms) >= 2 and isinstance(atoms[1], RangeSet):
                total += sum(max(0, r.hi - r.lo + 1) for r in atoms[1].ranges)
        return total
