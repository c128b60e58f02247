"""Demo data source: generated hosts demo01..demo04 (node, hwthread and socket metrics).

Posts line protocol to a metric store every 10 s until stopped. This machine's real metrics come
from `cc-metric-collector`, which `make demo` runs next to it.
"""

from __future__ import annotations

import argparse
import math
import time
import urllib.request


def lines_for(now: int) -> list[str]:
    out: list[str] = []
    for h in range(1, 5):
        name = f"demo{h:02d}"
        phase = now / 600 + h
        out.append(f"cpu_load,hostname={name},type=node value={8 + 8 * math.sin(phase):.2f} {now}")
        out.append(f"mem_used,hostname={name},type=node value={20 + 5 * math.cos(phase):.2f} {now}")
        for t in range(8):
            flops = 2.5 + 2 * math.sin(phase + t / 4)
            out.append(f"flops_any,hostname={name},type=hwthread,type-id={t} value={flops:.3f} {now}")
            out.append(
                f"cpu_user,hostname={name},type=hwthread,type-id={t} value={60 + 30 * math.sin(phase + t):.1f} {now}"
            )
        for s in range(2):
            out.append(
                f"mem_bw,hostname={name},type=socket,type-id={s} value={40 + 10 * math.sin(phase + s):.2f} {now}"
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", default="")
    ap.add_argument("--interval", type=float, default=10.0)
    args = ap.parse_args()
    while True:
        body = "\n".join(lines_for(int(time.time()))).encode()
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
