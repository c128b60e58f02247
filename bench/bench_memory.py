"""Memory: resident bytes per stored sample at 1,000 hosts x 519 series x 12 h at 60 s (374 M samples).

Our daemon is started idle (VmRSS measured), then fed every time step of all hosts over HTTP
(line protocol, one body per time step and group of 125 hosts, 8 connections); after the ingest
VmRSS is measured again. Figure: (RSS after - RSS idle) / samples. With `--vm` (default in
`--quick`) the same samples are imported into VictoriaMetrics and its RSS and disk use reported.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from common import (
    CLUSTER,
    FREQ,
    MEMORY_TOPO,
    Report,
    aligned_start,
    base_argparser,
    dir_bytes,
    feed_pipelined,
    have_vm,
    host_block_template,
    log,
    our_counter,
    post_all,
    start_ours,
    start_vm,
    status_bytes,
    vm_flush,
    vm_import_body,
)

TARGET_BYTES_PER_SAMPLE = 4.5


def ingest_ours(port: int, hosts: int, steps: int, t0: int, conns: int = 8) -> float:
    """Connection c sends the bodies of host group c in time order (no out-of-order series)."""
    group = -(-hosts // conns)
    groups = [range(g, min(g + group, hosts)) for g in range(0, hosts, group)]
    templates = [host_block_template(MEMORY_TOPO, g) for g in groups]
    url = f"http://127.0.0.1:{port}/api/write?cluster={CLUSTER}"
    total = steps * len(templates)
    t_start = time.perf_counter()
    last = [t_start]

    def make_body(i: int) -> bytes:
        step, g = divmod(i, len(templates))
        now = time.perf_counter()
        if g == 0 and now - last[0] > 30:
            last[0] = now
            log(
                f"  ... step {step}/{steps} ({i / total:.0%}, {i * templates[0].n / (now - t_start) / 1e6:.2f} M/s)"
            )
        return templates[g].render(step, t0 + step * FREQ)

    return asyncio.run(feed_pipelined(url, make_body, total, conns=len(templates)))


def measure_vm(rep: Report, hosts: int, steps: int, t0: int, samples: int, keep: bool) -> dict[str, float]:
    vm = start_vm(keep=keep)
    try:
        idle = vm.rss()
        url = f"http://127.0.0.1:{vm.port}/api/v1/import"
        t = time.perf_counter()
        for h0 in range(0, hosts, 4):
            bodies = [[vm_import_body(MEMORY_TOPO, h, t0, steps)] for h in range(h0, min(h0 + 4, hosts))]
            asyncio.run(post_all(url, bodies))
        vm_flush(vm)
        wall = time.perf_counter() - t
        time.sleep(5)
        rss = vm.rss()
        disk = dir_bytes(vm.workdir / "data")
        log(
            f"VictoriaMetrics: imported in {wall:.0f}s; RSS {rss / 1e6:.0f} MB (idle {idle / 1e6:.0f} MB), "
            f"data dir {disk / 1e6:.0f} MB"
        )
        rep.info.update(vm_rss=rss, vm_rss_idle=idle, vm_disk=disk, vm_import_s=wall)
        return {"rss": (rss - idle) / samples, "disk": disk / samples}
    finally:
        vm.stop(timeout=60)


def main(argv: list[str] | None = None) -> int:
    p = base_argparser(__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, help="default 1000, quick 100")
    p.add_argument("--hours", type=float, default=12.0)
    p.add_argument(
        "--vm", action="store_true", help="also import the data into VictoriaMetrics (slow at full size)"
    )
    p.add_argument(
        "--final-checkpoint",
        action="store_true",
        help="stop our daemon with SIGTERM and time the final checkpoint (default: SIGKILL)",
    )
    args = p.parse_args(argv)
    hosts = args.hosts or (100 if args.quick else 1000)
    steps = int(args.hours * 3600) // FREQ
    nser = MEMORY_TOPO.series_per_host
    samples = hosts * nser * steps
    t0 = aligned_start(steps * FREQ)
    log(f"memory: {hosts} hosts x {nser} series x {steps} steps = {samples / 1e6:.1f} M samples")
    rep = Report("memory")
    rep.info.update(hosts=hosts, series_per_host=nser, steps=steps, samples=samples)

    ours = start_ours(MEMORY_TOPO.metric_config(), journal=False, keep=args.keep)
    try:
        time.sleep(2)
        idle = ours.rss()
        log(f"ours: idle RSS {idle / 1e6:.1f} MB")
        wall = ingest_ours(ours.port, hosts, steps, t0)
        log(f"ours: ingested in {wall:.0f}s ({samples / wall / 1e6:.2f} M samples/s)")
        time.sleep(11)  # let the gauges refresh (every 10 s) and transient buffers go
        rss = ours.rss()
        hwm = status_bytes(ours.pid, "VmHWM")
        written = our_counter(ours, "ccms_lines_written_total")
        held = our_counter(ours, "ccms_samples")
        sample_bytes = our_counter(ours, "ccms_sample_bytes")
        if written is not None and written != samples:
            log(f"ours: WARNING store counted {written:.0f} written samples, sent {samples}")
        per = (rss - idle) / samples
        peak = (hwm - idle) / samples
        log(
            f"ours: RSS {rss / 1e6:.0f} MB (peak {hwm / 1e6:.0f} MB), store reports {held} samples in "
            f"{sample_bytes} bytes; {per:.2f} B/sample"
        )
        rep.info.update(
            rss_idle=idle,
            rss=rss,
            rss_peak=hwm,
            store_samples=held,
            store_sample_bytes=sample_bytes,
            ingest_s=wall,
        )
        if args.final_checkpoint:
            t = time.perf_counter()
            ours.proc.send_signal(signal.SIGTERM)
            rc = ours.proc.wait(900)
            took = time.perf_counter() - t
            size = dir_bytes(ours.workdir / "checkpoints")
            log(f"ours: SIGTERM -> exit {rc} after {took:.1f}s, final checkpoint {size / 1e6:.0f} MB")
            rep.info.update(final_checkpoint_s=took, final_checkpoint_bytes=size)
    finally:
        ours.stop(signal.SIGKILL)

    vm: dict[str, float] = {}
    if (args.vm or args.quick) and not args.no_peers:
        if have_vm():
            vm = measure_vm(rep, hosts, steps, t0, samples, args.keep)
        else:
            log("victoria-metrics not installed: peer skipped")
    rep.add(
        "resident bytes/sample",
        "B",
        per,
        peer=vm.get("rss"),
        peer_name="VM RSS",
        target=f"<= {TARGET_BYTES_PER_SAMPLE}",
        passed=per <= TARGET_BYTES_PER_SAMPLE,
    )
    rep.add("peak RSS bytes/sample (info)", "B", peak)
    if vm:
        rep.add("VM disk bytes/sample (info)", "B", vm["disk"])
    rep.print()
    rep.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
