"""rocm_smi (spec §6.26): AMD GPU metrics from the GPU metrics table; serial.

Two sources of the same table: the ROCm SMI library (`librocm_smi64.so` through ctypes,
`rsmi_dev_gpu_metrics_info_get`), and, when ROCm is not installed, the amdgpu driver's
`/sys/class/drm/card<N>/device/gpu_metrics` file. The library returns its own structure whose
leading part has the layout of the kernel's `gpu_metrics_v1_1`..`v1_3`; the sysfs file carries the
kernel table itself (format 1, content revisions 0–3 understood here).
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cccommon.message import UInt

from ._cmd import metric
from ._files import FileCollector
from .base import CollectorInitError, Emit, register

NUM_HBM_INSTANCES = 4

#: table fields in the kernel's gpu_metrics_v1_1 order (also the ROCm SMI structure's prefix)
_V1_1_FIELDS = (
    "structure_size format_revision content_revision "
    "temperature_edge temperature_hotspot temperature_mem temperature_vrgfx temperature_vrsoc "
    "temperature_vrmem average_gfx_activity average_umc_activity average_mm_activity "
    "average_socket_power energy_accumulator system_clock_counter "
    "average_gfxclk_frequency average_socclk_frequency average_uclk_frequency "
    "average_vclk0_frequency average_dclk0_frequency average_vclk1_frequency average_dclk1_frequency "
    "current_gfxclk current_socclk current_uclk current_vclk0 current_dclk0 current_vclk1 current_dclk1 "
    "throttle_status current_fan_speed pcie_link_width pcie_link_speed padding "
    "gfx_activity_acc mem_activity_acc"
).split()
_V1_1 = struct.Struct("<HBB6H3HHQQ7H7HIHHHHII4H")  # natural alignment needs no padding here (96 bytes)
_V1_0_FIELDS = (
    "structure_size format_revision content_revision system_clock_counter "
    "temperature_edge temperature_hotspot temperature_mem temperature_vrgfx temperature_vrsoc "
    "temperature_vrmem average_gfx_activity average_umc_activity average_mm_activity "
    "average_socket_power energy_accumulator "
    "average_gfxclk_frequency average_socclk_frequency average_uclk_frequency "
    "average_vclk0_frequency average_dclk0_frequency average_vclk1_frequency average_dclk1_frequency "
    "current_gfxclk current_socclk current_uclk current_vclk0 current_dclk0 current_vclk1 current_dclk1 "
    "throttle_status current_fan_speed pcie_link_width pcie_link_speed"
).split()
_V1_0 = struct.Struct("<HBB4xQ6H3HHI7H7HIHBB")

#: metric → table field
METRICS = (
    ("rocm_gfx_util", "average_gfx_activity"),
    ("rocm_umc_util", "average_umc_activity"),
    ("rocm_mm_util", "average_mm_activity"),
    ("rocm_avg_power", "average_socket_power"),
    ("rocm_temp_mem", "temperature_mem"),
    ("rocm_temp_hotspot", "temperature_hotspot"),
    ("rocm_temp_edge", "temperature_edge"),
    ("rocm_temp_vrgfx", "temperature_vrgfx"),
    ("rocm_temp_vrsoc", "temperature_vrsoc"),
    ("rocm_temp_vrmem", "temperature_vrmem"),
    ("rocm_gfx_clock", "average_gfxclk_frequency"),
    ("rocm_soc_clock", "average_socclk_frequency"),
    ("rocm_u_clock", "average_uclk_frequency"),
    ("rocm_v0_clock", "average_vclk0_frequency"),
    ("rocm_v1_clock", "average_vclk1_frequency"),
    ("rocm_d0_clock", "average_dclk0_frequency"),
    ("rocm_d1_clock", "average_dclk1_frequency"),
)


def parse_gpu_metrics(blob: bytes, library_layout: bool = False) -> dict[str, Any] | None:
    """Fields of a GPU metrics table (None if the format is not understood).

    `library_layout`: the blob is ROCm SMI's `rsmi_gpu_metrics_t`, which always starts with the
    v1_1 layout whatever revision its header reports.
    """
    if len(blob) < 4:
        return None
    _, fmt, content = struct.unpack_from("<HBB", blob)
    if library_layout or (fmt == 1 and 1 <= content <= 3):
        if len(blob) < _V1_1.size:
            return None
        vals = _V1_1.unpack_from(blob)
        out = dict(zip(_V1_1_FIELDS, vals, strict=False))
        out["temperature_hbm"] = list(vals[len(_V1_1_FIELDS) :])
        return out
    if fmt == 1 and content == 0 and len(blob) >= _V1_0.size:
        return dict(zip(_V1_0_FIELDS, _V1_0.unpack_from(blob), strict=True))
    return None


def pci_id_from_bdf(bdfid: int) -> str:
    """ROCm SMI's BDF id (domain << 32 | bus << 8 | device << 3 | function) as `%08X:%02X:%02X.%X`."""
    return f"{(bdfid >> 32) & 0xFFFFFFFF:08X}:{(bdfid >> 8) & 0xFF:02X}:{(bdfid >> 3) & 0x1F:02X}.{bdfid & 0x7:X}"


