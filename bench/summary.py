"""Print one table of all benchmark figures from the JSON files the benchmarks wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common import Figure, print_table


def load(paths: list[str]) -> tuple[list[Figure], list[str]]:
    figures: list[Figure] = []
    notes: list[str] = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            notes.append(f"{path.stem}: no result (the benchmark failed, see its output above)")
            continue
        data = json.loads(path.read_text())
        for f in data["figures"]:
            f.pop("ratio", None)
            figures.append(Figure(**f))
        for key, value in data.get("info", {}).items():
            if key.endswith("_check") or key.endswith("_error"):
                notes.append(f"{data['bench']}: {key}: {str(value)[:300]}")
    return figures, notes


def main(argv: list[str]) -> int:
    figures, notes = load(argv)
    print()
    print("=" * 30 + " benchmark summary " + "=" * 30)
    print_table(figures)
    for n in notes:
        print("NOTE", n)
    judged = [f for f in figures if f.passed is not None]
    missed = [f for f in judged if not f.passed]
    print(f"\n{len(judged) - len(missed)} of {len(judged)} targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
