"""Shared pieces of the benchmark suite: data, servers (ours and the peers), CPU/RSS probes, reporting.

Every benchmark sends the *same* samples to our cc-metric-store and to the peers. Sample values are
a pure function of (host, series, step) (`sample_ints`), so any store can be fed in its own wire
format and every answer can be checked against numbers computed here.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
OUR_DAEMON = VENV_BIN / "cc-metric-store"
CLUSTER = "bench"
FREQ = 60
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------------------- topology and data

NODE_NAMES = (
    "cpu_load", "mem_used", "mem_cached", "swap_used", "net_bytes_in", "net_bytes_out", "net_pkts_in",
    "net_pkts_out", "ib_recv", "ib_xmit", "ib_recv_pkts", "ib_xmit_pkts", "lustre_read_bw",
    "lustre_write_bw", "lustre_open", "lustre_close", "nfs4_read", "nfs4_write", "disk_free",
    "cpu_temp",
)  # fmt: skip
HWTHREAD_NAMES = (
    "cpu_user", "cpu_system", "flops_any", "flops_dp", "flops_sp", "ipc", "clock", "cpu_idle",
    "cpu_iowait", "vectorization_ratio",
)  # fmt: skip
SOCKET_NAMES = ("mem_bw", "cpu_power", "mem_power", "core_power")


@dataclass(frozen=True)
class Topology:
    """The series of one host: node metrics, metrics per hwthread, metrics per socket."""

    node: tuple[str, ...]
    hwthread: tuple[str, ...]
    socket: tuple[str, ...]
    hwthreads: int = 72
    sockets: int = 2

    @property
    def series_per_host(self) -> int:
        return len(self.node) + len(self.hwthread) * self.hwthreads + len(self.socket) * self.sockets

    def metric_config(self) -> dict[str, dict[str, object]]:
        """The `metrics` section of our config: hwthread/socket metrics sum up to the node."""
        cfg: dict[str, dict[str, object]] = {m: {"frequency": FREQ, "aggregation": None} for m in self.node}
        for m in self.hwthread + self.socket:
            cfg[m] = {"frequency": FREQ, "aggregation": "sum"}
        return cfg

    def series(self) -> list[tuple[str, str, str]]:
        """(metric, type, type-id) of every series of a host, in the order of `sample_ints`."""
        out = [(m, "node", "") for m in self.node]
        out += [(m, "hwthread", str(i)) for m in self.hwthread for i in range(self.hwthreads)]
        out += [(m, "socket", str(i)) for m in self.socket for i in range(self.sockets)]
        return out

    def line_prefixes(self, host: str) -> list[bytes]:
        """`metric,tags value=` of every series of `host` (line protocol of the CC dialect)."""
        out = []
        for metric, typ, tid in self.series():
            tags = f"{metric},hostname={host},type={typ}"
            if tid:
                tags += f",type-id={tid}"
            out.append((tags + " value=").encode())
        return out


# The ingest benchmark of the issue: 20 node metrics + 5 x 72 hwthread + 4 x 2 socket = 388 lines/host.
INGEST_TOPO = Topology(NODE_NAMES[:20], HWTHREAD_NAMES[:5], SOCKET_NAMES[:4])
# Memory and restore: 7 node metrics + 7 x 72 hwthread + 4 x 2 socket = 519 series per host.
MEMORY_TOPO = Topology(NODE_NAMES[:7], HWTHREAD_NAMES[:7], SOCKET_NAMES[:4])
# Query: a job's 10 metrics per hwthread, aggregated to the node.
QUERY_TOPO = Topology((), HWTHREAD_NAMES[:10], ())

assert INGEST_TOPO.series_per_host == 388 and MEMORY_TOPO.series_per_host == 519


def host_name(i: int) -> str:
    return f"h{i:04d}"


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def series_keys(host: int, nseries: int) -> np.ndarray:
    """Base keys of a host's series; add the step number to get the key of one sample."""
    return (np.uint64(host) << np.uint64(44)) | (np.arange(nseries, dtype=np.uint64) << np.uint64(22))