@dataclass
class GpuSource:
    """One GPU: its index, PCI id, serial (if known) and how to read its metrics table."""

    index: int
    pci_id: str
    serial: str | None
    read: Callable[[], bytes]
    library_layout: bool


class RocmSmiLibrary:
    """The few ROCm SMI calls the collector needs, through ctypes."""

    NAMES = ("librocm_smi64.so", "librocm_smi64.so.7", "librocm_smi64.so.6", "/opt/rocm/lib/librocm_smi64.so")
    BUFSIZE = 64 * 1024  # larger than any rsmi_gpu_metrics_t version

    def __init__(self) -> None:
        errors = []
        for name in self.NAMES:
            try:
                self.lib = ctypes.CDLL(name)
                break
            except OSError as e:
                errors.append(str(e))
        else:
            raise OSError("; ".join(errors))
        if self.lib.rsmi_init(ctypes.c_uint64(0)) != 0:
            raise OSError("rsmi_init failed")

    def sources(self) -> list[GpuSource]:
        n = ctypes.c_uint32()
        if self.lib.rsmi_num_monitor_devices(ctypes.byref(n)) != 0:
            raise OSError("failed to get the number of GPUs from the ROCm SMI library")
        out = []
        for i in range(n.value):
            bdf = ctypes.c_uint64()
            if self.lib.rsmi_dev_pci_id_get(ctypes.c_uint32(i), ctypes.byref(bdf)) != 0:
                raise OSError(f"failed to get PCI information for GPU {i}")
            buf = ctypes.create_string_buffer(64)
            serial = None
            if self.lib.rsmi_dev_serial_number_get(ctypes.c_uint32(i), buf, ctypes.c_uint32(64)) == 0:
                serial = buf.value.decode("utf-8", "replace")
            out.append(GpuSource(i, pci_id_from_bdf(bdf.value), serial, self._reader(i), True))
        return out

    def _reader(self, i: int) -> Callable[[], bytes]:
        def read() -> bytes:
            buf = ctypes.create_string_buffer(self.BUFSIZE)
            ret = self.lib.rsmi_dev_gpu_metrics_info_get(ctypes.c_uint32(i), buf)
            if ret != 0:
                raise OSError(f"rsmi_dev_gpu_metrics_info_get returned status {ret}")
            return buf.raw

        return read

    def close(self) -> None:
        self.lib.rsmi_shut_down()


