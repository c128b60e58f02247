"""cc-backend for `make demo`: working directory, demo cluster, user, and a few jobs.

`setup` prepares `<var>/backend` with `cc-backend -init` (first run only), writes the `demo` cluster
(generated hosts demo01..demo04 and this machine) into its job archive, points the backend at the
demo metric store, creates the user demo/demo (roles admin, api) and prints its JWT.
`jobs` (once the server runs) starts jobs through the REST API as a Slurm adapter would: two
running ones (live data from the metric store) and one stopped right away (archived).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
HOST = socket.gethostname().split(".")[0]

NODE = {"scope": "node", "aggregation": "avg", "timestep": 10}


def metric(name: str, base: str, prefix: str = "", **kw: object) -> dict:
    unit = {"base": base, **({"prefix": prefix} if prefix else {})}
    return {"name": name, "unit": unit, **NODE, "peak": 100, "normal": 50, "caution": 10, "alert": 5, **kw}


def topology(sockets: int, cores: int, threads: int) -> dict:
    n = sockets * cores * threads
    hw = list(range(n))
    per_socket = n // sockets
    return {
        "node": hw,
        "socket": [hw[s * per_socket:(s + 1) * per_socket] for s in range(sockets)],
        "memoryDomain": [hw[s * per_socket:(s + 1) * per_socket] for s in range(sockets)],
        "core": [hw[c * threads:(c + 1) * threads] for c in range(sockets * cores)],
    }


def subcluster(name: str, nodes: str, sockets: int, cores: int, threads: int) -> dict:
    return {
        "name": name, "nodes": nodes, "processorType": "demo", "socketsPerNode": sockets,
        "coresPerSocket": cores, "threadsPerCore": threads,
        "flopRateScalar": {"unit": {"base": "F/s", "prefix": "G"}, "value": 10},
        "flopRateSimd": {"unit": {"base": "F/s", "prefix": "G"}, "value": 80},
        "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": 50},
        "topology": topology(sockets, cores, threads),
    }


def cluster_json() -> dict:
    cpus = os.cpu_count() or 1
    return {
        "name": "demo",
        "metricConfig": [
            metric("cpu_load", "", footprint="avg"),
            metric("load_one", ""),
            metric("mem_used", "B", "G", footprint="max", aggregation="sum", lowerIsBetter=True),
            metric("cpu_user", "%", scope="hwthread"),
            metric("flops_any", "F/s", "G", scope="hwthread", aggregation="sum", footprint="avg"),
            metric("mem_bw", "B/s", "G", scope="socket", aggregation="sum", footprint="avg"),
            metric("net_bytes_in_bw", "B/s", aggregation="sum"),
        ],
        "subClusters": [
            subcluster("gen", "demo[01-04]", 2, 2, 2),
            subcluster("local", HOST, 1, cpus, 1),
        ],
    }


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "cc-backend"), *args], cwd=workdir, capture_output=True, text=True)


def setup(var: Path, port: int, store_url: str, store_token: str) -> None:
    work = var / "backend"
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "var").exists():
        r = run(work, "-init")
        if r.returncode != 0:
            sys.exit(f"cc-backend -init failed: {r.stderr}")
    arch = work / "var" / "job-archive" / "demo"
    arch.mkdir(parents=True, exist_ok=True)
    (arch / "cluster.json").write_text(json.dumps(cluster_json(), indent=1))
    cfg = json.loads((work / "config.json").read_text())
    cfg["main"]["addr"] = f"127.0.0.1:{port}"
    cfg["metric-store-external"] = [{"scope": "*", "url": store_url, "token": store_token}]
    (work / "config.json").write_text(json.dumps(cfg, indent=2))
    r = run(work, "-add-user", "demo:admin,api:demo")
    if r.returncode != 0 and "exists" not in r.stderr:
        sys.exit(f"cc-backend -add-user failed: {r.stderr}")
    r = run(work, "-jwt", "demo")
    token = next((x.rsplit(" ", 1)[-1] for x in r.stdout.splitlines() if x.startswith("JWT: ")), "")
    if not token:
        sys.exit(f"cc-backend -jwt failed: {r.stderr}")
    (work / "demo.jwt").write_text(token + "\n")


def post(url: str, token: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return {"error": e.read().decode(errors="replace")}


def jobs(var: Path, port: int) -> None:
    token = (var / "backend" / "demo.jwt").read_text().strip()
    base = f"http://127.0.0.1:{port}/api/jobs"
    now = int(time.time())
    specs = [
        (now % 100000 + 1, "alice", "demo-project", ["demo01", "demo02"], now - 60),
        (now % 100000 + 2, "bob", "demo-project", [HOST], now - 30),
        (now % 100000 + 3, "alice", "other-project", ["demo03", "demo04"], now - 120),
    ]
    for job_id, user, project, hosts, start in specs:
        body = {"jobId": job_id, "user": user, "project": project, "cluster": "demo", "startTime": start,
                "numNodes": len(hosts), "resources": [{"hostname": h} for h in hosts], "walltime": 86400,
                "metaData": {"jobName": f"demo-{job_id}", "jobScript": "#!/bin/bash\nsrun ./a.out\n"}}
        print(f"  start_job {job_id} on {','.join(hosts)}: {post(f'{base}/start_job/', token, body)}")
    job_id = specs[2][0]
    stop = {"jobId": job_id, "cluster": "demo", "stopTime": now, "jobState": "completed"}
    out = post(f"{base}/stop_job/", token, stop)
    print(f"  stop_job {job_id}: {out.get('jobState', out)} (archived from the metric store)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("command", choices=("setup", "jobs"))
    ap.add_argument("--var", type=Path, required=True)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--store-url", default="http://127.0.0.1:8082")
    ap.add_argument("--store-token", default="")
    args = ap.parse_args()
    if args.command == "setup":
        setup(args.var.resolve(), args.port, args.store_url, args.store_token)
    else:
        jobs(args.var.resolve(), args.port)


if __name__ == "__main__":
    main()
