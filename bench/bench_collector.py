"""collector: CPU per emitted sample of cc-metric-collector vs prometheus-node-exporter.

Our collector runs the node collectors (cpustat, memstat, loadavg, netstat, diskstat, tempstat,
numastats, schedstat, cpufreq; those this machine lacks fail their init and are left out) at a
short interval with a stdout sink writing to a file; node_exporter (Debian's
prometheus-node-exporter, default collectors) is scraped the same number of times. Both are
measured with /proc/PID/stat (utime+stime) between the end of a warm-up and the end of the run;
samples are the lines written (ours) and the non-comment lines of each scrape (node_exporter).
A second run at the guide's 10 s interval gives the collector's CPU share and RSS.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import Report, base_argparser, cpu_seconds, free_port, log, make_workdir, rss_bytes

COLLECTORS = {
    "cpustat": {},
    "memstat": {},
    "loadavg": {},
    "netstat": {},
    "diskstat": {},
    "tempstat": {},
    "numastats": {},
    "schedstat": {},
    "cpufreq": {},
}


def net_devices() -> list[str]:
    out = []
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name = line.split(":", 1)[0].strip()
        if name:
            out.append(name)
    return out


def start_ours(work: Path, interval: str, out: Path) -> subprocess.Popen:
    collectors = dict(COLLECTORS)
    collectors["netstat"] = {"include_devices": net_devices(), "send_derived_values": True}
    cfg = {
        "main": {"interval": interval},
        "sinks": {"file": {"type": "stdout", "output_file": str(out)}},
        "collectors": collectors,
        "receivers": {},
        "router": {"interval_timestamp": True},
    }
    (work / "config.json").write_text(json.dumps(cfg))
    exe = Path(sys.executable).parent / "cc-metric-collector"
    log_f = open(work / "collector.log", "w")  # noqa: SIM115 - the child owns it
    p = subprocess.Popen(
        [str(exe), "-config", str(work / "config.json")], cwd=work, stderr=log_f, stdout=log_f
    )
    log_f.close()
    return p


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def measure_ours(work: Path, interval: float, ticks: int, warmup: int) -> dict[str, float]:
    out = work / "out.txt"
    p = start_ours(work, f"{int(interval * 1000)}ms", out)
    try:
        time.sleep(interval * (warmup + 0.5))
        c0, n0, t0 = cpu_seconds(p.pid), count_lines(out), time.monotonic()
        time.sleep(interval * ticks)
        c1, n1, t1 = cpu_seconds(p.pid), count_lines(out), time.monotonic()
        rss = rss_bytes(p.pid)
    finally:
        stop(p)
    samples = n1 - n0
    return {"cpu": c1 - c0, "samples": samples, "wall": t1 - t0, "rss": rss, "per_tick": samples / ticks}


def measure_node_exporter(work: Path, scrapes: int, warmup: int, pause: float) -> dict[str, float] | None:
    exe = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if exe is None:
        return None
    port = free_port()
    log_f = open(work / "node_exporter.log", "w")  # noqa: SIM115 - the child owns it
    p = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{port}"], stderr=log_f, stdout=log_f)
    log_f.close()
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.time() + 20
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

        def scrape() -> int:
            body = urllib.request.urlopen(url, timeout=10).read()
            return sum(1 for ln in body.split(b"\n") if ln and not ln.startswith(b"#"))

        for _ in range(warmup):
            scrape()
            time.sleep(pause)
        c0 = cpu_seconds(p.pid)
        samples = 0
        for _ in range(scrapes):
            samples += scrape()
            time.sleep(pause)
        c1 = cpu_seconds(p.pid)
        rss = rss_bytes(p.pid)
    finally:
        stop(p)
    return {"cpu": c1 - c0, "samples": samples, "rss": rss, "per_scrape": samples / scrapes}


def main(argv: list[str] | None = None) -> int:
    p = base_argparser(__doc__.splitlines()[0])
    p.add_argument("--ticks", type=int, help="timed collections/scrapes (default 300, quick 60)")
    p.add_argument("--interval", type=float, default=0.2, help="short interval in seconds (default 0.2)")
    p.add_argument(
        "--idle-seconds", type=float, help="length of the 10 s-interval run (default 120, quick 40)"
    )
    args = p.parse_args(argv)
    ticks = args.ticks or (60 if args.quick else 300)
    idle = args.idle_seconds or (40.0 if args.quick else 120.0)
    rep = Report("collector")
    work = make_workdir("collector")
    try:
        log(f"collector: {ticks} collections at {args.interval}s")
        ours = measure_ours(work, args.interval, ticks, warmup=3)
        our_us = ours["cpu"] / max(ours["samples"], 1) * 1e6
        log(
            f"ours: {ours['samples']:.0f} samples ({ours['per_tick']:.0f} per collection), "
            f"{ours['cpu']:.2f} s CPU -> {our_us:.2f} us/sample"
        )
        peer = None if args.no_peers else measure_node_exporter(work, ticks, 3, args.interval)
        peer_us = None
        if peer is not None:
            peer_us = peer["cpu"] / max(peer["samples"], 1) * 1e6
            log(
                f"node_exporter: {peer['samples']:.0f} samples ({peer['per_scrape']:.0f} per scrape), "
                f"{peer['cpu']:.2f} s CPU -> {peer_us:.2f} us/sample"
            )
        else:
            log("node_exporter: not installed (apt-get install prometheus-node-exporter); ours only")
        rep.add(
            "CPU per sample",
            "us",
            our_us,
            peer=peer_us,
            peer_name="node_exporter",
            target="<= 0.5x node_exporter",
            passed=None if peer_us is None else our_us <= 0.5 * peer_us,
        )
        rep.add(
            "samples per collection (info)",
            "",
            ours["per_tick"],
            peer=peer and peer["per_scrape"],
            peer_name="node_exporter",
        )

        log(f"collector: {idle:.0f} s at the guide's 10 s interval")
        (work / "idle").mkdir()
        slow = measure_ours(work / "idle", 10.0, max(1, int(idle // 10)), warmup=1)
        share = slow["cpu"] / slow["wall"] * 100
        log(
            f"ours at 10 s: {slow['cpu']:.2f} s CPU in {slow['wall']:.0f} s = {share:.3f} % of one core, RSS {slow['rss'] / 1e6:.1f} MB"
        )
        rep.add("CPU share at 10 s interval", "%", share, target="<= 0.1 %", passed=share <= 0.1)
        rep.add(
            "RSS (info)", "MB", slow["rss"] / 1e6, peer=peer and peer["rss"] / 1e6, peer_name="node_exporter"
        )
        rep.info.update(ticks=ticks, interval=args.interval, ours=ours, node_exporter=peer, idle=slow)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    rep.print()
    rep.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
