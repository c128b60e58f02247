"""`redfish` receiver: polls BMCs through the Redfish REST API (spec collector §8.6).

Options (strict: unknown keys fail the receiver):

* `interval` (`30s`) — poll period; the first poll runs at start.
* `fanout` (`64`) — BMCs read concurrently (capped by the number of hosts).
* `http_insecure` (`true`) — do not verify TLS certificates (BMCs mostly have self-signed ones).
* `http_timeout` (`10s`) — per request.
* `username`, `password`, `endpoint` — defaults for the client configs; `endpoint` is a URL
  template with `%h` for the host, e.g. `https://%h-bmc`. Without a global `username`/`password`
  `$CC_REDFISH_USERNAME`/`$CC_REDFISH_PASSWORD` (or the files named by `..._FILE`) are used, as
  newer cc-lib does.
* `disable_power_metrics`, `disable_processor_metrics`, `disable_sensors`,
  `disable_thermal_metrics` (`false`) — global switches, OR-ed with the per-client ones.
* `exclude_metrics` (`[]`) — metric names to leave out (`power`, `fan_speed`, `temperature`,
  `consumed_watts`, `average_consumed_watts`, `min_consumed_watts`, `max_consumed_watts`,
  `consumed_power`).
* `process_messages` — global rules, applied after the per-client rules (upstream never loads
  them).
* `client_config` (at least one host) — list of objects with `host_list` (hostlist expression)
  and optionally `username`, `password`, `endpoint`, the four `disable_*` switches,
  `exclude_metrics` (added to the global ones) and `process_messages` (per-client rules).
  A host in two client configs is a configuration error.

Per poll and host (at most `fanout` hosts at a time): log in once through the SessionService
(`X-Auth-Token`, kept across polls, renewed on `401`; HTTP basic auth when the service has no
sessions), list the chassis (when sensors, thermal or power metrics are enabled) and the systems
(when processor metrics are), then read:

* `Chassis/<id>/Sensors` — on the first poll every enabled, healthy sensor with reading type and
  unit is examined and the usable ones remembered; later polls read only those. `power` (type
  Power or Current in Watts), `fan_speed` (AirFlow or Rotational in RPM or Percent, unit from the
  sensor), `temperature` (Temperature in C); tags `sensor_id`, `<kind>_physical_context`,
  `<kind>_name` with kind `power`/`fan`/`temperature`; meta group `Energy`/`FanSpeed`/
  `Temperature`, unit `watts`/reading unit/`degC`. Besides upstream's unit spellings the Redfish
  (UCUM) ones `W`, `Cel`, `{rev}/min`, `%` are recognised.
* `Chassis/<id>/Thermal` — `temperature` of every enabled temperature with `ReadingCelsius`
  (tags `temperature_id`, `temperature_member_id`, `temperature_physical_context`,
  `temperature_name`), `fan_speed` of every enabled fan with a reading (`Reading`, or the old
  `ReadingRPM`; tags `fan_id`, `fan_member_id`, `fan_physical_context`, `fan_name`).
* `Chassis/<id>/Power` — per enabled PowerControl `consumed_watts`, `average_consumed_watts`,
  `min_consumed_watts`, `max_consumed_watts` (tags `power_control_id`,
  `power_control_member_id`, `power_control_physical_context`, `power_control_name`; meta group
  `Energy`, unit `watts`, `interval_in_minutes`).
* `Systems/<id>/Processors/<p>/ProcessorMetrics` (a `404` is remembered and not asked again) —
  `consumed_power` (unless 65535, a "no value" marker of some BMCs) and `temperature`, with tags
  `type=socket`, `processor_typ`, `processor_name`, `processor_id`.

Chassis messages have tags `hostname=<host>,type=node,chassis_typ,chassis_name` plus the extra
tags; empty tag and meta values are removed; values are floats (readings that are missing or
null are skipped, where upstream sends 0); meta `source=RedfishReceiver(<name>)`; time = read
time. An error on one host is logged (once when it starts failing, once when it works again) and
does not affect the others. Sessions are deleted on close.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from cccommon.message import MessageError, new_message
from cccommon.nodelist import expand_hostlist

from ._credentials import env_credential
from .base import MessageProcessor, PollingReceiver, ReceiverError, ReceiverOptions, register

__all__ = ["RedfishReceiver"]

_SWITCHES = (
    "disable_power_metrics",
    "disable_processor_metrics",
    "disable_sensors",
    "disable_thermal_metrics",
)
_CLIENT_KEYS = frozenset(
    {"host_list", "username", "password", "endpoint", "exclude_metrics", "process_messages", *_SWITCHES}
)
_POWER_UNITS = frozenset({"Watts", "W"})
_FAN_UNITS = frozenset({"RPM", "Percent", "{rev}/min", "%"})
_TEMP_UNITS = frozenset({"C", "Cel"})
_NO_POWER = 65535


class RedfishError(Exception):
    pass


class _NotFound(RedfishError):
    pass


class _Unauthorized(RedfishError):
    pass


@dataclass
class _Host:
    host: str
    base: str
    username: str
    password: str
    do_power: bool
    do_processor: bool
    do_sensors: bool
    do_thermal: bool
    excluded: set[str]
    processor: MessageProcessor | None
    token: str | None = None
    session_uri: str | None = None
    basic: bool = False
    root: dict[str, Any] | None = None
    #: chassis id → sensor URIs to read (filled on the first poll of that chassis)
    sensor_urls: dict[str, list[str]] = field(default_factory=dict)
    skip_processor_metrics: set[str] = field(default_factory=set)
    failing: bool = False


def _link(doc: Mapping[str, Any], key: str) -> str | None:
    v = doc.get(key)
    if isinstance(v, Mapping):
        uri = v.get("@odata.id")
        return uri if isinstance(uri, str) and uri else None
    return None


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ("" if v is None else str(v))


def _status(doc: Mapping[str, Any]) -> tuple[str, str]:
    st = doc.get("Status")
    if not isinstance(st, Mapping):
        return "", ""
    return _str(st.get("State")), _str(st.get("Health"))


def _interval_text(v: Any) -> str:
    f = _num(v)
    if f is None:
        return ""
    return str(int(f)) if f.is_integer() else repr(f)


def sensor_kind(sensor: Mapping[str, Any]) -> str | None:
    """`power`, `fan_speed`, `temperature` for a usable Redfish Sensor resource, else None."""
    rtype = _str(sensor.get("ReadingType"))
    units = _str(sensor.get("ReadingUnits"))
    if not rtype or not units:
        return None
    if rtype in ("Power", "Current") and units in _POWER_UNITS:
        return "power"
    if rtype in ("AirFlow", "Rotational") and units in _FAN_UNITS:
        return "fan_speed"
    if rtype == "Temperature" and units in _TEMP_UNITS:
        return "temperature"
    return None


@register
class RedfishReceiver(PollingReceiver):
    type = "redfish"
    label = "RedfishReceiver"
    strict = True
    options = frozenset(
        {
            "interval",
            "fanout",
            "http_insecure",
            "http_timeout",
            "username",
            "password",
            "endpoint",
            "exclude_metrics",
            "client_config",
            *_SWITCHES,
        }
    )
    #: seconds close() gives the session logouts
    logout_timeout = 2.0

    def configure(self, opts: ReceiverOptions) -> None:
        self.interval = opts.get_duration("interval", 30.0, strict=True)
        if self.interval <= 0:
            raise opts.err("interval", "must be a positive duration")
        self.http_timeout = opts.get_duration("http_timeout", 10.0, strict=True)
        self.insecure = opts.get_bool("http_insecure", True)
        fanout = opts.get_int("fanout", 64) or 64
        user = opts.get_str("username")
        password = opts.get_str("password")
        try:
            if user is None:
                user = env_credential("REDFISH", "USERNAME")
            if password is None:
                password = env_credential("REDFISH", "PASSWORD")
        except OSError as e:
            raise ReceiverError(f"{self}: {e}") from None
        endpoint = opts.get_str("endpoint")
        switches = {k: opts.get_bool(k) for k in _SWITCHES}
        excluded = set(opts.get_list("exclude_metrics"))
        raw = opts.raw("client_config")
        if not isinstance(raw, list) or not raw:
            raise ReceiverError(f"{self}: at least one client config is required ('client_config')")
        self.hosts: list[_Host] = []
        for i, cc in enumerate(raw):
            self.hosts.extend(self._client(i, cc, user, password, endpoint, switches, excluded))
        if not self.hosts:
            raise ReceiverError(
                f"{self}: at least one client config is required (no host in 'client_config')"
            )
        seen: set[str] = set()
        for h in self.hosts:
            if h.host in seen:
                raise ReceiverError(f"{self}: found duplicate client config for host {h.host}")
            seen.add(h.host)
        self.fanout = max(1, min(fanout, len(self.hosts)))
        self._session: aiohttp.ClientSession | None = None
        self._sem = asyncio.Semaphore(self.fanout)

    def _client(
        self,
        i: int,
        cc: Any,
        user: str | None,
        password: str | None,
        endpoint: str | None,
        switches: dict[str, bool],
        excluded: set[str],
    ) -> list[_Host]:
        where = f"client config number {i}"
        o = ReceiverOptions(f"{self}: {where}", cc, _CLIENT_KEYS, strict=True, logger=self.log)
        if o.has("type"):
            raise ReceiverError(f"{self}: {where}: unknown configuration key 'type'")
        endpoint = o.get_str("endpoint", endpoint)
        user = o.get_str("username", user)
        password = o.get_str("password", password)
        for what, v in (("endpoint", endpoint), ("username", user), ("password", password)):
            if v is None:
                raise ReceiverError(f"{self}: {where} requires {what}")
        assert endpoint is not None and user is not None and password is not None
        if "://" not in endpoint:
            raise ReceiverError(
                f"{self}: {where}: endpoint {endpoint!r} must be a URL such as https://%h-bmc"
            )
        on = {k: not (switches[k] or o.get_bool(k)) for k in _SWITCHES}
        host_list = o.get_str("host_list", "") or ""
        try:
            hosts = expand_hostlist(host_list)
        except ValueError as e:
            raise ReceiverError(f"{self}: {where} failed to parse host list {host_list!r}: {e}") from None
        processor = self.make_processor(o.raw("process_messages"), f"client_config[{i}].process_messages")
        ex = excluded | set(o.get_list("exclude_metrics"))
        return [
            _Host(
                host=h,
                base=endpoint.replace("%h", h).rstrip("/"),
                username=user,
                password=password,
                do_power=on["disable_power_metrics"],
                do_processor=on["disable_processor_metrics"],
                do_sensors=on["disable_sensors"],
                do_thermal=on["disable_thermal_metrics"],
                excluded=ex,
                processor=processor,
            )
            for h in hosts
        ]

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(ssl=False if self.insecure else True, limit=self.fanout * 2)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.http_timeout),
            headers={
                "Accept": "application/json",
                "OData-Version": "4.0",
                "User-Agent": "cc-metric-collector",
            },
        )
        self.log.info(
            "monitoring %d host(s) every %gs, %d in parallel", len(self.hosts), self.interval, self.fanout
        )
        await super().start()

    async def close(self) -> None:
        await super().close()
        session, self._session = self._session, None
        if session is None:
            return
        logouts = [self._logout(session, h) for h in self.hosts if h.session_uri]
        if logouts:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*logouts, return_exceptions=True), self.logout_timeout)
        await session.close()

    # ----------------------------------------------------------------- HTTP

    def _url(self, h: _Host, uri: str) -> str:
        return uri if "://" in uri else h.base + (uri if uri.startswith("/") else "/" + uri)

    def _headers(self, h: _Host) -> dict[str, str]:
        if h.token:
            return {"X-Auth-Token": h.token}
        cred = base64.b64encode(f"{h.username}:{h.password}".encode()).decode("ascii")
        return {"Authorization": "Basic " + cred}

    async def _get(self, h: _Host, uri: str, retry: bool = True) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.get(self._url(h, uri), headers=self._headers(h)) as r:
            if r.status == 401 and h.token and retry:
                h.token = h.session_uri = None
                await self._login(h)
                return await self._get(h, uri, retry=False)
            if r.status == 404:
                raise _NotFound(f"GET {uri}: 404 Not Found")
            if r.status == 401:
                raise _Unauthorized(f"GET {uri}: 401 Unauthorized (check username and password)")
            if r.status >= 400:
                raise RedfishError(f"GET {uri}: HTTP {r.status} {r.reason}")
            doc = await r.json(content_type=None)
        if not isinstance(doc, dict):
            raise RedfishError(f"GET {uri}: the answer is not a JSON object")
        return doc

    async def _login(self, h: _Host) -> None:
        """Read the service root and open a session (or settle for basic auth)."""
        assert self._session is not None
        async with self._session.get(self._url(h, "/redfish/v1/")) as r:
            if r.status >= 400:
                raise RedfishError(f"GET /redfish/v1/: HTTP {r.status} {r.reason}")
            root = await r.json(content_type=None)
        if not isinstance(root, dict):
            raise RedfishError("the service root is not a JSON object")
        h.root = root
        links = root.get("Links")
        sessions = (_link(links, "Sessions") if isinstance(links, Mapping) else None) or (
            "/redfish/v1/SessionService/Sessions"
        )
        body = {"UserName": h.username, "Password": h.password}
        async with self._session.post(self._url(h, sessions), json=body) as r:
            token = r.headers.get("X-Auth-Token")
            if r.status in (200, 201, 202, 204) and token:
                h.token = token
                h.basic = False
                loc = r.headers.get("Location")
                if not loc:
                    with contextlib.suppress(Exception):
                        loc = _link({"s": await r.json(content_type=None)}, "s")
                h.session_uri = loc
                return
            if r.status in (401, 403):
                raise _Unauthorized(f"login refused with HTTP {r.status} (check username and password)")
        # no session service: every request carries basic auth
        h.token = h.session_uri = None
        h.basic = True

    async def _logout(self, session: aiohttp.ClientSession, h: _Host) -> None:
        if not h.session_uri or not h.token:
            return
        uri, token = h.session_uri, h.token
        h.session_uri = h.token = None
        with contextlib.suppress(Exception):
            async with session.delete(self._url(h, uri), headers={"X-Auth-Token": token}):
                pass

    async def _members(self, h: _Host, uri: str) -> list[str]:
        coll = await self._get(h, uri)
        members = coll.get("Members")
        out: list[str] = []
        if isinstance(members, list):
            for m in members:
                if isinstance(m, Mapping) and isinstance(m.get("@odata.id"), str):
                    out.append(m["@odata.id"])
        return out

    # ----------------------------------------------------------------- polling

    async def poll(self) -> None:
        await asyncio.gather(*(self._poll_host(h) for h in self.hosts))

    async def _poll_host(self, h: _Host) -> None:
        async with self._sem:
            try:
                await self._read_host(h)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                text = str(e) or type(e).__name__
                if not h.failing:
                    h.failing = True
                    self.log.error("host %s (%s): %s", h.host, h.base, text)
                else:
                    self.log.debug("host %s failed again: %s", h.host, text)
                if isinstance(e, _Unauthorized):  # log in again at the next poll
                    h.token = h.session_uri = None
                    h.root = None
                return
        if h.failing:
            h.failing = False
            self.log.info("host %s (%s) works again", h.host, h.base)

    async def _read_host(self, h: _Host) -> None:
        if h.root is None or (not h.token and not h.basic):
            await self._login(h)
        root = h.root or {}
        chassis: list[dict[str, Any]] = []
        if h.do_sensors or h.do_thermal or h.do_power:
            uri = _link(root, "Chassis")
            if uri:
                for m in await self._members(h, uri):
                    chassis.append(await self._get(h, m))
        systems: list[dict[str, Any]] = []
        if h.do_processor:
            uri = _link(root, "Systems")
            if uri:
                for m in await self._members(h, uri):
                    systems.append(await self._get(h, m))
        if h.do_sensors:
            for c in chassis:
                await self._read_sensors(h, c)
        if h.do_thermal:
            for c in chassis:
                await self._read_thermal(h, c)
        if h.do_power:
            for c in chassis:
                await self._read_power(h, c)
        if h.do_processor:
            for s in systems:
                await self._read_processors(h, s)

    async def _send(
        self, h: _Host, name: str, tags: dict[str, str], meta: dict[str, str], value: Any, t: int
    ) -> None:
        v = _num(value)
        if v is None or name in h.excluded:
            return
        tags = {k: x for k, x in tags.items() if x}
        meta = {k: x for k, x in meta.items() if x}
        try:
            msg = new_message(name, tags, meta, {"value": v}, t)
        except MessageError:
            return
        if h.processor is not None:
            try:
                out = h.processor.process(msg)
            except Exception as e:
                self.limited(logging.ERROR, "client_process", "client process_messages failed: %s", e)
                return
            if out is None:
                self.dropped += 1
                return
            msg = out
        await self.forward(msg)

    def _chassis_tags(self, h: _Host, c: Mapping[str, Any]) -> dict[str, str]:
        return {
            "hostname": h.host,
            "type": "node",
            "chassis_typ": _str(c.get("ChassisType")),
            "chassis_name": _str(c.get("Name")),
        }

    async def _read_sensors(self, h: _Host, c: Mapping[str, Any]) -> None:
        cid = _str(c.get("Id")) or _str(c.get("@odata.id"))
        known = h.sensor_urls.get(cid)
        if known is None:
            link = _link(c, "Sensors")
            found: list[str] = []
            if link:
                for uri in await self._members(h, link):
                    sensor = await self._get(h, uri)
                    state, health = _status(sensor)
                    if state != "Enabled" or health != "OK":
                        continue
                    kind = sensor_kind(sensor)
                    if kind is None or kind in h.excluded:
                        continue
                    found.append(uri)
                    await self._send_sensor(h, c, kind, sensor)
            h.sensor_urls[cid] = found
            return
        for uri in known:
            try:
                sensor = await self._get(h, uri)
            except _NotFound:
                self.limited(
                    logging.WARNING, f"sensor {h.host}{uri}", "host %s: sensor %s vanished", h.host, uri
                )
                continue
            kind = sensor_kind(sensor)
            if kind is not None:
                await self._send_sensor(h, c, kind, sensor)

    async def _send_sensor(self, h: _Host, c: Mapping[str, Any], kind: str, s: Mapping[str, Any]) -> None:
        prefix, group, unit = {
            "power": ("power", "Energy", "watts"),
            "fan_speed": ("fan", "FanSpeed", _str(s.get("ReadingUnits"))),
            "temperature": ("temperature", "Temperature", "degC"),
        }[kind]
        tags = self._chassis_tags(h, c)
        tags["sensor_id"] = _str(s.get("Id"))
        tags[f"{prefix}_physical_context"] = _str(s.get("PhysicalContext"))
        tags[f"{prefix}_name"] = _str(s.get("Name"))
        meta = {"source": self.source, "group": group, "unit": unit}
        await self._send(h, kind, tags, meta, s.get("Reading"), time.time_ns())

    async def _read_thermal(self, h: _Host, c: Mapping[str, Any]) -> None:
        link = _link(c, "Thermal")
        if not link:
            return
        thermal = await self._get(h, link)
        t = time.time_ns()
        temps = thermal.get("Temperatures")
        for temp in temps if isinstance(temps, list) else []:
            if not isinstance(temp, Mapping):
                continue
            state, _ = _status(temp)
            if state not in ("", "Enabled"):
                continue
            tags = self._chassis_tags(h, c)
            tags.update(
                temperature_id=_str(temp.get("Id")),
                temperature_member_id=_str(temp.get("MemberId")),
                temperature_physical_context=_str(temp.get("PhysicalContext")),
                temperature_name=_str(temp.get("Name")),
            )
            meta = {"source": self.source, "group": "Temperature", "unit": "degC"}
            await self._send(h, "temperature", tags, meta, temp.get("ReadingCelsius"), t)
        fans = thermal.get("Fans")
        for fan in fans if isinstance(fans, list) else []:
            if not isinstance(fan, Mapping):
                continue
            state, _ = _status(fan)
            if state != "Enabled":
                continue
            value, unit = fan.get("Reading"), _str(fan.get("ReadingUnits"))
            if value is None and fan.get("ReadingRPM") is not None:
                value, unit = fan.get("ReadingRPM"), unit or "RPM"
            tags = self._chassis_tags(h, c)
            tags.update(
                fan_id=_str(fan.get("Id")),
                fan_member_id=_str(fan.get("MemberId")),
                fan_physical_context=_str(fan.get("PhysicalContext")),
                fan_name=_str(fan.get("Name") or fan.get("FanName")),
            )
            meta = {"source": self.source, "group": "FanSpeed", "unit": unit}
            await self._send(h, "fan_speed", tags, meta, value, t)

    async def _read_power(self, h: _Host, c: Mapping[str, Any]) -> None:
        link = _link(c, "Power")
        if not link:
            return
        power = await self._get(h, link)
        t = time.time_ns()
        controls = power.get("PowerControl")
        for pc in controls if isinstance(controls, list) else []:
            if not isinstance(pc, Mapping):
                continue
            state, _ = _status(pc)
            if state not in ("", "Enabled"):
                continue
            pm = pc.get("PowerMetrics")
            pm = pm if isinstance(pm, Mapping) else {}
            tags = self._chassis_tags(h, c)
            tags.update(
                power_control_id=_str(pc.get("Id")),
                power_control_member_id=_str(pc.get("MemberId")),
                power_control_physical_context=_str(pc.get("PhysicalContext")),
                power_control_name=_str(pc.get("Name")),
            )
            meta = {
                "source": self.source,
                "group": "Energy",
                "interval_in_minutes": _interval_text(pm.get("IntervalInMin")),
                "unit": "watts",
            }
            for name, value in (
                ("consumed_watts", pc.get("PowerConsumedWatts")),
                ("average_consumed_watts", pm.get("AverageConsumedWatts")),
                ("min_consumed_watts", pm.get("MinConsumedWatts")),
                ("max_consumed_watts", pm.get("MaxConsumedWatts")),
            ):
                await self._send(h, name, tags, meta, value, t)

    async def _read_processors(self, h: _Host, system: Mapping[str, Any]) -> None:
        link = _link(system, "Processors")
        if not link:
            return
        for uri in await self._members(h, link):
            proc = await self._get(h, uri)
            metrics_uri = _link(proc, "Metrics") or (_str(proc.get("@odata.id")) or uri).rstrip("/") + (
                "/ProcessorMetrics"
            )
            if metrics_uri in h.skip_processor_metrics:
                continue
            try:
                pm = await self._get(h, metrics_uri)
            except _NotFound:
                h.skip_processor_metrics.add(metrics_uri)
                continue
            t = time.time_ns()
            tags = {
                "hostname": h.host,
                "type": "socket",
                "processor_typ": _str(proc.get("ProcessorType")),
                "processor_name": _str(proc.get("Name")),
                "processor_id": _str(proc.get("Id")),
            }
            watts = _num(pm.get("ConsumedPowerWatt"))
            if watts is not None and watts != _NO_POWER:
                meta = {"source": self.source, "group": "Energy", "unit": "watts"}
                await self._send(h, "consumed_power", tags, meta, watts, t)
            meta = {"source": self.source, "group": "Temperature", "unit": "degC"}
            await self._send(h, "temperature", tags, meta, pm.get("TemperatureCelsius"), t)
