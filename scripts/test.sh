#!/usr/bin/env bash
# Runs the whole test suite. Exit code 5 (no tests collected) counts as failure.
set -uo pipefail
cd "$(dirname "$0")/.."
dirs=()
for d in libs services tests bench scripts; do [ -d "$d" ] && dirs+=("$d"); done
.venv/bin/ruff check "${dirs[@]}" || exit 1
.venv/bin/python -m pytest "$@"
