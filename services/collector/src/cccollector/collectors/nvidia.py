"""nvidia (spec §6.25): NVIDIA GPU metrics through NVML (`nvidia-ml-py`, module `pynvml`); serial.

Every metric whose NVML call fails (not supported on this GPU, MIG instance, …) is skipped.
`pynvml` is imported at initialisation, so the collector module loads without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cccommon.message import UInt

from ._cmd import metric
from ._files import FileCollector
from .base import CollectorInitError, Emit, register

MIB = 1024 * 1024

# NVML constants (values of nvml.h), used when the module lacks a name
_DEFAULTS = {
    "NVML_TEMPERATURE_GPU": 0,
    "NVML_FEATURE_DISABLED": 0,
    "NVML_FEATURE_ENABLED": 1,
    "NVML_CLOCK_GRAPHICS": 0,
    "NVML_CLOCK_SM": 1,
    "NVML_CLOCK_MEM": 2,
    "NVML_CLOCK_VIDEO": 3,
    "NVML_MEMORY_ERROR_TYPE_CORRECTED": 0,
    "NVML_MEMORY_ERROR_TYPE_UNCORRECTED": 1,
    "NVML_AGGREGATE_ECC": 1,
    "NVML_ERROR_NOT_SUPPORTED": 3,
    "NVML_ERROR_LIBRARY_NOT_FOUND": 12,
    "NVML_ERROR_DRIVER_NOT_LOADED": 9,
    "NVML_DEVICE_MIG_DISABLE": 0,
    "NVML_NVLINK_MAX_LINKS": 18,
    "NVML_NVLINK_ERROR_DL_REPLAY": 0,
    "NVML_NVLINK_ERROR_DL_RECOVERY": 1,
    "NVML_NVLINK_ERROR_DL_CRC_FLIT": 2,
    "NVML_NVLINK_ERROR_DL_CRC_DATA": 3,
    "NVML_NVLINK_ERROR_DL_ECC_DATA": 4,
    "NVML_PERF_POLICY_POWER": 0,
    "NVML_PERF_POLICY_THERMAL": 1,
    "NVML_PERF_POLICY_SYNC_BOOST": 2,
    "NVML_PERF_POLICY_BOARD_LIMIT": 3,
    "NVML_PERF_POLICY_LOW_UTILIZATION": 4,
    "NVML_PERF_POLICY_RELIABILITY": 5,
    "NVML_PERF_POLICY_TOTAL_APP_CLOCKS": 10,
    "NVML_PERF_POLICY_TOTAL_BASE_CLOCKS": 11,
}

#: metric → clock constant
CLOCKS = (
    ("nv_graphics_clock", "NVML_CLOCK_GRAPHICS"),
    ("nv_sm_clock", "NVML_CLOCK_SM"),
    ("nv_mem_clock", "NVML_CLOCK_MEM"),
    ("nv_video_clock", "NVML_CLOCK_VIDEO"),
)
MAX_CLOCKS = tuple((name.replace("nv_", "nv_max_", 1), c) for name, c in CLOCKS)
VIOLATIONS = (
    ("nv_violation_power", "NVML_PERF_POLICY_POWER"),
    ("nv_violation_thermal", "NVML_PERF_POLICY_THERMAL"),
    ("nv_violation_sync_boost", "NVML_PERF_POLICY_SYNC_BOOST"),
    ("nv_violation_board_limit", "NVML_PERF_POLICY_BOARD_LIMIT"),
    ("nv_violation_low_util", "NVML_PERF_POLICY_LOW_UTILIZATION"),
    ("nv_violation_reliability", "NVML_PERF_POLICY_RELIABILITY"),
    ("nv_violation_below_app_clock", "NVML_PERF_POLICY_TOTAL_APP_CLOCKS"),
    ("nv_violation_below_base_clock", "NVML_PERF_POLICY_TOTAL_BASE_CLOCKS"),
)
NVLINK_ERRORS = (
    ("nv_nvlink_crc_errors", "NVML_NVLINK_ERROR_DL_CRC_DATA"),
    ("nv_nvlink_ecc_errors", "NVML_NVLINK_ERROR_DL_ECC_DATA"),
    ("nv_nvlink_replay_errors", "NVML_NVLINK_ERROR_DL_REPLAY"),
    ("nv_nvlink_recovery_errors", "NVML_NVLINK_ERROR_DL_RECOVERY"),
    ("nv_nvlink_crc_flit_errors", "NVML_NVLINK_ERROR_DL_CRC_FLIT"),
)
ENERGY_METRICS = ("nv_energy", "nv_energy_abs", "nv_average_power")


def _str(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _val(v: Any) -> Any:
    """Plain Python value of a ctypes scalar (some pynvml calls return c_uint objects)."""
    return getattr(v, "value", v)


@dataclass
class _Device:
    handle: Any
    tags: dict[str, str]
    meta: dict[str, str]
    last_energy: int = 0  # mJ, 0 = no reading yet
    last_energy_time: int = 0  # ns


@register
class NvidiaCollector(FileCollector):
    type = "nvidia"
    source = "NvidiaCollector"
    group = "Nvidia"
    parallel = False  # upstream never sets the parallel flag
    options = frozenset(
        {
            "exclude_devices",
            "use_pci_info_as_type_id",
            "add_pci_info_tag",
            "add_uuid_meta",
            "add_board_number_meta",
            "add_serial_meta",
            "process_mig_devices",
            "use_uuid_for_mig_device",
            "use_slice_for_mig_device",
        }
    )

    #: imports the NVML binding; tests replace it with a fake module
    nvml_loader: Callable[[], Any] = staticmethod(lambda: importlib.import_module("pynvml"))

    def _c(self, name: str) -> int:
        return getattr(self.nv, name, _DEFAULTS[name])

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        exclude_devices = set(self.opt_strlist("exclude_devices"))
        pci_as_id = self.opt_bool("use_pci_info_as_type_id", False)
        pci_tag = self.opt_bool("add_pci_info_tag", False)
        want_uuid = self.opt_bool("add_uuid_meta", False)
        want_board = self.opt_bool("add_board_number_meta", False)
        want_serial = self.opt_bool("add_serial_meta", False)
        self._mig = self.opt_bool("process_mig_devices", False)
        self._mig_uuid = self.opt_bool("use_uuid_for_mig_device", False)
        self._mig_slice = self.opt_bool("use_slice_for_mig_device", False)
        try:
            self.nv = self.nvml_loader()
        except ImportError:
            raise CollectorInitError(
                "nvidia: NVML library not found (install nvidia-ml-py and the NVIDIA driver)"
            ) from None
        err_cls = getattr(self.nv, "NVMLError", Exception)
        try:
            self.nv.nvmlInit()
        except err_cls as e:
            code = getattr(e, "value", None)
            if code in (self._c("NVML_ERROR_LIBRARY_NOT_FOUND"), self._c("NVML_ERROR_DRIVER_NOT_LOADED")):
                raise CollectorInitError(
                    f"nvidia: NVML library not found (install nvidia-ml-py and the NVIDIA driver): {e}"
                ) from None
            raise CollectorInitError(f"nvidia: unable to initialize NVML: {e}") from None
        self._err = err_cls
        try:
            count = self.nv.nvmlDeviceGetCount()
        except err_cls as e:
            self.nv.nvmlShutdown()
            raise CollectorInitError(f"nvidia: unable to get the device count: {e}") from None
        if count == 0:
            self.nv.nvmlShutdown()
            raise CollectorInitError("nvidia: NVML reports no NVIDIA GPU on this node")
        now = self.clock()
        self._gpus: list[_Device] = []
        for i in range(count):
            if str(i) in exclude_devices:
                continue
            try:
                h = self.nv.nvmlDeviceGetHandleByIndex(i)
                pci = self.nv.nvmlDeviceGetPciInfo(h)
            except err_cls as e:
                self.log.error("Init(): unable to get device %d: %s", i, e)
                continue
            pci_id = f"{pci.domain:08X}:{pci.bus:02X}:{pci.device:02X}.0"
            if pci_id in exclude_devices:
                continue
            tags = {"type": "accelerator", "type-id": pci_id if pci_as_id else str(i)}
            if pci_tag and not pci_as_id:
                tags["pci_identifier"] = pci_id
            meta = dict(self.meta)
            for want, key, fn in (
                (want_board, "board_number", "nvmlDeviceGetBoardPartNumber"),
                (want_serial, "serial", "nvmlDeviceGetSerial"),
                (want_uuid, "uuid", "nvmlDeviceGetUUID"),
            ):
                if want:
                    try:
                        meta[key] = _str(getattr(self.nv, fn)(h))
                    except err_cls as e:
                        self.log.error("Init(): unable to get the %s of device %d: %s", key, i, e)
            self._gpus.append(_Device(h, tags, meta, 0, now))
        self.initialized = True

    def close(self) -> None:
        if self.initialized:
            try:
                self.nv.nvmlShutdown()
            except self._err as e:
                self.log.error("Close(): nvmlShutdown failed: %s", e)
        super().close()

    # ----------------------------------------------------------------- reading

    def _call(self, fn: str, *args: Any) -> Any:
        """NVML call; raises self._err on failure (AttributeError for functions missing in old bindings)."""
        f = getattr(self.nv, fn, None)
        if f is None:
            raise self._err(self._c("NVML_ERROR_NOT_SUPPORTED"))
        return f(*args)

    def read(self, interval: float, emit: Emit) -> None:
        for i, dev in enumerate(self._gpus):
            self._read_device(dev, emit)
            if self._mig:
                for mig in self._mig_devices(dev, i):
                    self._read_device(mig, emit)

    def _mig_devices(self, dev: _Device, i: int) -> Iterator[_Device]:
        err = self._err
        try:
            current = self._call("nvmlDeviceGetMigMode", dev.handle)[0]
            if current == self._c("NVML_DEVICE_MIG_DISABLE"):
                return
            n = self._call("nvmlDeviceGetMaxMigDeviceCount", dev.handle)
        except err:
            return
        for j in range(n):
            try:
                mh = self._call("nvmlDeviceGetMigDeviceHandleByIndex", dev.handle, j)
            except err:
                continue
            tags = {**dev.tags, "stype": "mig"}
            if self._mig_uuid:
                try:
                    tags["stype-id"] = _str(self._call("nvmlDeviceGetUUID", mh))
                except err as e:
                    self.log.error("Read(): unable to get the UUID of MIG device %d of GPU %d: %s", j, i, e)
            elif self._mig_slice:
                try:
                    parent = _str(self._call("nvmlDeviceGetName", dev.handle))
                    name = _str(self._call("nvmlDeviceGetName", mh))
                    tags["stype-id"] = name.replace(parent, "").replace("MIG", "").strip()
                except err:
                    pass
            tags.setdefault("stype-id", str(j))
            meta = dict(dev.meta)
            if "uuid" in meta and not self._mig_uuid:
                try:
                    meta["uuid"] = _str(self._call("nvmlDeviceGetUUID", mh))
                except err:
                    pass
            yield _Device(mh, tags, meta)

    def _read_device(self, dev: _Device, emit: Emit) -> None:
        ex = self.exclude
        err = self._err
        tags, meta = dev.tags, dev.meta
        h = dev.handle

        def send(name: str, value: Any, unit: str | None = None, t: int | None = None, **extra: str) -> None:
            m = metric(
                name,
                {**tags, **extra} if extra else tags,
                {**meta, "unit": unit} if unit else meta,
                value,
                t or self.clock(),
            )
            if m is not None:
                emit(m)

        def attempt(fn: Callable[[], None]) -> None:
            try:
                fn()
            except err as e:
                self.log.debug("Read(): %s failed for %s: %s", fn.__name__, tags.get("type-id"), e)

        try:
            is_mig = bool(_val(self._call("nvmlDeviceIsMigDeviceHandle", h)))
        except err:
            is_mig = False

        def memory() -> None:
            if {"nv_fb_mem_total", "nv_fb_mem_used"} <= ex:
                return
            mi = self._call("nvmlDeviceGetMemoryInfo", h)
            if "nv_fb_mem_total" not in ex:
                send("nv_fb_mem_total", mi.total / MIB, "MByte")
            if "nv_fb_mem_used" not in ex:
                send("nv_fb_mem_used", mi.used / MIB, "MByte")

        def utilization() -> None:
            if is_mig or {"nv_util", "nv_mem_util"} <= ex:
                return
            u = self._call("nvmlDeviceGetUtilizationRates", h)
            if "nv_util" not in ex:
                send("nv_util", float(u.gpu), "%")
            if "nv_mem_util" not in ex:
                send("nv_mem_util", float(u.memory), "%")

        def temperature() -> None:
            if "nv_temp" not in ex:
                t = self._call("nvmlDeviceGetTemperature", h, self._c("NVML_TEMPERATURE_GPU"))
                send("nv_temp", float(t), "degC")

        def fan() -> None:
            if "nv_fan" not in ex:
                send("nv_fan", float(self._call("nvmlDeviceGetFanSpeed", h)), "%")

        def ecc_mode() -> None:
            if "nv_ecc_mode" in ex:
                return
            try:
                pending = self._call("nvmlDeviceGetEccMode", h)[1]
            except err as e:
                if getattr(e, "value", None) == self._c("NVML_ERROR_NOT_SUPPORTED"):
                    send("nv_ecc_mode", "N/A")
                return
            if pending == self._c("NVML_FEATURE_DISABLED"):
                send("nv_ecc_mode", "OFF")
            elif pending == self._c("NVML_FEATURE_ENABLED"):
                send("nv_ecc_mode", "ON")
            else:
                send("nv_ecc_mode", "UNKNOWN")

        def perf_state() -> None:
            if "nv_perf_state" not in ex:
                send("nv_perf_state", f"P{int(self._call('nvmlDeviceGetPerformanceState', h))}")

        def power_usage() -> None:
            if "nv_power_usage" in ex:
                return
            if self._call("nvmlDeviceGetPowerManagementMode", h) == self._c("NVML_FEATURE_ENABLED"):
                send("nv_power_usage", self._call("nvmlDeviceGetPowerUsage", h) / 1000, "watts")

        def energy() -> None:
            # upstream: all three energy metrics are skipped as soon as one of them is excluded
            if any(m in ex for m in ENERGY_METRICS):
                return
            now = self.clock()
            if self._call("nvmlDeviceGetPowerManagementMode", h) != self._c("NVML_FEATURE_ENABLED"):
                return
            e = int(self._call("nvmlDeviceGetTotalEnergyConsumption", h))  # mJ
            if dev.last_energy and e >= dev.last_energy:
                joules = (e - dev.last_energy) // 1000
                send("nv_energy", UInt(joules), "Joules", now)
                secs = int((now - dev.last_energy_time) / 1e9)
                if secs > 0:
                    send("nv_average_power", UInt(joules // secs), "watts", now)
            send("nv_energy_abs", UInt(e // 1000), "Joules", now)
            dev.last_energy = e
            dev.last_energy_time = now

        def clocks() -> None:
            for table, fn in ((CLOCKS, "nvmlDeviceGetClockInfo"), (MAX_CLOCKS, "nvmlDeviceGetMaxClockInfo")):
                for name, const in table:
                    if name not in ex:
                        try:
                            send(name, float(self._call(fn, h, self._c(const))), "MHz")
                        except err:
                            pass

        def ecc_errors() -> None:
            for name, const in (
                ("nv_ecc_uncorrected_error", "NVML_MEMORY_ERROR_TYPE_UNCORRECTED"),
                ("nv_ecc_corrected_error", "NVML_MEMORY_ERROR_TYPE_CORRECTED"),
            ):
                if name not in ex:
                    try:
                        n = self._call(
                            "nvmlDeviceGetTotalEccErrors", h, self._c(const), self._c("NVML_AGGREGATE_ECC")
                        )
                        send(name, float(n))
                    except err:
                        pass

        def power_limit() -> None:
            if "nv_power_max_limit" not in ex:
                send("nv_power_max_limit", self._call("nvmlDeviceGetPowerManagementLimit", h) / 1000, "watts")

        def codec_util() -> None:
            if is_mig:
                return
            for name, fn in (
                ("nv_encoder_util", "nvmlDeviceGetEncoderUtilization"),
                ("nv_decoder_util", "nvmlDeviceGetDecoderUtilization"),
            ):
                if name not in ex:
                    try:
                        send(name, float(self._call(fn, h)[0]), "%")
                    except err:
                        pass

        def remapped_rows() -> None:
            names = (
                "nv_remapped_rows_corrected",
                "nv_remapped_rows_uncorrected",
                "nv_remapped_rows_pending",
                "nv_remapped_rows_failure",
            )
            if set(names) <= ex:
                return
            corrected, uncorrected, pending, failure = self._call("nvmlDeviceGetRemappedRows", h)
            values = (float(corrected), float(uncorrected), 1 if pending else 0, 1 if failure else 0)
            for name, v in zip(names, values, strict=True):
                if name not in ex:
                    send(name, v)

        def bar1() -> None:
            if {"nv_bar1_mem_total", "nv_bar1_mem_used"} <= ex:
                return
            b = self._call("nvmlDeviceGetBAR1MemoryInfo", h)
            if "nv_bar1_mem_total" not in ex:
                send("nv_bar1_mem_total", b.bar1Total / MIB, "MByte")
            if "nv_bar1_mem_used" not in ex:
                send("nv_bar1_mem_used", b.bar1Used / MIB, "MByte")

        def processes() -> None:
            for name, fn in (
                ("nv_compute_processes", "nvmlDeviceGetComputeRunningProcesses"),
                ("nv_graphics_processes", "nvmlDeviceGetGraphicsRunningProcesses"),
            ):
                if name not in ex:
                    try:
                        send(name, len(self._call(fn, h)))
                    except err:
                        pass

        def violations() -> None:
            for name, const in VIOLATIONS:
                if name not in ex:
                    try:
                        v = self._call("nvmlDeviceGetViolationStatus", h, self._c(const))
                        send(name, v.violationTime * 1e-9, "sec")
                    except err:
                        pass

        def nvlink() -> None:
            # MIG instances have no links of their own; upstream would send all-zero sums tagged
            # with both stype=nvlink and the MIG's stype-id
            wanted = [(n, c) for n, c in NVLINK_ERRORS if n not in ex]
            if not wanted or is_mig:
                return
            sums = dict.fromkeys((n for n, _ in wanted), 0)
            for link in range(self._c("NVML_NVLINK_MAX_LINKS")):
                try:
                    state = self._call("nvmlDeviceGetNvLinkState", h, link)
                except err:
                    continue
                if state != self._c("NVML_FEATURE_ENABLED"):
                    continue
                for name, const in wanted:
                    try:
                        n = int(self._call("nvmlDeviceGetNvLinkErrorCounter", h, link, self._c(const)))
                    except err:
                        continue
                    sums[name] += n
                    send(name, UInt(n), None, None, stype="nvlink", **{"stype-id": str(link)})
            for name, total in sums.items():
                send(f"{name}_sum", UInt(total), None, None, stype="nvlink")

        for step in (
            memory,
            utilization,
            temperature,
            fan,
            ecc_mode,
            perf_state,
            power_usage,
            energy,
            clocks,
            ecc_errors,
            power_limit,
            codec_util,
            remapped_rows,
            bar1,
            processes,
            violations,
            nvlink,
        ):
            attempt(step)
