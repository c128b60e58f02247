"""`ganglia` and `libganglia` sinks: every metric to Ganglia's gmond (spec collector §7.7/§7.8).

`ganglia` options (strict):

* `gmetric_path` — when given, every message runs this `gmetric` executable (it must exist), with
  the arguments of upstream: `[--group=…] [--units=…] [--cluster=…] [--conf=…] --name=…
  --slope=… --value=… --type=… --tmax=…`. Without it the sink sends the same XDR datagrams
  gmetric would send itself, over UDP to the `udp_send_channel`s of the gmond configuration, so
  no Ganglia installation is needed (upstream requires `gmetric` in PATH).
* `gmetric_config` — gmond configuration (`--conf=`; default `/etc/ganglia/gmond.conf`, and
  Ganglia's built-in multicast channel 239.2.11.71:8649 if that file is missing).
* `cluster_name` — extra metadata `CLUSTER` (`--cluster=`).
* `add_ganglia_group` (`false`) — extra metadata `GROUP` (`--group=`).
* `add_units` (`false`) — the unit, when there is one (`--units=`).
* `add_type_to_name` (`false`) — the scope in the name (`hwthread3_cpu_user`, `_<device>` suffix).
* `add_tags_as_desc` — accepted, unused (as upstream).
* `meta_as_tags`, `process_messages` — common options.

`libganglia` (not registered upstream at cc-lib v2.12.0; here it is the same native sender):
`libganglia_path` (accepted, unused), `gmond_config` (`/etc/ganglia/gmond.conf`), `cluster_name`,
`add_ganglia_group`, `add_type_to_name`, `add_units` (default `true`: the unit is always sent).

Names, groups, types, slopes, tmax and value texts follow `_gmetric.metric_config`. A message
without a numeric or string `value` is an error (rate-limited log). Datagrams are fire-and-forget
like gmetric's; the exec mode runs one gmetric at a time from a bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket

from cccommon.message import CCMessage

from ._gmetric import (
    GangliaConfig,
    GmondConf,
    metadata_packet,
    metric_config,
    read_gmond_conf,
    typed_name,
    value_packet,
)
from .base import Sink, SinkError, SinkOptions, register

__all__ = ["GangliaSink", "LibgangliaSink"]

GMOND_CONFIG = "/etc/ganglia/gmond.conf"


class _GangliaBase(Sink):
    """Name/argument building and the native UDP sender."""

    config_key = "gmetric_config"
    units_default = False
    #: bound of the exec-mode queue
    max_queue = 10_000

    def configure(self, opts: SinkOptions) -> None:
        self.cluster_name = opts.get_str("cluster_name") or ""
        self.add_group = opts.get_bool("add_ganglia_group")
        self.add_units = opts.get_bool("add_units", self.units_default)
        self.add_type_to_name = opts.get_bool("add_type_to_name")
        self.gmond_config = opts.get_str(self.config_key) or ""
        self.gmetric: str | None = None
        self._conf: GmondConf | None = None
        self._transports: list[asyncio.DatagramTransport] = []
        self._host = ""
        self._queue: asyncio.Queue[list[str]] | None = None
        self._task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- building

    def _config(self, msg: CCMessage) -> GangliaConfig:
        conf = metric_config(msg)
        if self.add_type_to_name:
            conf.name = typed_name(msg)
        return conf

    def _units(self, conf: GangliaConfig) -> str:
        return conf.unit if self.add_units else ""

    def _extra(self, conf: GangliaConfig) -> list[tuple[str, str]]:
        extra: list[tuple[str, str]] = []
        if self.cluster_name:
            extra.append(("CLUSTER", self.cluster_name))
        if self.add_group:
            extra.append(("GROUP", conf.group))
        return extra

    def packets(self, msg: CCMessage) -> tuple[bytes, bytes]:
        """The metadata and value datagrams for `msg` (ValueError if it cannot be sent)."""
        conf = self._config(msg)
        host = self._host or socket.gethostname()
        return (
            metadata_packet(host, conf, self._extra(conf), self._units(conf)),
            value_packet(host, conf.name, conf.value),
        )

    # ----------------------------------------------------------------- native sender

    async def _open_channels(self) -> None:
        path = self.gmond_config or GMOND_CONFIG
        try:
            self._conf = await asyncio.to_thread(read_gmond_conf, path)
        except OSError as e:
            raise SinkError(f"{self}: cannot read gmond configuration {path!r}: {e}") from e
        if not self._conf.channels:
            raise SinkError(f"{self}: {path} has no udp_send_channel")
        self._host = self._conf.override_hostname or socket.gethostname()
        loop = asyncio.get_running_loop()
        for ch in self._conf.channels:
            try:
                infos = await loop.getaddrinfo(ch.host, ch.port, type=socket.SOCK_DGRAM)
                family, _, _, _, addr = infos[0]
                sock = socket.socket(family, socket.SOCK_DGRAM)
                if ch.multicast and family == socket.AF_INET:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ch.ttl)
                sock.setblocking(False)
                sock.connect(addr)
                transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=sock)
            except OSError as e:
                self.log.error("cannot open the UDP channel to %s:%d: %s", ch.host, ch.port, e)
                continue
            self._transports.append(transport)
        if not self._transports:
            raise SinkError(f"{self}: no usable udp_send_channel in {path}")
        self.log.info("sending to %s", ", ".join(f"{c.host}:{c.port}" for c in self._conf.channels))

    def _send_native(self, msg: CCMessage) -> None:
        meta, value = self.packets(msg)
        for t in self._transports:
            t.sendto(meta)
            t.sendto(value)
        self.sent += 1

    def _write(self, msg: CCMessage) -> None:
        try:
            if self.gmetric is not None:
                self._queue_gmetric(msg)
            else:
                self._send_native(msg)
        except ValueError as e:
            self.dropped += 1
            self.limited(logging.ERROR, f"msg:{msg.name}", "%s", e)

    # ----------------------------------------------------------------- exec mode

    def gmetric_args(self, msg: CCMessage) -> list[str]:
        conf = self._config(msg)
        args: list[str] = []
        if self.add_group:
            args.append(f"--group={conf.group}")
        units = self._units(conf)
        if units:
            args.append(f"--units={units}")
        if self.cluster_name:
            args.append(f"--cluster={self.cluster_name}")
        if self.gmond_config:
            args.append(f"--conf={self.gmond_config}")
        args += [f"--name={conf.name}", f"--slope={conf.slope}", f"--value={conf.value}"]
        args += [f"--type={conf.type}", f"--tmax={conf.tmax}"]
        return args

    def _queue_gmetric(self, msg: CCMessage) -> None:
        assert self._queue is not None
        args = self.gmetric_args(msg)
        try:
            self._queue.put_nowait(args)
        except asyncio.QueueFull:
            self.dropped += 1
            self.limited(logging.ERROR, "queue", "gmetric cannot keep up: message dropped")

    async def _run_gmetric(self) -> None:
        assert self._queue is not None and self.gmetric is not None
        while True:
            args = await self._queue.get()
            try:
                proc = await asyncio.create_subprocess_exec(
                    self.gmetric,
                    *args,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
                _, err = await proc.communicate()
                if proc.returncode:
                    self.dropped += 1
                    self.limited(
                        logging.ERROR,
                        "exit",
                        "gmetric exited with %d: %s",
                        proc.returncode,
                        err.decode(errors="replace").strip()[:200],
                    )
                else:
                    self.sent += 1
            except OSError as e:
                self.dropped += 1
                self.limited(logging.ERROR, "exec", "cannot run %s: %s", self.gmetric, e)
            finally:
                self._queue.task_done()

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        if self.gmetric is not None:
            self._queue = asyncio.Queue(self.max_queue)
            self._task = asyncio.create_task(self._run_gmetric(), name=f"{self} gmetric")
        else:
            await self._open_channels()

    async def flush(self) -> None:
        if self._queue is not None and self._task is not None and not self._task.done():
            await self._queue.join()

    async def close(self) -> None:
        if self.closed:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 10.0)
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for t in self._transports:
            t.close()
        self._transports = []

    def stats(self) -> dict[str, int]:
        s = super().stats()
        s["buffered"] = self._queue.qsize() if self._queue is not None else 0
        return s


@register
class GangliaSink(_GangliaBase):
    type = "ganglia"
    label = "GangliaSink"
    options = frozenset(
        {
            "gmetric_path",
            "gmetric_config",
            "cluster_name",
            "add_ganglia_group",
            "add_units",
            "add_type_to_name",
            "add_tags_as_desc",
        }
    )

    def configure(self, opts: SinkOptions) -> None:
        super().configure(opts)
        opts.get_bool("add_tags_as_desc")  # type check only
        path = opts.get_str("gmetric_path") or ""
        if path:
            found = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
            if found is None:
                raise SinkError(f"{self}: cannot find executable {path!r}")
            self.gmetric = found


@register
class LibgangliaSink(_GangliaBase):
    type = "libganglia"
    label = "LibgangliaSink"
    options = frozenset(
        {
            "libganglia_path",
            "gmond_config",
            "cluster_name",
            "add_ganglia_group",
            "add_type_to_name",
            "add_units",
        }
    )
    config_key = "gmond_config"
    units_default = True

    def configure(self, opts: SinkOptions) -> None:
        super().configure(opts)
        opts.get_str("libganglia_path")  # accepted for compatibility; the sender is pure Python
