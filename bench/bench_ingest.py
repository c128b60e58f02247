"""Ingest: the same line-protocol batches into our store, VictoriaMetrics and InfluxDB.

200 hosts x 388 series (20 node metrics, 5 metrics x 72 hwthreads, 4 metrics x 2 sockets), several
time steps 60 s apart, 8 concurrent HTTP connections (each owns 25 hosts and sends one body per
time step). Step 0 is sent first and not measured (it creates the series); the remaining steps are
timed. Figures: server CPU seconds per point (utime+stime of the server process from
/proc/PID/stat, until its background work has settled) and wall points per second.
"""

from __future__ import annotations

import asyncio
import sys
import time

from common import (
    CLUSTER,
    FREQ,
    INGEST_TOPO,
    Report,
    Server,
    aligned_start,
    base_argparser,
    have_influx,
    have_vm,
    host_block_template,
    log,
    our_counter,
    post_all,
    settle_cpu,
    start_influx,
    start_ours,
    start_vm,
)

TARGET_CPU_RATIO = 0.5
TARGET_POINTS_PER_S = 1_000_000


def build_bodies(hosts: int, conns: int, steps: int, t0: int) -> list[list[bytes]]:
    """bodies[c][k]: connection c's hosts at time step k (all bodies rendered before timing)."""
    out = []
    for c in range(conns):
        tpl = host_block_template(INGEST_TOPO, range(c, hosts, conns))
        out.append([tpl.render(k, t0 + k * FREQ) for k in range(steps + 1)])
    return out


def measure(server: Server, url: str, bodies: list[list[bytes]], points_per_step: int) -> dict[str, float]:
    warm = [[b[0]] for b in bodies]
    timed = [b[1:] for b in bodies]
    steps = len(timed[0])
    asyncio.run(post_all(url, warm))
    cpu0 = settle_cpu(server.pid, limit=10)
    wall = asyncio.run(post_all(url, timed))
    cpu_end = server.cpu()
    cpu1 = settle_cpu(server.pid)
    points = points_per_step * steps
    return {
        "points": points,
        "wall_s": wall,
        "points_per_s": points / wall,
        "cpu_s": cpu1 - cpu0,
        "cpu_s_during": cpu_end - cpu0,
        "cpu_per_point_us": (cpu1 - cpu0) / points * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    p = base_argparser(__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, default=200)
    p.add_argument("--steps", type=int, help="timed time steps (default 30, quick 6)")
    p.add_argument("--conns", type=int, default=8)
    args = p.parse_args(argv)
    steps = args.steps or (6 if args.quick else 30)
    points_per_step = args.hosts * INGEST_TOPO.series_per_host
    t0 = aligned_start((steps + 1) * FREQ)
    log(
        f"ingest: {args.hosts} hosts x {INGEST_TOPO.series_per_host} series = {points_per_step} lines/step, "
        f"1 warm-up + {steps} timed steps, {args.conns} connections"
    )
    t = time.perf_counter()
    bodies = build_bodies(args.hosts, args.conns, steps, t0)
    nbytes = sum(len(b) for c in bodies for b in c[1:])
    log(f"bodies rendered in {time.perf_counter() - t:.2f}s ({nbytes / 1e6:.0f} MB timed)")

    rep = Report("ingest")
    rep.info.update(hosts=args.hosts, steps=steps, conns=args.conns, points_per_step=points_per_step)
    results: dict[str, dict[str, float]] = {}
    metrics = INGEST_TOPO.metric_config()
    variants = [
        ("ours (journal off)", dict(journal=False, file_format="json")),
        ("ours (journal on)", dict(journal=True, file_format="json")),
        ("ours (journal on, wal = default config)", dict(journal=True, file_format="wal")),
    ]
    for label, kw in variants:
        try:
            server = start_ours(metrics, keep=args.keep, **kw)
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            log(f"{label}: cannot start: {e}")
            continue
        try:
            url = f"http://127.0.0.1:{server.port}/api/write?cluster={CLUSTER}"
            r = measure(server, url, bodies, points_per_step)
            written = our_counter(server, "ccms_lines_written_total")
            skipped = our_counter(server, "ccms_lines_skipped_total") or 0.0
            expect = points_per_step * (steps + 1)
            if written is not None and (written != expect or skipped):
                log(
                    f"{label}: WARNING store reports {written:.0f} written, {skipped:.0f} skipped; sent {expect}"
                )
            results[label] = r
        except Exception as e:  # noqa: BLE001
            log(f"{label}: failed: {e}\n{server.log_tail()}")
        finally:
            server.stop(timeout=60)

    if not args.no_peers:
        peers = []
        if have_vm():
            peers.append(("VictoriaMetrics", start_vm, lambda s: f"http://127.0.0.1:{s.port}/write"))
        else:
            log("victoria-metrics not installed: peer skipped")
        if have_influx():
            peers.append(
                (
                    "InfluxDB",
                    start_influx,
                    lambda s: f"http://127.0.0.1:{s.port}/write?db={s.extra['db']}&precision=s",
                )
            )
        else:
            log("influxd not installed: peer skipped")
        for label, starter, url_of in peers:
            try:
                server = starter(keep=args.keep)
            except Exception as e:  # noqa: BLE001
                log(f"{label}: cannot start: {e}")
                continue
            try:
                results[label] = measure(server, url_of(server), bodies, points_per_step)
            except Exception as e:  # noqa: BLE001
                log(f"{label}: failed: {e}\n{server.log_tail()}")
            finally:
                server.stop(timeout=60)

    print()
    print(f"{'store':40} {'wall s':>7} {'points/s':>11} {'CPU s':>7} {'CPU us/point':>13}")
    for label, r in results.items():
        print(
            f"{label:40} {r['wall_s']:7.2f} {r['points_per_s']:11,.0f} {r['cpu_s']:7.2f} "
            f"{r['cpu_per_point_us']:13.3f}"
        )
    print()
    rep.info["results"] = results
    vm = results.get("VictoriaMetrics")
    influx = results.get("InfluxDB")
    for label, r in results.items():
        if not label.startswith("ours"):
            continue
        tag = label[len("ours ") :].strip("()")
        ratio_ok = None if vm is None else r["cpu_per_point_us"] <= TARGET_CPU_RATIO * vm["cpu_per_point_us"]
        rep.add(
            f"CPU per point, {tag}",
            "us",
            r["cpu_per_point_us"],
            peer=vm["cpu_per_point_us"] if vm else None,
            peer_name="VM",
            target=f"<= {TARGET_CPU_RATIO}x VM",
            passed=ratio_ok,
        )
        if influx:
            rep.add(
                f"CPU per point vs InfluxDB, {tag}",
                "us",
                r["cpu_per_point_us"],
                peer=influx["cpu_per_point_us"],
                peer_name="InfluxDB",
            )
        rep.add(
            f"wall points/s, {tag}",
            "pts/s",
            r["points_per_s"],
            peer=vm["points_per_s"] if vm else None,
            peer_name="VM",
            target=">= 1 M/s",
            passed=r["points_per_s"] >= TARGET_POINTS_PER_S,
        )
    rep.print()
    rep.write(args.json)
    return 0 if any(k.startswith("ours") for k in results) else 1


if __name__ == "__main__":
    sys.exit(main())
