"""Demo data source: this machine's real load, CPU and memory figures plus generated hosts.

Posts line protocol to a metric store every 10 s until stopped. Stands in for the collector
until `cc-metric-collector` joins the demo.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import time
import urllib.request


def cpu_times() -> tuple[float, float, float]:
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [float(x) for x in parts]
    total = sum(vals[:8])
    return vals[0] + vals[1], vals[2], total


def meminfo() -> dict[str, float]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, rest = line.split(":", 1)
            out[key] = float(rest.split()[0])
    return out


def lines_for(now: int, prev: tuple[float, float, float], cur: tuple[float, float, float]) -> list[str]:
    host = socket.gethostname()
    dt = max(cur[2] - prev[2], 1e-9)
    mem = meminfo()
    load = os.getloadavg()[0]
    out = [
        f"cpu_load,hostname={host},type=node value={load} {now}",
        f"cpu_user,hostname={host},type=node value={100 * (cur[0] - prev[0]) / dt:.2f} {now}",
        f"cpu_system,hostname={host},type=node value={100 * (cur[1] - prev[1]) / dt:.2f} {now}",
        f"mem_used,hostname={host},type=node value={(mem['MemTotal'] - mem['MemAvailable']) / 1e6:.3f} {now}",
        f"mem_total,hostname={host},type=node value={mem['MemTotal'] / 1e6:.3f} {now}",
    ]
    for h in range(1, 5):
        name = f"demo{h:02d}"
        phase = now / 600 + h
        out.append(f"cpu_load,hostname={name},type=node value={8 + 8 * math.sin(phase):.2f} {now}")
        out.append(f"mem_used,hostname={name},type=node value={20 + 5 * math.cos(phase):.2f} {now}")
        for t in range(8):
            flops = 2.5 + 2 * math.sin(phase + t / 4)
            out.append(f"flops_any,hostname={name},type=hwthread,type-id={t} value={flops:.3f} {now}")
            out.append(f"cpu_user,hostname={name},type=hwthread,type-id={t} value={60 + 30 * math.sin(phase + t):.1f} {now}")
        for s in range(2):
            out.append(f"mem_bw,hostname={name},type=socket,type-id={s} value={40 + 10 * math.sin(phase + s):.2f} {now}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", default="")
    ap.add_argument("--interval", type=float, default=10.0)
    args = ap.parse_args()
    prev = cpu_times()
    while True:
        time.sleep(0.5 if prev[2] == cpu_times()[2] else 0)
        cur = cpu_times()
        body = "\n".join(lines_for(int(time.time()), prev, cur)).encode()
        prev = cur
        req = urllib.request.Request(args.url, data=body, method="POST")
        if args.token:
            req.add_header("Authorization", f"Bearer {args.token}")
        try:
            urllib.request.urlopen(req, timeout=5).read()
        except OSError as exc:
            print(f"demo feed: write failed: {exc}", flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