def sysfs_sources(root: str) -> list[GpuSource]:
    """AMD GPUs (PCI vendor 0x1002) with a gpu_metrics file below `<root>/sys/class/drm`."""
    base = os.path.join(root, "sys/class/drm")
    try:
        cards = sorted((int(m.group(1)), n) for n in os.listdir(base) if (m := re.fullmatch(r"card(\d+)", n)))
    except OSError:
        return []
    out = []
    for _, card in cards:
        dev = os.path.join(base, card, "device")
        try:
            with open(os.path.join(dev, "vendor")) as f:
                if int(f.read().strip(), 16) != 0x1002:
                    continue
        except (OSError, ValueError):
            continue
        metrics_file = os.path.join(dev, "gpu_metrics")
        if not os.path.exists(metrics_file):
            continue
        addr = os.path.basename(os.path.realpath(dev))  # 0000:c1:00.0
        m = re.fullmatch(r"([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-9a-fA-F])", addr)
        pci = f"{int(m[1], 16):08X}:{int(m[2], 16):02X}:{int(m[3], 16):02X}.{int(m[4], 16):X}" if m else addr
        try:
            with open(os.path.join(dev, "serial_number")) as f:
                serial: str | None = f.read().strip()
        except OSError:
            serial = None

        def read(path: str = metrics_file) -> bytes:
            with open(path, "rb") as f:
                return f.read()

        out.append(GpuSource(len(out), pci, serial, read, False))
    return out


@dataclass
class _Device:
    src: GpuSource
    tags: dict[str, str]
    meta: dict[str, str]


@register
class RocmSmiCollector(FileCollector):
    type = "rocm_smi"
    source = "RocmSmiCollector"
    group = "AMD"
    parallel = False  # upstream never sets the parallel flag
    options = frozenset({"exclude_devices", "use_pci_info_as_type_id", "add_pci_info_tag", "add_serial_meta"})

    #: opens the ROCm SMI library; tests replace it
    library_loader: Callable[[], Any] = RocmSmiLibrary

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        exclude_devices = set(self.opt_strlist("exclude_devices"))
        pci_as_id = self.opt_bool("use_pci_info_as_type_id", False)
        pci_tag = self.opt_bool("add_pci_info_tag", False)
        want_serial = self.opt_bool("add_serial_meta", False)
        self._lib: Any = None
        try:
            self._lib = self.library_loader()
        except (OSError, AttributeError) as e:
            self.log.debug("Init(): ROCm SMI library not usable (%s), trying sysfs gpu_metrics", e)
        if self._lib is not None:
            try:
                sources = self._lib.sources()
            except OSError as e:
                raise CollectorInitError(f"rocm_smi: {e}") from None
        else:
            sources = sysfs_sources(self.root)
            if not sources:
                raise CollectorInitError(
                    "rocm_smi: ROCm SMI library (librocm_smi64.so) not found and no AMD GPU with "
                    "gpu_metrics below /sys/class/drm (install ROCm and the amdgpu driver)"
                )
        self._devices: list[_Device] = []
        for src in sources:
            if str(src.index) in exclude_devices or src.pci_id in exclude_devices:
                continue
            tags = {"type": "accelerator", "type-id": str(src.index)}
            if pci_as_id:
                tags["type-id"] = src.pci_id
            elif pci_tag:
                tags["pci_identifier"] = src.pci_id
            meta = dict(self.meta)
            if want_serial:
                if src.serial:
                    meta["serial"] = src.serial
                else:
                    self.log.error("Init(): unable to get the serial number of device %d", src.index)
            self._devices.append(_Device(src, tags, meta))
        self._metrics = [(n, f) for n, f in METRICS if n not in self.exclude]
        self._hbm = "rocm_temp_hbm" not in self.exclude
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        now = self.clock()
        for dev in self._devices:
            try:
                table = parse_gpu_metrics(dev.src.read(), dev.src.library_layout)
            except OSError as e:
                self.log.error("Read(): unable to get metrics for device %d: %s", dev.src.index, e)
                continue
            if table is None:
                self.log.error("Read(): GPU metrics table format of device %d not supported", dev.src.index)
                continue
            for name, fieldname in self._metrics:
                m = metric(name, dev.tags, dev.meta, UInt(table[fieldname]), now)
                if m is not None:
                    emit(m)
            if self._hbm:
                for i, v in enumerate(table.get("temperature_hbm", ())):
                    tags = {**dev.tags, "stype": "device", "stype-id": str(i)}
                    m = metric("rocm_temp_hbm", tags, dev.meta, UInt(v), now)
                    if m is not None:
                        emit(m)

    def close(self) -> None:
        if self._lib is not None:
            try:
                self._lib.close()
            except OSError as e:
                self.log.error("Close(): %s", e)
        super().close()
