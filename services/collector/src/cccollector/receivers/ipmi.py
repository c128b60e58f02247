"""`ipmi` receiver: out-of-band BMC sensors through FreeIPMI's `ipmi-sensors` (spec collector §8.5).

Options (strict: unknown keys fail the receiver):

* `interval` (`30s`) — poll period; the first poll runs at start.
* `fanout` (`64`) — `--fanout` of ipmi-sensors (BMCs queried in parallel by one command).
* `driver_type` (`LAN_2_0`) — `LAN` or `LAN_2_0`.
* `username`, `password`, `endpoint` — defaults for the client configs. When the configuration
  has no global `username`/`password`, `$CC_IPMI_USERNAME`/`$CC_IPMI_PASSWORD` (or the files
  named by `$CC_IPMI_USERNAME_FILE`/`$CC_IPMI_PASSWORD_FILE`) are used, as newer cc-lib does.
* `exclude_metrics` (`[]`) — metric names to leave out: `power`, `voltage`, `temperature`,
  `fan_speed`, `current`, `air_flow`, `utilization`.
* `client_config` (at least one host) — list of objects with `host_list` (hostlist expression
  such as `node[01-04],gpu[1,3]`), and optionally `username`, `password`, `endpoint`,
  `driver_type`, `fanout`, `exclude_metrics` (added to the global ones) and `cli_options` (extra
  arguments; they may not set user, password, host, driver type, fanout or the options the
  receiver passes itself).
* `process_messages` — the receiver's rules (PX-15; upstream's strict decoder rejects the key).

`endpoint` is `ipmi-sensors://<pattern>`; `%h` in the pattern is replaced by each host of
`host_list` to give the BMC name. Username, password and endpoint must resolve (client value,
else global) or the configuration is invalid; `ipmi-sensors` must be on PATH.

Per poll, for each client config (the client configs run concurrently, each command queries its
BMCs with `--fanout` in parallel): `ipmi-sensors --always-prefix --sdr-cache-recreate
--interpret-oem-data --ignore-not-available-sensors --ignore-unrecognized-events
--comma-separated-output --no-header-output --non-abbreviated-units --fanout <n> --driver-type
<t> --hostname <bmc,...> --username <u> --password <p> <cli_options...>`. Output lines
`<bmc>: ID,Name,Type,Reading,Units,Event` give the node host through the BMC pattern; readings
`N/A` are skipped. The sensor name is trimmed, lower-cased, spaces become `_`, a leading `NN-` is
removed, then classified:

| units / type                                   | metric        | name tag                          | unit                 |
|------------------------------------------------|---------------|-----------------------------------|----------------------|
| `Watts` (any type)                             | `power`       | `_power`, `_pwr`, `pwr_` stripped | `Watts`              |
| voltage, `Volts`                               | `voltage`     | `volt_` stripped                  | `Volts`              |
| current, `Amps`                                | `current`     | as is                             | `Ampere`             |
| temperature, `degrees C` / `degrees F`         | `temperature` | `_temp` stripped                  | `degC` / `degF`      |
| fan, `RPM`                                     | `fan_speed`   | `_tach`, `spd_` stripped          | `RPM`                |
| cooling device or other units based sensor, `system_air_flow`, `CFM` | `air_flow` | `system` | `CubicFeetPerMinute` |
| processor or other units based sensor, `cpu/io/mem/sys_utilization`, `unspecified` or `%` | `utilization` | `_utilization` stripped | `percent` |

Anything else is skipped. Message: tags `hostname=<node>,type=node,name=<sensor>`, meta
`source=IPMIReceiver(<name>),group=IPMI,unit=<unit>`, float value, time of reading. A failing
command is logged with its stderr and the password masked; the receiver keeps polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cccommon.message import CCMessage, MessageError, new_message
from cccommon.nodelist import expand_hostlist

from ._credentials import env_credential
from .base import PollingReceiver, ReceiverError, ReceiverOptions, register

__all__ = ["IPMIReceiver", "parse_sensor_line"]

PROGRAM = "ipmi-sensors"
_FIXED_OPTIONS = (
    "--always-prefix",
    "--sdr-cache-recreate",
    "--interpret-oem-data",
    "--ignore-not-available-sensors",
    "--ignore-unrecognized-events",
    "--comma-separated-output",
    "--no-header-output",
    "--non-abbreviated-units",
)
#: cli_options that would override what the receiver sets: (short flag, long prefix, what to use instead)
_FORBIDDEN = (
    ("-u", "--username", "username"),
    ("-p", "--password", "password"),
    ("-h", "--hostname", "host_list"),
    ("-D", "--driver-type", "driver_type"),
    ("-F", "--fanout", "fanout"),
)
_CLIENT_KEYS = frozenset(
    {
        "host_list",
        "username",
        "password",
        "endpoint",
        "driver_type",
        "fanout",
        "exclude_metrics",
        "cli_options",
    }
)
_NUM_PREFIX = re.compile(r"^\d\d-(.*)$")
_UTILIZATION = frozenset({"cpu_utilization", "io_utilization", "mem_utilization", "sys_utilization"})


def _strip_prefix(s: str, p: str) -> str:
    return s[len(p) :] if s.startswith(p) else s


def _strip_suffix(s: str, p: str) -> str:
    return s[: -len(p)] if p and s.endswith(p) else s


def classify(sensor_type: str, name: str, unit: str) -> tuple[str, str, str] | None:
    """(metric, name tag, unit) of one sensor, or None when it is not collected."""
    typ = sensor_type.strip().lower()
    if unit == "Watts":
        name = _strip_prefix(_strip_suffix(_strip_suffix(name, "_power"), "_pwr"), "pwr_")
        return "power", name, "Watts"
    if typ == "voltage" and unit == "Volts":
        return "voltage", _strip_prefix(name, "volt_"), "Volts"
    if typ == "current" and unit == "Amps":
        return "current", name, "Ampere"
    if typ == "temperature" and unit in ("degrees C", "degrees F"):
        return "temperature", _strip_suffix(name, "_temp"), "degC" if unit == "degrees C" else "degF"
    if typ == "fan" and unit == "RPM":
        return "fan_speed", _strip_prefix(_strip_suffix(name, "_tach"), "spd_"), "RPM"
    if typ in ("cooling device", "other units based sensor") and name == "system_air_flow" and unit == "CFM":
        return "air_flow", "system", "CubicFeetPerMinute"
    if (
        typ in ("processor", "other units based sensor")
        and name in _UTILIZATION
        and unit in ("unspecified", "%")
    ):
        return "utilization", _strip_suffix(name, "_utilization"), "percent"
    return None


def parse_sensor_line(line: str, bmc_to_host: Mapping[str, str]) -> tuple[str, str, str, str, float] | None:
    """`<bmc>: ID,Name,Type,Reading,Units,Event` → (host, metric, name, unit, value), or None."""
    bmc, sep, rest = line.partition(": ")
    if not sep:
        return None
    host = bmc_to_host.get(bmc.strip())
    if host is None:
        return None
    cols = rest.split(",", 5)  # the event text may contain commas
    if len(cols) < 5:
        return None
    reading = cols[3].strip()
    if reading in ("N/A", ""):
        return None
    name = cols[1].strip().replace(" ", "_").lower()
    m = _NUM_PREFIX.match(name)
    if m:
        name = m.group(1)
    c = classify(cols[2], name, cols[4].strip())
    if c is None:
        return None
    try:
        value = float(reading)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return host, c[0], c[1], c[2], value


@dataclass
class _Client:
    index: int
    bmc_to_host: dict[str, str]
    username: str
    password: str
    driver_type: str
    fanout: int
    cli_options: list[str]
    excluded: set[str] = field(default_factory=set)

    def argv(self, program: str) -> list[str]:
        return [
            program,
            *_FIXED_OPTIONS,
            "--fanout",
            str(self.fanout),
            "--driver-type",
            self.driver_type,
            "--hostname",
            ",".join(self.bmc_to_host),
            "--username",
            self.username,
            "--password",
            self.password,
            *self.cli_options,
        ]


@register
class IPMIReceiver(PollingReceiver):
    type = "ipmi"
    label = "IPMIReceiver"
    strict = True
    options = frozenset(
        {
            "interval",
            "fanout",
            "driver_type",
            "username",
            "password",
            "endpoint",
            "exclude_metrics",
            "client_config",
        }
    )
    #: the program; tests and unusual installations may point it elsewhere
    program = PROGRAM
    #: stderr bytes kept for the error log of a failing command
    stderr_limit = 4096

    def configure(self, opts: ReceiverOptions) -> None:
        self.interval = opts.get_duration("interval", 30.0, strict=True)
        if self.interval <= 0:
            raise opts.err("interval", "must be a positive duration")
        fanout = opts.get_int("fanout", 64) or 64
        driver = opts.get_str("driver_type", "LAN_2_0") or "LAN_2_0"
        user = opts.get_str("username")
        password = opts.get_str("password")
        try:
            if user is None:
                user = env_credential("IPMI", "USERNAME")
            if password is None:
                password = env_credential("IPMI", "PASSWORD")
        except OSError as e:
            raise ReceiverError(f"{self}: {e}") from None
        endpoint = opts.get_str("endpoint")
        excluded = set(opts.get_list("exclude_metrics"))
        raw = opts.raw("client_config")
        if not isinstance(raw, list) or not raw:
            raise ReceiverError(f"{self}: 'client_config' must be a non-empty list of client configurations")
        self.clients: list[_Client] = []
        seen: set[str] = set()
        for i, cc in enumerate(raw):
            c = self._client(i, cc, user, password, endpoint, driver, fanout, excluded)
            dup = seen.intersection(c.bmc_to_host)
            if dup:  # upstream accepts this and reads such BMCs twice
                self.log.warning(
                    "client config number %d: BMC(s) %s also appear in an earlier one", i, sorted(dup)
                )
            seen.update(c.bmc_to_host)
            self.clients.append(c)
        if not seen:
            raise ReceiverError(f"{self}: the client configurations name no host")
        path = shutil.which(self.program)
        if path is None:
            raise ReceiverError(f"{self}: program {self.program!r} (FreeIPMI) not found on PATH")
        self.program_path = path
        self._procs: set[asyncio.subprocess.Process] = set()

    def _client(
        self,
        i: int,
        cc: Any,
        user: str | None,
        password: str | None,
        endpoint: str | None,
        driver: str,
        fanout: int,
        excluded: set[str],
    ) -> _Client:
        where = f"client config number {i}"
        o = ReceiverOptions(f"{self}: {where}", cc, _CLIENT_KEYS, strict=True, logger=self.log)
        extra = set(o.values) - _CLIENT_KEYS
        if extra:  # `type`/`process_messages` are common receiver keys, not client keys
            raise ReceiverError(f"{self}: {where}: unknown configuration key(s) {', '.join(sorted(extra))}")
        endpoint = o.get_str("endpoint", endpoint)
        user = o.get_str("username", user)
        password = o.get_str("password", password)
        for what, v in (("endpoint", endpoint), ("username", user), ("password", password)):
            if v is None:
                raise ReceiverError(f"{self}: {where} requires {what}")
        assert endpoint is not None and user is not None and password is not None
        proto, sep, pattern = endpoint.partition("://")
        if not sep or not pattern:
            raise ReceiverError(
                f"{self}: {where} has invalid endpoint {endpoint!r} (expected ipmi-sensors://%h-bmc)"
            )
        if proto != PROGRAM:
            raise ReceiverError(
                f"{self}: {where}: endpoint protocol {proto!r} is not supported (use {PROGRAM}://)"
            )
        driver = o.get_str("driver_type") or driver
        if driver not in ("LAN", "LAN_2_0"):
            raise ReceiverError(f"{self}: {where} has invalid driver type {driver!r} (LAN or LAN_2_0)")
        fanout = o.get_int("fanout") or fanout
        if fanout <= 0:
            raise ReceiverError(f"{self}: {where}: fanout must be positive")
        host_list = o.get_str("host_list", "") or ""
        try:
            hosts = expand_hostlist(host_list)
        except ValueError as e:
            raise ReceiverError(f"{self}: {where} failed to parse host list {host_list!r}: {e}") from None
        cli = o.get_list("cli_options")
        for v in cli:
            for short, long, instead in _FORBIDDEN:
                if v == short or v.startswith(long):
                    raise ReceiverError(f"{self}: {where}: do not set {v!r} in cli_options, use {instead!r}")
            if v in _FIXED_OPTIONS:
                raise ReceiverError(
                    f"{self}: {where}: do not use option {v!r} in cli_options, it is used internally"
                )
        bmc_to_host = {pattern.replace("%h", h): h for h in hosts}
        return _Client(
            i, bmc_to_host, user, password, driver, fanout, cli, excluded | set(o.get_list("exclude_metrics"))
        )

    # ----------------------------------------------------------------- polling

    async def poll(self) -> None:
        await asyncio.gather(*(self._poll_client(c) for c in self.clients))

    async def _poll_client(self, c: _Client) -> None:
        argv = c.argv(self.program_path)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            self.limited(logging.ERROR, f"start{c.index}", "cannot start %s: %s", self.program_path, e)
            return
        self._procs.add(proc)
        assert proc.stdout is not None and proc.stderr is not None
        err_task = asyncio.create_task(proc.stderr.read())
        count = 0
        try:
            async for raw in proc.stdout:
                parsed = parse_sensor_line(raw.decode("utf-8", "replace").rstrip("\r\n"), c.bmc_to_host)
                if parsed is None:
                    continue
                host, metric, name, unit, value = parsed
                if metric in c.excluded:
                    continue
                msg = self._message(host, metric, name, unit, value)
                if msg is not None:
                    count += 1
                    await self.forward(msg)
            rc = await proc.wait()
            stderr = await err_task
        except BaseException:  # cancelled (close) or unreadable output: do not leave the command behind
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            err_task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.shield(proc.wait())
            raise
        finally:
            self._procs.discard(proc)
        if rc != 0:
            cmd = " ".join(argv).replace(c.password, "<PW>") if c.password else " ".join(argv)
            text = stderr[-self.stderr_limit :].decode("utf-8", "replace").strip()
            if c.password:
                text = text.replace(c.password, "<PW>")
            self.limited(
                logging.ERROR, f"rc{c.index}", "command %r exited with %d: %s", cmd, rc, text or "(no stderr)"
            )
        else:
            self.log.debug("client config %d: %d readings", c.index, count)

    def _message(self, host: str, metric: str, name: str, unit: str, value: float) -> CCMessage | None:
        try:
            return new_message(
                metric,
                {"hostname": host, "type": "node", "name": name},
                {"source": self.source, "group": "IPMI", "unit": unit},
                {"value": value},
                time.time_ns(),
            )
        except MessageError:
            return None

    async def close(self) -> None:
        await super().close()
        for proc in list(self._procs):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
