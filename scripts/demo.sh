#!/usr/bin/env bash
# `make demo`: runs the stack locally on embedded defaults and prints how to use it.
# The stack: cc-metric-store, fed by cc-metric-collector with this machine's real metrics (HTTP
# sink) and by a generator with demo hosts; cc-backend (SQLite, file archive) reading the store, with
# a demo user and a few jobs started through its REST API.
set -euo pipefail
cd "$(dirname "$0")/.."
VAR=${CC_DEMO_VAR:-demo-var}
PORT=${CC_DEMO_STORE_PORT:-8082}
BPORT=${CC_DEMO_BACKEND_PORT:-8080}
mkdir -p "$VAR/checkpoints" "$VAR/archive"

# The guide's metric-store config (legacy format) with local paths; its public key matches the
# token published in the cc-metric-store README, which the printed curl command uses.
cat > "$VAR/metricstore.json" <<JSON
{
  "metrics": {
    "cpu_user":  {"frequency": 10, "aggregation": "avg"},
    "cpu_system": {"frequency": 10, "aggregation": "avg"},
    "cpu_idle":  {"frequency": 10, "aggregation": "avg"},
    "cpu_iowait": {"frequency": 10, "aggregation": "avg"},
    "cpu_load":  {"frequency": 10, "aggregation": null},
    "load_one":  {"frequency": 10, "aggregation": null},
    "mem_used":  {"frequency": 10, "aggregation": null},
    "mem_total": {"frequency": 10, "aggregation": null},
    "mem_free":  {"frequency": 10, "aggregation": null},
    "disk_free": {"frequency": 10, "aggregation": null},
    "net_bytes_in_bw":  {"frequency": 10, "aggregation": "sum"},
    "net_bytes_out_bw": {"frequency": 10, "aggregation": "sum"},
    "net_bw":    {"frequency": 10, "aggregation": "sum"},
    "flops_any": {"frequency": 10, "aggregation": "sum"},
    "mem_bw":    {"frequency": 10, "aggregation": "sum"}
  },
  "http-api": {"address": "127.0.0.1:${PORT}"},
  "jwt-public-key": "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0=",
  "retention-in-memory": "48h",
  "checkpoints": {"interval": "1h", "directory": "${VAR}/checkpoints", "restore": "48h"},
  "archive": {"interval": "24h", "directory": "${VAR}/archive"}
}
JSON

TOKEN="eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJ1c2VyIjoiYWRtaW4iLCJyb2xlcyI6WyJST0xFX0FETUlOIiwiUk9MRV9BTkFMWVNUIiwiUk9MRV9VU0VSIl19.d-3_3FZTsadPjDEdsWrrQ7nS0edMAR4zjl-eK7rJU3HziNBfI9PDHDIpJVHTNN5E5SlLGLFXctWyKAkwhXL-Dw"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

.venv/bin/cc-metric-store -config "$VAR/metricstore.json" -loglevel info &
pids+=($!)
for _ in $(seq 1 100); do
  if .venv/bin/python -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then break; fi
  sleep 0.1
done

.venv/bin/python scripts/demo_feed.py --url "http://127.0.0.1:${PORT}/api/write?cluster=demo" --token "$TOKEN" &
pids+=($!)

# cc-metric-collector with this machine's metrics, the guide's compute-node router (cluster tag)
# and an HTTP sink into the store.
mkdir -p "$VAR/collector"
DEVICES=$(.venv/bin/python -c "import json; print(json.dumps([l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:] if l.split(':')[0].strip() != 'lo']))")
cat > "$VAR/collector/config.json" <<JSON
{
  "main": {"interval": "10s", "duration": "1s"},
  "collectors": {"cpustat": {}, "memstat": {}, "loadavg": {}, "diskstat": {},
                 "netstat": {"include_devices": ${DEVICES}, "send_derived_values": true}},
  "receivers": {},
  "router": {"interval_timestamp": true,
             "process_messages": {"manipulate_messages": [{"add_base_tags": {"cluster": "demo"}}]}},
  "sinks": {"metricstore": {"type": "http", "host": "127.0.0.1", "port": "${PORT}", "path": "/api/write",
                            "jwt": "${TOKEN}", "flush_delay": "1s", "timeout": "5s"}}
}
JSON
.venv/bin/cc-metric-collector -config "$VAR/collector/config.json" -loglevel warn &
pids+=($!)

# cc-backend in $VAR/backend (first run: cc-backend -init), reading the store above.
.venv/bin/python scripts/demo_backend.py setup --var "$VAR" --port "$BPORT" \
  --store-url "http://127.0.0.1:${PORT}" --store-token "$TOKEN"
(cd "$VAR/backend" && exec "$OLDPWD/.venv/bin/cc-backend" -server -dev -loglevel info) &
pids+=($!)
for _ in $(seq 1 100); do
  if .venv/bin/python -c "import socket,sys; socket.create_connection(('127.0.0.1', $BPORT), 0.2)" 2>/dev/null; then break; fi
  sleep 0.1
done
sleep 1
.venv/bin/python scripts/demo_backend.py jobs --var "$VAR" --port "$BPORT"
JWT=$(cat "$VAR/backend/demo.jwt")

cat <<MSG

  ClusterCockpit demo is running.
  Metric store:  http://127.0.0.1:${PORT}   (cluster "demo": hosts demo01..demo04, generated, and
                 $(hostname -s), measured by cc-metric-collector every 10 s)
  Token:         the cc-metric-store README token (user admin), in \$TOKEN below

  Try:
    TOKEN=$TOKEN
    curl -s -H "Authorization: Bearer \$TOKEN" "http://127.0.0.1:${PORT}/api/query" \\
      -d "{\"cluster\": \"demo\", \"from\": \$(( \$(date +%s) - 120 )), \"to\": \$(date +%s),
           \"queries\": [{\"metric\": \"load_one\", \"host\": \"$(hostname -s)\"}]}"
    curl -s -H "Authorization: Bearer \$TOKEN" "http://127.0.0.1:${PORT}/api/query?cluster=demo&from=\$(( \$(date +%s) - 60 ))&to=\$(date +%s)"

  cc-backend:    http://127.0.0.1:${BPORT}/login   user demo, password demo (roles admin, api);
                 the REST API is complete, the job pages come with the web UI
                 Swagger UI (REST API, "Authorize" with the JWT below): http://127.0.0.1:${BPORT}/swagger/
    JWT=$JWT
    curl -s -H "Authorization: Bearer \$JWT" "http://127.0.0.1:${BPORT}/api/jobs/?cluster=demo"
    curl -s -H "Authorization: Bearer \$JWT" "http://127.0.0.1:${BPORT}/api/jobs/metrics/1?metric=cpu_load"

  Press Ctrl-C to stop (the store writes a final checkpoint to ${VAR}/checkpoints).
MSG
wait "${pids[0]}"
