"""cc-backend `-init-db`: jobs per second when the job table is rebuilt from a file archive.

Generates an archive of N jobs (env BENCH_JOBS, default 100,000; `--quick` 20,000) with realistic
meta.json files (1-64 nodes, mostly small jobs, hwthreads on shared nodes, 12 metrics of statistics,
job script in metaData, tags on some jobs) for a two-subcluster cluster with footprint and energy
metrics, then runs the importer in-process (`ccbackend.importer.init_db` on a fresh SQLite
database, the code path of `cc-backend -init-db`) and, with `--cli`, through the command line.
The 1-minute load average before and after the run is printed and recorded: on a small machine any
other busy process lowers the figure noticeably.

The import runs twice on fresh databases: right after the archive was written (on a VM that pages
out cold page cache, e.g. with a DAMON `pageout` scheme, it partly reads from disk; recorded as info)
and after every meta.json was read once (the archive in the page cache, as for the guide's figure).

Figures: jobs/s in-process with the archive cached (target >= 11,000), the first import, and the
guide's reference (3,936 jobs in 1.791 s = 2,198 jobs/s, the Go binary on the demo archive).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import orjson
from common import VENV_BIN, Report, base_argparser, log, make_workdir

TARGET_JOBS_PER_S = 11_000.0
GUIDE_JOBS, GUIDE_SECONDS = 3936, 1.791
CLUSTER = "benchcl"

METRICS = [
    # name, unit base, prefix, footprint, energy
    ("cpu_load", "", "", "avg", ""),
    ("cpu_user", "", "", "", ""),
    ("mem_used", "B", "G", "max", ""),
    ("flops_any", "F/s", "G", "avg", ""),
    ("flops_dp", "F/s", "G", "", ""),
    ("mem_bw", "B/s", "G", "avg", ""),
    ("clock", "Hz", "M", "", ""),
    ("ipc", "IPC", "", "", ""),
    ("cpu_power", "W", "", "", "power"),
    ("mem_power", "W", "", "", "power"),
    ("ib_recv", "B/s", "", "", ""),
    ("nfs4_read", "B/s", "M", "", ""),
]


def cluster_json() -> dict:
    topo = {
        "node": list(range(72)),
        "socket": [list(range(36)), list(range(36, 72))],
        "memoryDomain": [list(range(18 * i, 18 * i + 18)) for i in range(4)],
        "core": [[i] for i in range(72)],
    }
    sub = {
        "processorType": "Intel Xeon Platinum 8360Y",
        "socketsPerNode": 2,
        "coresPerSocket": 36,
        "threadsPerCore": 1,
        "flopRateScalar": {"unit": {"base": "F/s", "prefix": "G"}, "value": 432},
        "flopRateSimd": {"unit": {"base": "F/s", "prefix": "G"}, "value": 9216},
        "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": 350},
        "topology": topo,
    }
    metrics = []
    for name, base, prefix, fp, energy in METRICS:
        unit = {"base": base} | ({"prefix": prefix} if prefix else {})
        m = {"name": name, "unit": unit, "scope": "node", "aggregation": "avg", "timestep": 60,
             "peak": 100, "normal": 50, "caution": 20, "alert": 10}  # fmt: skip
        if fp:
            m["footprint"] = fp
        if energy:
            m["energy"] = energy
        metrics.append(m)
    return {
        "name": CLUSTER,
        "metricConfig": metrics,
        "subClusters": [
            sub | {"name": "main", "nodes": "n[0001-2000]"},
            sub | {"name": "fat", "nodes": "f[001-100]"},
        ],
    }


SCRIPT = "#!/bin/bash -l\n#SBATCH --nodes={n}\n#SBATCH --time=24:00:00\nmodule load intel\nsrun ./app input.{j}\n"


def make_meta(i: int, rng: random.Random) -> dict:
    job_id = 1_000_000 + i
    start = 1_700_000_000 + i * 37
    r = rng.random()
    nodes = 1 if r < 0.6 else 2 if r < 0.75 else 4 if r < 0.87 else 8 if r < 0.95 else 16 if r < 0.99 else 64
    fat = rng.random() < 0.1
    shared = "none" if nodes > 1 or rng.random() < 0.6 else "single_user"
    resources = []
    for k in range(nodes):
        host = f"f{(i + k) % 100 + 1:03d}" if fat else f"n{(i * 3 + k) % 2000 + 1:04d}"
        res: dict = {"hostname": host}
        if shared != "none":
            first = rng.randrange(0, 64)
            res["hwthreads"] = list(range(first, first + 8))
        resources.append(res)
    duration = rng.randrange(60, 86400)
    stats = {}
    for name, base, prefix, _fp, _e in METRICS:
        avg = round(rng.uniform(1, 300), 3)
        unit = {"base": base} | ({"prefix": prefix} if prefix else {})
        stats[name] = {"unit": unit, "avg": avg, "min": round(avg * 0.5, 3), "max": round(avg * 1.7, 3)}
    meta = {
        "jobId": job_id, "user": f"user{i % 700}", "project": f"proj{i % 90}", "cluster": CLUSTER,
        "subCluster": "fat" if fat else "main", "partition": "multinode" if nodes > 1 else "singlenode",
        "arrayJobId": 0, "numNodes": nodes, "numHwthreads": 72 * nodes if shared == "none" else 8,
        "numAcc": 0, "shared": shared, "monitoringStatus": 1, "smt": 1,
        "jobState": rng.choice(("completed", "completed", "completed", "failed", "timeout", "cancelled")),
        "duration": duration, "walltime": 86400, "resources": resources,
        "metaData": {"jobName": f"run{i % 1000}", "jobScript": SCRIPT.format(n=nodes, j=i)},
        "startTime": start, "statistics": stats,
        "footprint": None, "energyFootprint": None, "energy": 0,
        "concurrentJobs": {"items": None, "count": 0},
    }  # fmt: skip
    if i % 10 == 0:
        meta["tags"] = [{"type": "app", "name": rng.choice(("vasp", "gromacs", "lammps")), "scope": "global"}]
    return meta


def _write_range(root: str, lo: int, hi: int) -> int:
    rng = random.Random(lo)
    for i in range(lo, hi):
        m = make_meta(i, rng)
        d = Path(root) / CLUSTER / str(m["jobId"] // 1000) / f"{m['jobId'] % 1000:03d}" / str(m["startTime"])
        d.mkdir(parents=True, exist_ok=True)
        (d / "meta.json").write_bytes(orjson.dumps(m))
        (d / "data.json").write_bytes(b"{}")
    return hi - lo


def generate_archive(root: Path, n: int) -> None:
    (root / CLUSTER).mkdir(parents=True)
    (root / "version.txt").write_text("3\n")
    (root / CLUSTER / "cluster.json").write_bytes(orjson.dumps(cluster_json(), option=orjson.OPT_INDENT_2))
    step = 5000
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(_write_range, [str(root)] * ((n + step - 1) // step), range(0, n, step),
                      [min(n, lo + step) for lo in range(0, n, step)]))  # fmt: skip


def _meta_files(root: Path) -> list[str]:
    return [os.path.join(d, "meta.json") for d, _, files in os.walk(root) if "meta.json" in files]


def warm_archive(root: Path) -> None:
    """Read every meta.json once (what `cat` or `vmtouch -t` would do)."""
    for path in _meta_files(root):
        with open(path, "rb") as f:
            f.read()


def cached_share(work: Path, sample: int = 2000) -> str:
    """Share of a sample of meta.json files whose pages are all in the page cache (mincore via fincore)."""
    files = _meta_files(work / "var" / "job-archive")
    if not files or shutil.which("fincore") is None:
        return "an unknown share"
    pick = random.Random(1).sample(files, min(sample, len(files)))
    r = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE", *pick],
                       capture_output=True, text=True)  # fmt: skip
    full = total = 0
    for line in r.stdout.splitlines():
        res, size = (int(x) for x in line.split())
        total += 1
        full += res >= size
    return f"{100 * full / max(total, 1):.0f} %"


async def run_in_process(work: Path) -> tuple[int, int, float]:
    from ccbackend.archive import ArchiveConfig, open_archive
    from ccbackend.clusters import ClusterRegistry
    from ccbackend.importer import init_db
    from ccbackend.repository import open_repository

    repo = await open_repository("sqlite3", str(work / "var" / "job.db"))
    try:
        archive = open_archive(ArchiveConfig.model_validate({"kind": "file", "path": str(work / "var/job-archive")}))
        registry = ClusterRegistry.from_archive(archive)
        return await init_db(repo, archive, registry, progress=False)
    finally:
        await repo.close()


def run_cli(work: Path) -> float:
    from ccbackend.initdir import env_text

    (work / ".env").write_text(env_text())
    (work / "config.json").write_text('{"main": {"addr": "127.0.0.1:8080"}}')
    t0 = time.perf_counter()
    r = subprocess.run([str(VENV_BIN / "cc-backend"), "-init-db", "-loglevel", "warn"], cwd=work,
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(f"cc-backend -init-db failed: {r.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> int:
    p = base_argparser(__doc__.splitlines()[0])
    p.add_argument("--cli", action="store_true", help="also time `cc-backend -init-db` as a subprocess")
    args = p.parse_args()
    n = int(os.environ.get("BENCH_JOBS", "20000" if args.quick else "100000"))
    work = make_workdir("initdb")
    report = Report("backend-initdb")
    try:
        log(f"generating an archive of {n} jobs in {work}")
        t0 = time.perf_counter()
        generate_archive(work / "var" / "job-archive", n)
        t1 = time.perf_counter()
        os.sync()  # the generator's dirty pages must not be written back while the import is timed
        log(f"archive written in {t1 - t0:.1f} s, synced in {time.perf_counter() - t1:.1f} s")
        load_before = os.getloadavg()[0]
        imported, skipped, secs = asyncio.run(run_in_process(work))
        if imported != n or skipped:
            log(f"ERROR: imported {imported}, skipped {skipped}, expected {n}")
            return 1
        cold = imported / secs
        log(f"in-process, first import: {imported} jobs in {secs:.2f} s = {cold:,.0f} jobs/s "
            f"({cached_share(work)} of the archive's files were in the page cache afterwards)")  # fmt: skip
        # A VM may page out page cache it considers cold (DAMON `pageout` schemes do), so the first import
        # partly reads from disk. The second one reads an archive that was just read, like the guide's
        # figure of the Go binary on a freshly unpacked demo archive.
        t2 = time.perf_counter()
        warm_archive(work / "var" / "job-archive")
        log(f"archive read once more in {time.perf_counter() - t2:.1f} s ({cached_share(work)} in the page cache)")
        for f in (work / "var").glob("job.db*"):
            f.unlink()
        imported, skipped, secs = asyncio.run(run_in_process(work))
        load_after = os.getloadavg()[0]
        rate = imported / secs
        log(f"in-process, archive in the page cache: {imported} jobs in {secs:.2f} s = {rate:,.0f} jobs/s "
            f"(load average {load_before:.2f} before, {load_after:.2f} after: other work on the machine skews this)")  # fmt: skip
        report.add("init-db jobs/s (in-process, archive cached)", "jobs/s", rate, target=f">= {TARGET_JOBS_PER_S:,.0f}",
                   passed=rate >= TARGET_JOBS_PER_S, note=f"{n} jobs")  # fmt: skip
        report.add("init-db jobs/s (first import, info)", "jobs/s", cold, note="archive partly paged out")
        guide = GUIDE_JOBS / GUIDE_SECONDS
        report.add("init-db vs guide (Go, demo archive)", "jobs/s", rate, peer=guide, peer_name="guide 3936 in 1.79 s")
        report.info["jobs"] = n
        report.info["load_avg_1m"] = [round(load_before, 2), round(load_after, 2)]
        if args.cli:
            cli_secs = run_cli(work)
            log(f"cc-backend -init-db: {n} jobs in {cli_secs:.2f} s (incl. start-up) = {n / cli_secs:,.0f} jobs/s")
            report.add("cc-backend -init-db (CLI, incl. start-up)", "jobs/s", n / cli_secs, note=f"{n} jobs")
        report.print()
        report.write(args.json)
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
