"""Restore: time from daemon start until `/api/healthcheck` answers, with checkpoint files to load.

Checkpoint files of N hosts x 519 series x 12 h at 60 s are written with the project's own
encoder (`ccmetricstore.files.write_snapshot_file`) when it is installed, otherwise with the
spec-conformant encoder below (spec metricstore §12.3 JSON, §12.4 binary). The restore time is the
start-to-healthy time minus the same for an empty checkpoint directory (best of a few runs, page
cache warm). Figures: JSON MB/s (files' bytes / restore time) and seconds for the binary
snapshot of 1,000 hosts.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from common import (
    CLUSTER,
    FREQ,
    MEMORY_TOPO,
    Report,
    aligned_start,
    base_argparser,
    dir_bytes,
    host_name,
    log,
    make_workdir,
    our_counter,
    our_health,
    series_values,
    start_ours,
    wait_until,
)

TARGET_JSON_MBPS = 300.0
TARGET_BIN_SECONDS = 10.0


# ----------------------------------------------------------------------------- snapshot content


def host_tree(host: int, steps: int, t0: int) -> dict:
    """A host's checkpoint content as nested dicts: {"metrics": {m: values}, "children": {...}}."""
    topo = MEMORY_TOPO
    vals = series_values(host, topo.series_per_host, steps)
    tree: dict = {"metrics": {}, "children": {}}
    for row, (metric, typ, tid) in enumerate(topo.series()):
        if typ == "node":
            tree["metrics"][metric] = vals[row]
        else:
            child = tree["children"].setdefault(f"{typ}{tid}", {"metrics": {}, "children": {}})
            child["metrics"][metric] = vals[row]
    return tree


def to_snapshot(tree: dict, t0: int, t1: int):
    from ccmetricstore.snapshot import SeriesSnapshot, Snapshot

    return Snapshot(
        metrics={m: SeriesSnapshot(FREQ, t0, v) for m, v in tree["metrics"].items()},
        children={name: to_snapshot(c, t0, t1) for name, c in tree["children"].items()},
        from_=t0,
        to=t1,
    )


# ----------------------------------------------------------------------------- fallback encoders

_DIG = np.array([10, 1], dtype=np.int64)


