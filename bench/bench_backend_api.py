"""start_job + stop_job round trips per second of `cc-backend -server`, with archiving enabled.

Our metric store runs beside it with data for every host the jobs use; the backend is set up with its
own CLI (`-migrate-db`, `-add-user`, `-jwt`) in a temporary working directory and started as a
subprocess. Several client connections each run start_job → stop_job pairs; after the last stop the
benchmark waits until every job is archived (monitoringStatus 3) and reports both rates.
There is no peer: the Go cc-backend is not installable here, so the figures stand alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from common import VENV_BIN, Report, base_argparser, free_port, log, make_workdir, start_ours

CLUSTER = "benchcl"
HOSTS = [f"b{i:04d}" for i in range(1, 65)]
METRICS = ("cpu_load", "mem_used", "flops_any", "mem_bw", "cpu_power")


def cluster_json() -> dict:
    mc = []
    for m in METRICS:
        mc.append({"name": m, "unit": {"base": "W" if m == "cpu_power" else ""}, "scope": "node",
                   "aggregation": "avg", "timestep": 60, "peak": 100, "normal": 50, "caution": 10, "alert": 5,
                   **({"footprint": "avg"} if m in ("cpu_load", "flops_any") else {}),
                   **({"energy": "power"} if m == "cpu_power" else {})})  # fmt: skip
    return {
        "name": CLUSTER,
        "metricConfig": mc,
        "subClusters": [{
            "name": "main", "nodes": "b[0001-0064]", "processorType": "bench", "socketsPerNode": 1,
            "coresPerSocket": 2, "threadsPerCore": 1,
            "flopRateScalar": {"unit": {"base": "F/s", "prefix": "G"}, "value": 1},
            "flopRateSimd": {"unit": {"base": "F/s", "prefix": "G"}, "value": 1},
            "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": 1},
            "topology": {"node": [0, 1], "socket": [[0, 1]], "memoryDomain": [[0, 1]], "core": [[0], [1]]},
        }],
    }  # fmt: skip


def run(argv: list[str], cwd: Path) -> str:
    r = subprocess.run([str(VENV_BIN / "cc-backend"), *argv], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cc-backend {' '.join(argv)} failed: {r.stderr[-2000:]}")
    return r.stdout + r.stderr


def setup_backend(work: Path, store_port: int, port: int) -> str:
    from ccbackend.initdir import env_text

    arch = work / "var" / "job-archive"
    (arch / CLUSTER).mkdir(parents=True)
    (arch / "version.txt").write_text("3\n")
    (arch / CLUSTER / "cluster.json").write_text(json.dumps(cluster_json()))
    (work / ".env").write_text(env_text())
    cfg = {
        "main": {"addr": f"127.0.0.1:{port}", "api-allowed-ips": ["*"]},
        "auth": {"jwts": {"max-age": "10h"}},
        "archive": {"kind": "file", "path": "./var/job-archive"},
        "metric-store-external": [{"scope": "*", "url": f"http://127.0.0.1:{store_port}", "token": "x"}],
    }
    (work / "config.json").write_text(json.dumps(cfg))
    run(["-migrate-db"], work)
    run(["-add-user", "bench:api:benchpw"], work)
    out = run(["-jwt", "bench"], work)
    line = next(x for x in out.splitlines() if x.startswith("JWT: "))
    return line.rsplit(" ", 1)[-1]


def feed_store(port: int, start: int, end: int) -> None:
    import http.client

    lines = []
    for t in range(start - start % 60, end, 60):
        for h in HOSTS:
            for i, m in enumerate(METRICS):
                lines.append(f"{m},cluster={CLUSTER},hostname={h},type=node value={10 + i} {t}")
    body = "\n".join(lines).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/api/write", body=body)
    resp = conn.getresponse()
    resp.read()
    if resp.status not in (200, 204):
        raise RuntimeError(f"metric store write failed: {resp.status}")


async def client_loop(session, url: str, headers: dict, worker: int, n: int, t0: int, nodes: int) -> list[float]:
    lat = []
    for i in range(n):
        job_id = worker * 1_000_000 + i
        hosts = [HOSTS[(worker * 7 + i + k) % len(HOSTS)] for k in range(nodes)]
        body = {"jobId": job_id, "user": f"u{worker}", "project": "bench", "cluster": CLUSTER, "subCluster": "main",
                "startTime": t0, "numNodes": nodes, "resources": [{"hostname": h} for h in hosts],
                "numHwthreads": 2 * nodes, "walltime": 3600}  # fmt: skip
        s = time.perf_counter()
        async with session.post(f"{url}/api/jobs/start_job/", json=body, headers=headers) as r:
            if r.status != 201:
                raise RuntimeError(f"start_job: {r.status} {await r.text()}")
        stop = {"jobId": job_id, "cluster": CLUSTER, "startTime": t0, "stopTime": t0 + 1800, "jobState": "completed"}
        async with session.post(f"{url}/api/jobs/stop_job/", json=stop, headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"stop_job: {r.status} {await r.text()}")
        lat.append(time.perf_counter() - s)
    return lat


async def measure(port: int, token: str, jobs: int, conns: int, t0: int) -> tuple[float, float, list[float]]:
    import aiohttp

    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        per = jobs // conns
        s = time.perf_counter()
        lats = await asyncio.gather(*(client_loop(session, url, headers, w, per, t0, 2) for w in range(conns)))
        api_secs = time.perf_counter() - s
        total = per * conns
        while True:
            async with session.get(f"{url}/api/jobs/?items-per-page={total}", headers=headers) as r:
                jobs_out = (await r.json())["jobs"]
            pending = sum(1 for j in jobs_out if j.get("monitoringStatus", 1) == 1)
            if pending == 0:
                break
            if time.perf_counter() - s > 900:
                raise RuntimeError(f"{pending} jobs still not archived after 900 s")
            await asyncio.sleep(0.2)
        all_secs = time.perf_counter() - s
        failed = sum(1 for j in jobs_out if j.get("monitoringStatus") == 2)
        if failed:
            raise RuntimeError(f"{failed} jobs failed to archive")
    return api_secs, all_secs, [x for lst in lats for x in lst]


def main() -> int:
    p = base_argparser(__doc__.splitlines()[0])
    args = p.parse_args()
    jobs = int(os.environ.get("BENCH_JOBS", "400" if args.quick else "2000"))
    conns = 8
    report = Report("backend-api")
    store = start_ours({m: {"frequency": 60, "aggregation": None} for m in METRICS}, keep=args.keep, name="store")
    work = make_workdir("backend-api")
    proc = None
    try:
        now = int(time.time())
        t0 = now - 3600
        feed_store(store.port, t0, now)
        port = free_port()
        token = setup_backend(work, store.port, port)
        logf = open(work / "backend.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([str(VENV_BIN / "cc-backend"), "-server", "-loglevel", "warn"], cwd=work,
                                stdout=logf, stderr=subprocess.STDOUT)  # fmt: skip
        import socket

        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((work / "backend.log").read_text()[-3000:]) from None
                time.sleep(0.1)
        log(f"{jobs} start_job+stop_job pairs over {conns} connections, archiving on (2-node jobs, 30 min)")
        api_secs, all_secs, lat = asyncio.run(measure(port, token, jobs, conns, t0))
        n = len(lat)
        lat.sort()
        log(f"API: {n} round trips in {api_secs:.2f} s = {n / api_secs:.0f}/s; all archived after {all_secs:.2f} s")
        report.add("start+stop round trips/s (archiving on)", "pairs/s", n / api_secs, note=f"{n} jobs, {conns} conns")
        report.add("start+stop pair latency p50", "ms", lat[n // 2] * 1000)
        report.add("start+stop pair latency p95", "ms", lat[int(n * 0.95)] * 1000)
        report.add("jobs archived/s (end to end)", "jobs/s", n / all_secs, note="until monitoringStatus 3 for all")
        report.info["peer"] = "none: the Go cc-backend is not available on this machine"
        report.print()
        report.write(args.json)
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(90)
        store.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
