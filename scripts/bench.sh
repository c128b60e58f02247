#!/usr/bin/env bash
# `make bench`: ingest, query, memory and restore benchmarks of cc-metric-store against the peers
# (VictoriaMetrics, InfluxDB 1.x), the collector against node_exporter, and the cc-backend import,
# job-list and start/stop benchmarks, then one summary table. Arguments go to every benchmark, e.g.
# `bash scripts/bench.sh --quick` or `--no-peers`. BENCH_ONLY="ingest query" runs a subset;
# BENCH_RESULTS=DIR keeps the JSON figures there (default: a temporary directory).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

have_peers() { command -v victoria-metrics >/dev/null && command -v influxd >/dev/null && command -v prometheus-node-exporter >/dev/null; }

if ! have_peers; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bench: installing the peers (apt-get install victoria-metrics influxdb prometheus-node-exporter)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q victoria-metrics influxdb prometheus-node-exporter >/tmp/ccbench-apt.log 2>&1 \
            || echo "bench: apt-get failed (see /tmp/ccbench-apt.log)"
    fi
    if ! have_peers; then
        echo "bench: victoria-metrics and/or influxd are missing; install them with"
        echo "       apt-get install victoria-metrics influxdb prometheus-node-exporter   (Debian/Ubuntu, as root)"
        echo "       benchmarks run against our store only where a peer is missing"
    fi
fi
# The Debian packages start their own services where systemd runs; those would share the CPUs.
for unit in victoria-metrics influxdb prometheus-node-exporter; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$unit" 2>/dev/null; then
        echo "bench: WARNING the $unit service is running and competes for CPU (systemctl stop $unit)"
    fi
done

RESULTS=${BENCH_RESULTS:-$(mktemp -d /tmp/ccbench-results-XXXXXX)}
mkdir -p "$RESULTS"
ONLY=${BENCH_ONLY:-ingest query memory restore collector backend_initdb backend_joblist backend_api}
failed=()
files=()
start=$(date +%s)
for b in $ONLY; do
    echo
    echo "==================== bench_$b ===================="
    rm -f "$RESULTS/$b.json"
    files+=("$RESULTS/$b.json")
    if ! "$PY" "bench/bench_$b.py" --json "$RESULTS/$b.json" "$@"; then
        failed+=("$b")
    fi
done
"$PY" bench/summary.py "${files[@]}"
echo "total time: $(( $(date +%s) - start )) s; figures in $RESULTS"
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench: FAILED to run: ${failed[*]}"
    exit 1
fi