def _json_values(v: np.ndarray) -> bytes:
    """Values as upstream writes them (one decimal); ours are 10.0..99.9 so every value is 4 chars."""
    tenths = np.minimum(np.rint(v * 10).astype(np.int64), 999)
    out = np.empty((len(v), 5), dtype=np.uint8)
    out[:, 0] = (tenths // 100) % 10 + 48
    out[:, 1] = (tenths // 10) % 10 + 48
    out[:, 2] = ord(".")
    out[:, 3] = tenths % 10 + 48
    out[:, 4] = ord(",")
    return out.tobytes()[:-1]


def encode_json(tree: dict, t0: int, t1: int) -> bytes:
    parts = [b'{"metrics":{']
    for i, (m, v) in enumerate(tree["metrics"].items()):
        sep = b"," if i else b""
        parts.append(sep + b'"%s":{"frequency":%d,"start":%d,"data":[' % (m.encode(), FREQ, t0))
        parts.append(_json_values(v) + b"]}")
    parts.append(b'},"children":{')
    for i, (name, child) in enumerate(tree["children"].items()):
        parts.append((b"," if i else b"") + b'"%s":' % name.encode() + encode_json(child, t0, t1))
    parts.append(b'},"from":%d,"to":%d}' % (t0, t1))
    return b"".join(parts)


def _bin_level(tree: dict, t0: int, out: list[bytes]) -> None:
    out.append(struct.pack("<I", len(tree["metrics"])))
    for m, v in tree["metrics"].items():
        name = m.encode()
        out.append(struct.pack("<H", len(name)) + name + struct.pack("<qqI", FREQ, t0, len(v)))
        out.append(np.asarray(v, dtype="<f4").tobytes())
    out.append(struct.pack("<I", len(tree["children"])))
    for cname, child in tree["children"].items():
        name = cname.encode()
        out.append(struct.pack("<H", len(name)) + name)
        _bin_level(child, t0, out)


def encode_bin(tree: dict, t0: int, t1: int) -> bytes:
    out = [struct.pack("<Iqq", 0xCC5B0001, t0, t1)]
    _bin_level(tree, t0, out)
    return b"".join(out)


def project_writer():
    """`ccmetricstore.files.write_snapshot_file` if the project has it, else None."""
    try:
        from ccmetricstore import files

        return files.write_snapshot_file
    except (ImportError, AttributeError):
        return None


def write_hosts(args: tuple[Path, list[int], int, int, str]) -> int:
    ckdir, hosts, steps, t0, fmt = args
    t1 = t0 + steps * FREQ
    writer = project_writer()
    for h in hosts:
        tree = host_tree(h, steps, t0)
        if writer is not None:
            writer(ckdir, CLUSTER, host_name(h), t0, to_snapshot(tree, t0, t1), fmt)
            continue
        d = ckdir / CLUSTER / host_name(h)
        d.mkdir(parents=True, exist_ok=True)
        data = encode_json(tree, t0, t1) if fmt == "json" else encode_bin(tree, t0, t1)
        (d / f"{t0}.{fmt}").write_bytes(data)
    return len(hosts)


def write_checkpoints(ckdir: Path, hosts: int, steps: int, t0: int, fmt: str) -> float:
    t = time.perf_counter()
    workers = max(1, min(4, os.cpu_count() or 1))
    chunks = [(ckdir, list(range(i, hosts, workers * 4)), steps, t0, fmt) for i in range(workers * 4)]
    with ProcessPoolExecutor(workers) as pool:
        sum(pool.map(write_hosts, [c for c in chunks if c[1]]))
    return time.perf_counter() - t


# ----------------------------------------------------------------------------- timing


def time_restore(ckdir: Path, file_format: str, keep: bool) -> tuple[float, float | None, int]:
    """Seconds from exec to a healthy answer, samples the store reports, and its RSS."""
    server = start_ours(
        MEMORY_TOPO.metric_config(), file_format=file_format, ckdir=ckdir, keep=keep, wait=False
    )
    try:
        took = wait_until(server, our_health, timeout=900, interval=0.005)
        samples = our_counter(server, "ccms_samples")
        rss = server.rss()
    finally:
        server.stop(signal.SIGKILL)  # no final checkpoint: the directory stays as generated
    return took, samples, rss


def best_of(n: int, ckdir: Path, file_format: str, keep: bool) -> tuple[float, float | None, int]:
    runs = [time_restore(ckdir, file_format, keep) for _ in range(n)]
    return min(runs, key=lambda r: r[0])


def main(argv: list[str] | None = None) -> int:
    p = base_argparser(__doc__.splitlines()[0])
    p.add_argument("--json-hosts", type=int, help="hosts in the JSON set (default 250, quick 50)")
    p.add_argument("--bin-hosts", type=int, help="hosts in the binary set (default 1000, quick 100)")
    p.add_argument("--hours", type=float, default=12.0)
    p.add_argument("--runs", type=int, help="starts per case, best counts (default 2, quick 1)")
    args = p.parse_args(argv)
    json_hosts = args.json_hosts or (50 if args.quick else 250)
    bin_hosts = args.bin_hosts or (100 if args.quick else 1000)
    runs = args.runs or (1 if args.quick else 2)
    steps = int(args.hours * 3600) // FREQ
    nser = MEMORY_TOPO.series_per_host
    t0 = aligned_start(steps * FREQ)
    encoder = "project (ccmetricstore.files)" if project_writer() else "bench fallback (spec §12.3/§12.4)"
    log(f"restore: {nser} series x {steps} steps per host; JSON {json_hosts} hosts, binary {bin_hosts} hosts")
    log(f"restore: checkpoint encoder: {encoder}")
    rep = Report("restore")
    rep.info.update(encoder=encoder, json_hosts=json_hosts, bin_hosts=bin_hosts, steps=steps, runs=runs)

    work = make_workdir("restore")
    try:
        empty = work / "empty"
        empty.mkdir()
        base, _, base_rss = best_of(max(runs, 2), empty, "json", args.keep)
        log(f"empty checkpoint dir: healthy after {base:.3f}s")
        rep.info["empty_start_s"] = base

        for fmt, hosts in (("json", json_hosts), ("bin", bin_hosts)):
            ckdir = work / fmt
            gen = write_checkpoints(ckdir, hosts, steps, t0, fmt)
            size = dir_bytes(ckdir)
            samples = hosts * nser * steps
            log(f"{fmt}: {hosts} hosts, {size / 1e6:.0f} MB written in {gen:.1f}s")
            try:
                took, held, rss = best_of(runs, ckdir, "json" if fmt == "json" else "wal", args.keep)
            except Exception as e:  # noqa: BLE001 - report, then go on with the other format
                log(f"{fmt}: daemon did not become healthy: {e}")
                rep.info[f"{fmt}_error"] = str(e)[:2000]
                rep.add(f"{fmt} restore", "", None, passed=False, note="daemon failed")
                continue
            restore = max(took - base, 1e-6)
            ok = held is None or int(held) == samples
            log(
                f"{fmt}: healthy after {took:.2f}s -> restore {restore:.2f}s, {size / restore / 1e6:.0f} MB/s, "
                f"{samples / restore / 1e6:.1f} M samples/s; store holds {held} samples"
                + ("" if ok else f" (EXPECTED {samples})")
            )
            rep.info[fmt] = dict(
                bytes=size, samples=samples, start_s=took, restore_s=restore, store_samples=held, rss=rss
            )
            if not ok:
                rep.info[f"{fmt}_check"] = f"store holds {held} samples, files have {samples}"
            if fmt == "json":
                mbps = size / restore / 1e6
                rep.add(
                    f"JSON restore rate ({hosts} hosts, {size / 1e6:.0f} MB)",
                    "MB/s",
                    mbps,
                    target=f">= {TARGET_JSON_MBPS:.0f}",
                    passed=mbps >= TARGET_JSON_MBPS and ok,
                )
                rep.add("JSON restore samples/s (info)", "/s", samples / restore)
            else:
                rep.add(
                    f"binary restore ({hosts} hosts, {size / 1e6:.0f} MB)",
                    "s",
                    restore,
                    target=f"<= {TARGET_BIN_SECONDS:.0f} s" if hosts >= 1000 else "(1000 hosts: <= 10 s)",
                    passed=(restore <= TARGET_BIN_SECONDS and ok) if hosts >= 1000 else None,
                )
                rep.add("binary restore rate (info)", "MB/s", size / restore / 1e6)
                rep.add("RSS after binary restore (info)", "B/sample", (rss - base_rss) / samples)
            if not args.keep:
                shutil.rmtree(ckdir, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    rep.print()
    rep.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