def sample_ints(keys: np.ndarray) -> np.ndarray:
    """Sample value x 1000 for each key (splitmix64 hash): 10000..99999, i.e. 10.000..99.999."""
    z = keys.astype(np.uint64) + _GOLD
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z ^= z >> np.uint64(31)
    return (z % np.uint64(90000)).astype(np.int64) + 10000


_POW5 = np.array([10000, 1000, 100, 10, 1], dtype=np.int64)


def value_digits(ints: np.ndarray) -> np.ndarray:
    """ASCII digits (n, 5) of `dd.ddd` values given as ints 10000..99999."""
    return ((ints[:, None] // _POW5) % 10 + 48).astype(np.uint8)


def ts_digits(ts: int) -> np.ndarray:
    s = str(int(ts)).encode()
    if len(s) != 10:
        raise ValueError(f"timestamps must have 10 digits, got {ts}")
    return np.frombuffer(s, dtype=np.uint8)


class BodyTemplate:
    """Line-protocol body for a fixed list of series; per time step only digits are rewritten.

    Each line is `prefix` + `dd.ddd` + ` ` + 10-digit timestamp + `\\n`, the shape collectors send.
    Rendering copies the template and scatters value and timestamp digits with numpy, so a body of
    100 000 lines costs a few milliseconds instead of a second of f-strings.
    """

    def __init__(self, prefixes: Sequence[bytes], keys: np.ndarray) -> None:
        if len(prefixes) != len(keys):
            raise ValueError("one key per line")
        self.keys = keys.astype(np.uint64)
        self.n = len(prefixes)
        tail = b"00.000 0000000000\n"
        self.template = np.frombuffer(b"".join(p + tail for p in prefixes), dtype=np.uint8)
        plen = np.fromiter((len(p) for p in prefixes), dtype=np.int64, count=self.n)
        starts = np.concatenate(([0], np.cumsum(plen + len(tail))[:-1]))
        vpos = starts + plen
        self.vidx = vpos[:, None] + np.array([0, 1, 3, 4, 5])
        self.tidx = (vpos + 7)[:, None] + np.arange(10)
        self.nbytes = len(self.template)

    def render(self, step: int, ts: int) -> bytes:
        arr = self.template.copy()
        arr[self.vidx] = value_digits(sample_ints(self.keys + np.uint64(step)))
        arr[self.tidx] = ts_digits(ts)
        return arr.tobytes()


def host_block_template(topo: Topology, hosts: Sequence[int]) -> BodyTemplate:
    """A template with every series of the given hosts (host-major, as a collector batch)."""
    prefixes: list[bytes] = []
    keys = []
    for h in hosts:
        prefixes += topo.line_prefixes(host_name(h))
        keys.append(series_keys(h, topo.series_per_host))
    return BodyTemplate(prefixes, np.concatenate(keys))


def series_values(host: int, nseries: int, steps: int, first_step: int = 0) -> np.ndarray:
    """Sample values (nseries, steps) as float64, exactly as sent."""
    keys = series_keys(host, nseries)[:, None] + np.arange(first_step, first_step + steps, dtype=np.uint64)
    return sample_ints(keys.ravel()).reshape(nseries, steps) / 1000.0


def vm_import_body(topo: Topology, host: int, t0: int, steps: int) -> bytes:
    """All series of a host in VictoriaMetrics' /api/v1/import JSON-lines format (same values)."""
    nser = topo.series_per_host
    keys = series_keys(host, nser)[:, None] + np.arange(steps, dtype=np.uint64)
    ints = sample_ints(keys.ravel())
    digits = np.empty((ints.size, 7), dtype=np.uint8)
    digits[:, [0, 1, 3, 4, 5]] = value_digits(ints)
    digits[:, 2] = ord(".")
    digits[:, 6] = ord(",")
    rows = digits.reshape(nser, steps * 7)[:, :-1]
    stamps = ",".join(str((t0 + k * FREQ) * 1000) for k in range(steps)).encode()
    tail = b'],"timestamps":[' + stamps + b"]}\n"
    parts = []
    hname = host_name(host)
    for s, (metric, typ, tid) in enumerate(topo.series()):
        labels = {"__name__": metric, "hostname": hname, "type": typ}
        if tid:
            labels["type-id"] = tid
        parts.append(b'{"metric":' + json.dumps(labels, separators=(",", ":")).encode() + b',"values":[')
        parts.append(rows[s].tobytes())
        parts.append(tail)
    return b"".join(parts)


def aligned_start(span_seconds: int, margin: int = 600) -> int:
    """First timestamp of a data set of `span_seconds` that ends `margin` seconds ago, on the 60 s grid."""
    t = int(time.time()) - margin - span_seconds
    return t - t % FREQ


# ----------------------------------------------------------------------------- process probes


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        rest = f.read().rsplit(b")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def status_bytes(pid: int, key: str) -> int:
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM, ...) in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def rss_bytes(pid: int) -> int:
    return status_bytes(pid, "VmRSS")


def settle_cpu(pid: int, quiet: float = 0.02, window: float = 0.5, limit: float = 20.0) -> float:
    """Wait until the process uses less than `quiet` CPU seconds per `window`; return its CPU time.

    Stores that buffer and compact in the background (VictoriaMetrics, InfluxDB) keep working after
    the last HTTP answer; that work belongs to the ingest cost.
    """
    deadline = time.monotonic() + limit
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - last <= quiet:
            return now
        last = now
    return last


def dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_call(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 600.0
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# ----------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A store process started by a benchmark, with its own temporary directory."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    started: float
    keep: bool = False
    log_path: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> int | None:
        """Stop the process (SIGTERM, then SIGKILL after `timeout`) and remove its directory."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.proc.returncode


def _spawn(name: str, argv: list[str], workdir: Path, port: int, keep: bool) -> Server:
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    return Server(name, proc, port, workdir, time.monotonic(), keep=keep, log_path=log_path)


def wait_until(server: Server, probe, timeout: float = 60.0, interval: float = 0.01) -> float:
    """Poll `probe(server)` until it returns True; seconds since the process was started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if probe(server):
                return time.monotonic() - server.started
        time.sleep(interval)
    raise TimeoutError(f"{server.name} not ready after {timeout:.0f}s:\n{server.log_tail()}")


def make_workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"ccbench-{prefix}-", dir=os.environ.get("BENCH_TMPDIR")))


def our_config(
    port: int,
    metrics: dict[str, dict[str, object]],
    ckdir: Path,
    journal: bool = False,
    file_format: str = "json",
    retention: str = "48h",
) -> dict[str, object]:
    return {
        "main": {"addr": f"127.0.0.1:{port}"},
        "metrics": metrics,
        "metric-store": {
            "retention-in-memory": retention,
            "memory-cap": 0,
            "checkpoint-interval": "12h",
            "checkpoints": {"file-format": file_format, "directory": str(ckdir)},
            "journal": {"enabled": journal},
            "cleanup": {"mode": "delete"},
        },
    }


def health_body(nodes: Sequence[str] = ()) -> bytes:
    return json.dumps({"cluster": CLUSTER, "nodes": list(nodes), "metric-names": []}).encode()


def our_health(server: Server) -> bool:
    status, _ = http_call(server.port, "GET", "/api/healthcheck", health_body(), timeout=5)
    return status == 200


def start_ours(
    metrics: dict[str, dict[str, object]],
    journal: bool = False,
    file_format: str = "json",
    ckdir: Path | None = None,
    keep: bool = False,
    name: str = "ours",
    wait: bool = True,
) -> Server:
    """Start `cc-metric-store` on a free port; the checkpoint dir defaults to one inside its workdir."""
    if not OUR_DAEMON.exists():
        raise FileNotFoundError(f"{OUR_DAEMON} is missing: run `make setup` first")
    workdir = make_workdir(name)
    port = free_port()
    ck = ckdir if ckdir is not None else workdir / "checkpoints"
    cfg = our_config(port, metrics, ck, journal=journal, file_format=file_format)
    cfg_path = workdir / "config.json"
    cfg_path.write_text(json.dumps(cfg, indent=1))
    argv = [str(OUR_DAEMON), "-config", str(cfg_path), "-loglevel", "warn"]
    server = _spawn(name, argv, workdir, port, keep)
    server.extra["config"] = cfg
    if wait:
        wait_until(server, our_health, timeout=600)
    return server


def have_vm() -> bool:
    return shutil.which("victoria-metrics") is not None


def have_influx() -> bool:
    return shutil.which("influxd") is not None


def vm_ready(server: Server) -> bool:
    status, _ = http_call(server.port, "GET", "/health", timeout=5)
    return status == 200


def start_vm(keep: bool = False) -> Server:
    """VictoriaMetrics single-node with a temporary data dir; influx `/write` keeps metric names."""
    workdir = make_workdir("vm")
    port = free_port()
    argv = [
        shutil.which("victoria-metrics") or "victoria-metrics",
        f"-storageDataPath={workdir / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y",
        "-influxSkipSingleField",  # `cpu_user value=` becomes metric `cpu_user`, not `cpu_user_value`
        "-search.disableCache",  # measure query work, not the rollup result cache
        "-search.latencyOffset=0s",
        "-loggerLevel=ERROR",
    ]
    server = _spawn("victoria-metrics", argv, workdir, port, keep)
    wait_until(server, vm_ready, timeout=60)
    return server


def vm_flush(server: Server) -> None:
    """Make everything ingested so far searchable (VictoriaMetrics buffers rows for up to ~1 s)."""
    status, _ = http_call(server.port, "GET", "/internal/force_flush")
    if status != 200:
        time.sleep(2)


INFLUX_CONF = """reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  max-series-per-database = 0
  max-values-per-tag = 0
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""


def influx_ready(server: Server) -> bool:
    status, _ = http_call(server.port, "GET", "/ping", timeout=5)
    return status == 204


def start_influx(db: str = "bench", keep: bool = False) -> Server:
    """InfluxDB 1.x with temporary meta/data/wal dirs and database `db` created."""
    workdir = make_workdir("influx")
    port, rpc = free_port(), free_port()
    conf = workdir / "influxdb.conf"
    conf.write_text(INFLUX_CONF.format(d=workdir, port=port, rpc=rpc))
    argv = [shutil.which("influxd") or "influxd", "-config", str(conf)]
    server = _spawn("influxdb", argv, workdir, port, keep)
    wait_until(server, influx_ready, timeout=60)
    status, body = http_call(port, "POST", "/query?q=" + f"CREATE%20DATABASE%20{db}")
    if status != 200:
        server.stop()
        raise RuntimeError(f"influxdb: CREATE DATABASE failed: {status} {body[:200]!r}")
    server.extra["db"] = db
    return server


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------- HTTP load


async def post_all(
    url: str,
    bodies_per_conn: Sequence[Sequence[bytes]],
    expect: tuple[int, ...] = (200, 204),
) -> float:
    """POST each list of bodies in order on its own connection, all lists concurrently; wall seconds."""
    import asyncio

    import aiohttp

    conn = aiohttp.TCPConnector(limit=len(bodies_per_conn), force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as sess:

        async def worker(bodies: Sequence[bytes]) -> None:
            for body in bodies:
                async with sess.post(url, data=body) as resp:
                    text = await resp.read()
                    if resp.status not in expect:
                        raise RuntimeError(f"POST {url}: {resp.status} {text[:300]!r}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(b) for b in bodies_per_conn))
        return time.perf_counter() - t0


async def feed_pipelined(url: str, make_body, count: int, conns: int = 4, depth: int = 8) -> float:
    """POST `make_body(i)` for i in range(count) over `conns` connections while rendering ahead.

    Bodies are rendered in a worker thread so the server is never idle waiting for the client;
    body i goes to connection i % conns, so a connection sees its bodies in order.
    """
    import asyncio

    import aiohttp

    loop = asyncio.get_running_loop()
    queues: list[asyncio.Queue[bytes | None]] = [asyncio.Queue(maxsize=depth) for _ in range(conns)]

    async def producer() -> None:
        for i in range(count):
            body = await loop.run_in_executor(None, make_body, i)
            await queues[i % conns].put(body)
        for q in queues:
            await q.put(None)

    conn = aiohttp.TCPConnector(limit=conns)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as sess:

        async def worker(q: asyncio.Queue[bytes | None]) -> None:
            while (body := await q.get()) is not None:
                async with sess.post(url, data=body) as resp:
                    text = await resp.read()
                    if resp.status not in (200, 204):
                        raise RuntimeError(f"POST {url}: {resp.status} {text[:300]!r}")

        t0 = time.perf_counter()
        await asyncio.gather(producer(), *(worker(q) for q in queues))
        return time.perf_counter() - t0


def prometheus_value(text: str, name: str) -> float | None:
    """Sum of all samples of metric `name` in a Prometheus text exposition."""
    total = None
    for line in text.splitlines():
        if line.startswith(name) and (len(line) > len(name) and line[len(name)] in " {"):
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def our_counter(server: Server, name: str) -> float | None:
    status, body = http_call(server.port, "GET", "/metrics", timeout=30)
    if status != 200:
        return None
    return prometheus_value(body.decode(), name)


# ----------------------------------------------------------------------------- reporting


@dataclass
class Figure:
    """One line of the summary table: our value, the peer's value, and the target."""

    bench: str
    name: str
    unit: str
    ours: float | None
    peer: float | None = None
    peer_name: str = ""
    target: str = ""
    passed: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.peer:
            return None
        return self.ours / self.peer


class Report:
    def __init__(self, bench: str) -> None:
        self.bench = bench
        self.figures: list[Figure] = []
        self.info: dict[str, object] = {}

    def add(self, name: str, unit: str, ours: float | None, **kw: object) -> Figure:
        fig = Figure(self.bench, name, unit, ours, **kw)  # type: ignore[arg-type]
        self.figures.append(fig)
        return fig

    def write(self, path: str | None) -> None:
        if not path:
            return
        data = {
            "bench": self.bench,
            "info": self.info,
            "figures": [dict(f.__dict__, ratio=f.ratio) for f in self.figures],
        }
        Path(path).write_text(json.dumps(data, indent=1, default=str))

    def print(self) -> None:
        print_table(self.figures)


def fmt_num(x: float | None) -> str:
    if x is None:
        return "-"
    ax = abs(x)
    if ax == 0:
        return "0"
    if ax >= 1e6:
        return f"{x / 1e6:.2f} M"
    if ax >= 1e4:
        return f"{x / 1e3:.1f} k"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax >= 1e-3:
        return f"{x:.4f}"
    return f"{x:.3g}"


def print_table(figures: Sequence[Figure], file=sys.stdout) -> None:
    head = ("figure", "unit", "ours", "peer", "ratio", "target", "result")
    rows = []
    for f in figures:
        peer = f"{fmt_num(f.peer)} ({f.peer_name})" if f.peer is not None else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        result = {True: "PASS", False: "MISS", None: ""}[f.passed]
        name = f"{f.bench}: {f.name}"
        rows.append((name, f.unit, fmt_num(f.ours), peer, ratio, f.target, result))
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    print(line, file=file)
    print("-" * len(line), file=file)
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)), file=file)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def base_argparser(description: str):
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smaller data set (about a minute)")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON (used by scripts/bench.sh)")
    p.add_argument("--no-peers", action="store_true", help="measure our store only")
    p.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    return p
