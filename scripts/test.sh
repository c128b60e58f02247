#!/usr/bin/env bash
# Runs the whole test suite. Exit code 5 (no tests collected) counts as failure.
set -uo pipefail
cd "$(dirname "$0")/.."
dirs=()
for d in libs services tests bench scripts; do [ -d "$d" ] && dirs+=("$d"); done
.venv/bin/ruff check "${dirs[@]}" || exit 1
# Real peers of the collector's sink/receiver tests (optional: their tests skip without them).
need=()
command -v influxd >/dev/null || need+=(influxdb)
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test: installing ${need[*]} (apt-get) for the collector's sink and receiver tests"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/tmp/cctest-apt.log 2>&1 \
            || echo "test: apt-get failed (see /tmp/cctest-apt.log); the tests that need ${need[*]} skip"
    else
        echo "test: ${need[*]} not installed (apt-get install ${need[*]}); the tests that need them skip"
    fi
fi
.venv/bin/python -m pytest "$@"
