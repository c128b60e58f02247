"""cc-backend job list: latency of a filtered, sorted page of 50 jobs on a large job table, per engine.

Generates N jobs (env BENCH_JOBS, default 10,000,000; `--quick` 200,000) with realistic values
(5 clusters, 2,000 users in 300 projects, three years of start times, mostly completed 1-node jobs,
footprints) into a fresh SQLite database and a fresh PostgreSQL schema (127.0.0.1:5432 db `test`, or
env CC_TEST_PG_DSN; skipped when unreachable).  Rows are loaded directly while the repository's
`bulk_import()` has the job indexes dropped; the indexes are then rebuilt.  Timed through the
Repository: `list_jobs` with cluster + user + state + start-time range + footprint range, sorted by
start time (and by duration), limit 50, random users and ranges; also the same without the user
(an admin's view).  Target p95 <= 100 ms.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
from common import ROOT, Report, base_argparser, log, make_workdir, percentile

sys.path.insert(0, str(ROOT / "services" / "backend" / "src"))

from ccbackend.repository import JobFilter, Order, Repository, open_repository  # noqa: E402
from ccbackend.repository._query import INSERT_COLUMNS  # noqa: E402

TARGET_P95_MS = 100.0
CLUSTERS = ("fritz", "alex", "emmy", "meggie", "woody")
USERS = 2000
PROJECTS = 300
T0 = 1_600_000_000
SPAN = 3 * 365 * 86400
STATES = ("completed",) * 90 + ("failed",) * 5 + ("cancelled",) * 3 + ("timeout",) + ("running",)
QUERIES = 200
BATCH = 50_000


def job_rows(n: int, seed: int = 1) -> Iterator[list[tuple]]:
    """Batches of rows in INSERT_COLUMNS order; start times increase with the row number like a real DB."""
    rnd = random.Random(seed)
    batch: list[tuple] = []
    for i in range(n):
        cluster = CLUSTERS[i % len(CLUSTERS)]
        user = rnd.randrange(USERS)
        nodes = 1 if rnd.random() < 0.7 else rnd.choice((2, 4, 8, 16, 32, 64))
        state = rnd.choice(STATES)
        duration = int(rnd.expovariate(1 / 7200)) + 10
        first = rnd.randrange(1000)
        resources = orjson.dumps([{"hostname": f"{cluster[0]}{(first + k) % 1000:04d}"} for k in range(nodes)])
        footprint = orjson.dumps(
            {
                "cpu_load_avg": round(rnd.uniform(0, 72), 2),
                "flops_any_avg": round(rnd.expovariate(1 / 200), 2),
                "mem_bw_avg": round(rnd.uniform(0, 350), 2),
                "mem_used_max": round(rnd.uniform(0, 250), 2),
            }
        )
        batch.append(
            (
                10_000_000 + i,  # job_id
                cluster,
                "main" if nodes < 16 else "large",
                0,  # submit_time
                T0 + i * SPAN // n,  # start_time
                f"user{user:04d}",
                f"proj{user % PROJECTS:03d}",
                "work" if nodes > 1 else "singlenode",
                0,
                duration,
                86400,
                state,
                "null",
                resources.decode(),
                nodes,
                nodes * 72,
                0,
                1,
                "none" if nodes > 1 else rnd.choice(("none", "multi_user")),
                3 if state != "running" else 1,
                round(rnd.uniform(0, 20), 2),
                None,
                footprint.decode(),
            )
        )
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def load_sqlite(path: str, n: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    sql = f"INSERT INTO job ({', '.join(INSERT_COLUMNS)}) VALUES ({', '.join('?' * len(INSERT_COLUMNS))})"
    for rows in job_rows(n):
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    conn.close()


async def load_postgres(dsn: str, n: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for rows in job_rows(n):
            await conn.copy_records_to_table("job", records=rows, columns=list(INSERT_COLUMNS))
    finally:
        await conn.close()


def random_query(rnd: random.Random, with_user: bool) -> JobFilter:
    user = rnd.randrange(USERS)
    lo = T0 + rnd.randrange(SPAN // 2)
    hi = lo + rnd.choice((7, 30, 180, 365)) * 86400
    return JobFilter(
        cluster=[rnd.choice(CLUSTERS)],
        user=[f"user{user:04d}"] if with_user else None,
        state=["completed", "failed"],
        start_time=(lo, hi),
        footprint={"flops_any_avg": (rnd.choice((0.0, 10.0, 50.0)), None)},
    )


async def time_queries(repo: Repository, with_user: bool, order: Order) -> tuple[list[float], int]:
    rnd = random.Random(7)
    for _ in range(10):  # warm up caches
        await repo.list_jobs(random_query(rnd, with_user), order, limit=50)
    lat: list[float] = []
    rows = 0
    for _ in range(QUERIES):
        flt = random_query(rnd, with_user)
        t = time.perf_counter()
        jobs = await repo.list_jobs(flt, order, limit=50)
        lat.append((time.perf_counter() - t) * 1000)
        rows += len(jobs)
    return lat, rows


async def bench_engine(report: Report, engine: str, repo: Repository, load, n: int) -> None:
    t = time.perf_counter()
    async with repo.bulk_import():  # type: ignore[attr-defined]
        await load()
        t_load = time.perf_counter() - t
        log(f"{engine}: loaded {n:,} rows in {t_load:.1f} s, rebuilding indexes")
    log(f"{engine}: indexes rebuilt, {time.perf_counter() - t:.1f} s in all")
    cases = (
        ("user's jobs by start time", True, Order("start_time", True)),
        ("user's jobs by duration", True, Order("duration", True)),
        ("all users by start time", False, Order("start_time", True)),
    )
    for label, with_user, order in cases:
        lat, rows = await time_queries(repo, with_user, order)
        p50, p95 = percentile(lat, 50), percentile(lat, 95)
        log(f"{engine} {label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms ({rows / QUERIES:.1f} jobs per page)")
        report.add(f"job list page of 50, {label} ({engine}) p50", "ms", p50, note=f"{n:,} jobs")
        report.add(
            f"job list page of 50, {label} ({engine}) p95",
            "ms",
            p95,
            target=f"<= {TARGET_P95_MS:.0f} ms",
            passed=p95 <= TARGET_P95_MS,
            note=f"{n:,} jobs",
        )


async def run(args) -> int:
    n = 200_000 if args.quick else int(os.environ.get("BENCH_JOBS", "10000000"))
    report = Report("backend-joblist")
    report.info["jobs"] = n
    work = make_workdir("joblist")
    try:
        path = str(Path(work) / "job.db")
        repo = await open_repository("sqlite3", path)
        try:
            await bench_engine(report, "sqlite", repo, lambda: asyncio.to_thread(load_sqlite, path, n), n)
        finally:
            await repo.close()

        base = os.environ.get("CC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
        schema = f"ccbench_{uuid.uuid4().hex[:10]}"
        dsn = f"{base}{'&' if '?' in base else '?'}search_path={schema}"
        try:
            repo = await open_repository("postgres", dsn)
        except Exception as e:  # noqa: BLE001 - any connection problem means: no PostgreSQL here
            log(f"postgres: skipped ({e})")
            repo = None
        if repo is not None:
            try:
                await bench_engine(report, "postgres", repo, lambda: load_postgres(dsn, n), n)
            finally:
                await repo.close()
                import asyncpg

                conn = await asyncpg.connect(base)
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                await conn.close()
        report.print()
        report.write(args.json)
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    args = base_argparser(__doc__.splitlines()[0]).parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
