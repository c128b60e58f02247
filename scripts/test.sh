#!/usr/bin/env bash
# Runs the whole test suite. Exit code 5 (no tests collected) counts as failure.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check libs services tests bench || exit 1
.venv/bin/python -m pytest "$@"
