"""Query: a 64-node job, 10 metrics per hwthread (72 per node) summed to the node, 24 h at 60 s.

Ours: one `GET /api/query` with a query per (host, metric), `type: hwthread`, all 72 `type-ids`,
`aggreg: true`, `resolution: 60`, `with-stats` and `with-data`. VictoriaMetrics: one `query_range`
per metric, `sum by (hostname) (metric{type="hwthread",hostname=~"h0000|..."})` with step 60, the
ten requests sent in parallel; the job latency is until the last answer arrived. Both stores hold
the same samples and their answers are checked against sums computed here before timing.
"""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.parse

import numpy as np
import orjson
from common import (
    CLUSTER,
    FREQ,
    QUERY_TOPO,
    Report,
    Server,
    aligned_start,
    base_argparser,
    feed_pipelined,
    have_vm,
    host_block_template,
    host_name,
    log,
    our_counter,
    percentile,
    post_all,
    series_values,
    start_ours,
    start_vm,
    vm_flush,
    vm_import_body,
)

TARGET_RATIO = 0.5


def expected_sums(hosts: int, steps: int) -> np.ndarray:
    """[host, metric, step] node sums of the hwthread samples, as sent."""
    nm, nt = len(QUERY_TOPO.hwthread), QUERY_TOPO.hwthreads
    out = np.empty((hosts, nm, steps))
    for h in range(hosts):
        out[h] = series_values(h, nm * nt, steps).reshape(nm, nt, steps).sum(axis=1)
    return out


def fill_ours(server: Server, hosts: int, steps: int, t0: int) -> float:
    """Time-major bodies (one time step of a group of hosts), as collectors would send them."""
    group = 16 if hosts >= 16 else hosts
    groups = [list(range(g, min(g + group, hosts))) for g in range(0, hosts, group)]
    templates = [host_block_template(QUERY_TOPO, g) for g in groups]
    url = f"http://127.0.0.1:{server.port}/api/write?cluster={CLUSTER}"

    def make_body(i: int) -> bytes:
        step, g = divmod(i, len(templates))
        return templates[g].render(step, t0 + step * FREQ)

    return asyncio.run(feed_pipelined(url, make_body, steps * len(templates), conns=len(templates)))


def fill_vm(server: Server, hosts: int, steps: int, t0: int) -> float:
    url = f"http://127.0.0.1:{server.port}/api/v1/import"
    t = time.perf_counter()
    for h0 in range(0, hosts, 2):
        bodies = [[vm_import_body(QUERY_TOPO, h, t0, steps)] for h in range(h0, min(h0 + 2, hosts))]
        asyncio.run(post_all(url, bodies))
    vm_flush(server)
    return time.perf_counter() - t


def our_request(hosts: int, steps: int, t0: int) -> bytes:
    ids = [str(i) for i in range(QUERY_TOPO.hwthreads)]
    queries = [
        {
            "metric": m,
            "host": host_name(h),
            "type": "hwthread",
            "type-ids": ids,
            "aggreg": True,
            "resolution": FREQ,
        }
        for h in range(hosts)
        for m in QUERY_TOPO.hwthread
    ]
    body = {
        "cluster": CLUSTER,
        "from": t0,
        "to": t0 + steps * FREQ,
        "with-stats": True,
        "with-data": True,
        "queries": queries,
    }
    return orjson.dumps(body)


def vm_urls(server: Server, hosts: int, steps: int, t0: int) -> list[str]:
    regex = "|".join(host_name(h) for h in range(hosts))
    urls = []
    for m in QUERY_TOPO.hwthread:
        q = f'sum by (hostname) ({m}{{type="hwthread",hostname=~"{regex}"}})'
        args = {"query": q, "start": t0, "end": t0 + (steps - 1) * FREQ, "step": FREQ}
        urls.append(f"http://127.0.0.1:{server.port}/api/v1/query_range?" + urllib.parse.urlencode(args))
    return urls


def check_ours(raw: bytes, exp: np.ndarray) -> str | None:
    res = orjson.loads(raw)["results"]
    hosts, nm, steps = exp.shape
    if len(res) != hosts * nm:
        return f"{len(res)} result rows, expected {hosts * nm}"
    for i, row in enumerate(res):
        h, m = divmod(i, nm)
        if len(row) != 1 or "error" in row[0]:
            return f"row {i} ({host_name(h)}, {QUERY_TOPO.hwthread[m]}): {str(row)[:200]}"
        data = np.array([np.nan if v is None else v for v in row[0].get("data", [])], dtype=np.float64)
        if len(data) < steps or not np.allclose(data[:steps], exp[h, m], rtol=1e-4, atol=1e-3):
            return f"row {i}: data differs from the sums sent (len {len(data)}, expected {steps})"
    return None


def check_vm(raws: list[bytes], exp: np.ndarray) -> str | None:
    hosts, nm, steps = exp.shape
    for m, raw in enumerate(raws):
        body = orjson.loads(raw)
        if body.get("status") != "success":
            return str(body)[:300]
        got = {r["metric"].get("hostname"): r["values"] for r in body["data"]["result"]}
        if len(got) != hosts:
            return f"{QUERY_TOPO.hwthread[m]}: {len(got)} hosts in answer, expected {hosts}"
        for h in range(hosts):
            vals = np.array([float(v) for _, v in got[host_name(h)]])
            if len(vals) != steps or not np.allclose(vals, exp[h, m], rtol=1e-6, atol=1e-6):
                return (
                    f"{QUERY_TOPO.hwthread[m]} {host_name(h)}: {len(vals)} values differ from the sums sent"
                )
    return None


async def timed_runs(
    ours: Server, our_body: bytes, vm_urls_: list[str] | None, rounds: int, warmup: int
) -> tuple[list[float], list[float], int, int]:
    import aiohttp

    url = f"http://127.0.0.1:{ours.port}/api/query"
    ours_t: list[float] = []
    vm_t: list[float] = []
    our_size = vm_size = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16), timeout=timeout) as sess:

        async def one_ours() -> float:
            nonlocal our_size
            t = time.perf_counter()
            async with sess.get(url, data=our_body) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"/api/query: {resp.status} {raw[:300]!r}")
            el = time.perf_counter() - t
            our_size = len(raw)
            return el

        async def get(u: str) -> int:
            async with sess.get(u) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"query_range: {resp.status} {raw[:300]!r}")
                return len(raw)

        async def one_vm() -> float:
            nonlocal vm_size
            assert vm_urls_ is not None
            t = time.perf_counter()
            sizes = await asyncio.gather(*(get(u) for u in vm_urls_))
            el = time.perf_counter() - t
            vm_size = sum(sizes)
            return el

        for i in range(warmup + rounds):
            a = await one_ours()
            b = await one_vm() if vm_urls_ else None
            if i >= warmup:
                ours_t.append(a)
                if b is not None:
                    vm_t.append(b)
    return ours_t, vm_t, our_size, vm_size


def main(argv: list[str] | None = None) -> int:
    p = base_argparser(__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, help="nodes of the job (default 64, quick 16)")
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--rounds", type=int, help="timed queries per store (default 20, quick 8)")
    args = p.parse_args(argv)
    hosts = args.hosts or (16 if args.quick else 64)
    rounds = args.rounds or (8 if args.quick else 20)
    steps = int(args.hours * 3600) // FREQ
    t0 = aligned_start(steps * FREQ)
    npoints = hosts * QUERY_TOPO.series_per_host * steps
    log(
        f"query: {hosts} nodes x {len(QUERY_TOPO.hwthread)} metrics x {QUERY_TOPO.hwthreads} hwthreads "
        f"x {steps} steps = {npoints / 1e6:.1f} M samples per store"
    )
    exp = expected_sums(hosts, steps)
    rep = Report("query")
    rep.info.update(hosts=hosts, steps=steps, samples=npoints, rounds=rounds)

    vm: Server | None = None
    ours = start_ours(QUERY_TOPO.metric_config(), keep=args.keep)
    try:
        wall = fill_ours(ours, hosts, steps, t0)
        written = our_counter(ours, "ccms_lines_written_total")
        log(f"ours: {npoints / 1e6:.1f} M samples written in {wall:.1f}s ({npoints / wall / 1e6:.2f} M/s)")
        if written is not None and written != npoints:
            log(f"ours: WARNING store counted {written:.0f} written samples, sent {npoints}")
        body = our_request(hosts, steps, t0)
        status_raw = asyncio.run(_fetch_ours(ours, body))
        problem = check_ours(status_raw, exp)
        if problem:
            log(f"ours: ANSWER WRONG: {problem}")
            rep.info["ours_check"] = problem
        else:
            log("ours: answer checked against the sums sent: OK")

        urls = None
        if not args.no_peers and have_vm():
            vm = start_vm(keep=args.keep)
            wall = fill_vm(vm, hosts, steps, t0)
            log(f"VictoriaMetrics: {npoints / 1e6:.1f} M samples imported in {wall:.1f}s")
            urls = vm_urls(vm, hosts, steps, t0)
            raws = asyncio.run(_fetch_vm(urls))
            problem = check_vm(raws, exp)
            if problem:
                log(f"VictoriaMetrics: ANSWER WRONG: {problem}")
                rep.info["vm_check"] = problem
            else:
                log("VictoriaMetrics: answers checked against the sums sent: OK")
        elif not args.no_peers:
            log("victoria-metrics not installed: peer skipped")

        ours_t, vm_t, our_size, vm_size = asyncio.run(timed_runs(ours, body, urls, rounds, warmup=2))
    finally:
        ours.stop(timeout=60)
        if vm is not None:
            vm.stop(timeout=60)

    rep.info.update(ours_latencies=ours_t, vm_latencies=vm_t, our_bytes=our_size, vm_bytes=vm_size)
    print()
    print(f"ours: response {our_size / 1e6:.1f} MB;  VM: {vm_size / 1e6:.1f} MB in 10 responses")
    for q in (50, 95):
        o = percentile(ours_t, q)
        v = percentile(vm_t, q) if vm_t else None
        rep.add(
            f"job latency p{q}",
            "s",
            o,
            peer=v,
            peer_name="VM",
            target=f"<= {TARGET_RATIO}x VM",
            passed=None if v is None else o <= TARGET_RATIO * v,
        )
    rep.print()
    rep.write(args.json)
    return 0


async def _fetch_ours(server: Server, body: bytes) -> bytes:
    import aiohttp

    async with aiohttp.ClientSession() as sess:
        async with sess.get(f"http://127.0.0.1:{server.port}/api/query", data=body) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"/api/query: {resp.status} {raw[:300]!r}")
            return raw


async def _fetch_vm(urls: list[str]) -> list[bytes]:
    import aiohttp

    async with aiohttp.ClientSession() as sess:

        async def get(u: str) -> bytes:
            async with sess.get(u) as resp:
                return await resp.read()

        return list(await asyncio.gather(*(get(u) for u in urls)))


if __name__ == "__main__":
    sys.exit(main())
