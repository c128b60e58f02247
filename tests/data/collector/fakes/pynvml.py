"""A test double of the NVML Python binding (`nvidia-ml-py`, module `pynvml`) with two GPUs.

GPU 0 is a data-center GPU (ECC, NVLink, remapped rows, MIG with two instances), GPU 1 a
workstation GPU where several queries are not supported. Function names, argument order,
return shapes and error classes follow nvidia-ml-py; values live in `GPUS` and `MIGS` so tests
can change them between reads (e.g. the energy counter). `INIT_ERROR` makes `nvmlInit` fail.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12

NVML_TEMPERATURE_GPU = 0
NVML_FEATURE_DISABLED = 0
NVML_FEATURE_ENABLED = 1
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_CLOCK_VIDEO = 3
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
NVML_AGGREGATE_ECC = 1
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_NVLINK_MAX_LINKS = 4
NVML_NVLINK_ERROR_DL_REPLAY = 0
NVML_NVLINK_ERROR_DL_RECOVERY = 1
NVML_NVLINK_ERROR_DL_CRC_FLIT = 2
NVML_NVLINK_ERROR_DL_CRC_DATA = 3
NVML_NVLINK_ERROR_DL_ECC_DATA = 4
NVML_PERF_POLICY_POWER = 0
NVML_PERF_POLICY_THERMAL = 1
NVML_PERF_POLICY_SYNC_BOOST = 2
NVML_PERF_POLICY_BOARD_LIMIT = 3
NVML_PERF_POLICY_LOW_UTILIZATION = 4
NVML_PERF_POLICY_RELIABILITY = 5
NVML_PERF_POLICY_TOTAL_APP_CLOCKS = 10
NVML_PERF_POLICY_TOTAL_BASE_CLOCKS = 11

_ERRORS = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
}


class NVMLError(Exception):
    _subclasses: dict[int, type[NVMLError]] = {}

    def __new__(cls, value: int) -> NVMLError:
        sub = NVMLError._subclasses.get(value, cls) if cls is NVMLError else cls
        obj = Exception.__new__(sub)
        obj.value = value
        return obj

    def __init__(self, value: int) -> None:
        self.value = value

    def __str__(self) -> str:
        return _ERRORS.get(self.value, f"Unknown Error {self.value}")


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


class NVMLError_DriverNotLoaded(NVMLError):
    pass


NVMLError._subclasses.update(
    {
        NVML_ERROR_NOT_SUPPORTED: NVMLError_NotSupported,
        NVML_ERROR_LIBRARY_NOT_FOUND: NVMLError_LibraryNotFound,
        NVML_ERROR_DRIVER_NOT_LOADED: NVMLError_DriverNotLoaded,
    }
)

#: set to an error code to make nvmlInit fail
INIT_ERROR: int | None = None
initialized = False
MIB = 1024 * 1024


def _gpus() -> list[dict[str, Any]]:
    return [
        {
            "name": "NVIDIA A100-SXM4-40GB",
            "pci": (0x0000, 0x07, 0x00),
            "uuid": "GPU-11111111-2222-3333-4444-555555555555",
            "serial": "1320221012345",
            "board": "692-2G506-0200-002",
            "memory": (40960 * MIB, 1024 * MIB),
            "bar1": (65536 * MIB, 3 * MIB),
            "util": (87, 45),
            "temp": 54,
            "ecc": (NVML_FEATURE_ENABLED, NVML_FEATURE_ENABLED),
            "pstate": 0,
            "power_mode": NVML_FEATURE_ENABLED,
            "power": 251234,  # mW
            "energy": 1_000_000_000,  # mJ
            "clocks": {
                NVML_CLOCK_GRAPHICS: 1410,
                NVML_CLOCK_SM: 1410,
                NVML_CLOCK_MEM: 1215,
                NVML_CLOCK_VIDEO: 1275,
            },
            "max_clocks": {
                NVML_CLOCK_GRAPHICS: 1410,
                NVML_CLOCK_SM: 1410,
                NVML_CLOCK_MEM: 1215,
                NVML_CLOCK_VIDEO: 1290,
            },
            "ecc_errors": {NVML_MEMORY_ERROR_TYPE_UNCORRECTED: 0, NVML_MEMORY_ERROR_TYPE_CORRECTED: 5},
            "power_limit": 400000,
            "encoder": (0, 167000),
            "decoder": (2, 167000),
            "remapped": (1, 2, 0, 1),
            "compute_procs": 3,
            "graphics_procs": 0,
            "violations": {
                NVML_PERF_POLICY_POWER: 1_500_000_000,
                NVML_PERF_POLICY_THERMAL: 0,
                NVML_PERF_POLICY_SYNC_BOOST: 0,
                NVML_PERF_POLICY_BOARD_LIMIT: 0,
                NVML_PERF_POLICY_LOW_UTILIZATION: 250_000_000_000,
                NVML_PERF_POLICY_RELIABILITY: 0,
                NVML_PERF_POLICY_TOTAL_APP_CLOCKS: 251_500_000_000,
                NVML_PERF_POLICY_TOTAL_BASE_CLOCKS: 2_000_000_000,
            },
            # link → state, {counter: value}; link 1 disabled, link 3 not supported
            "nvlink": {
                0: (
                    NVML_FEATURE_ENABLED,
                    {
                        NVML_NVLINK_ERROR_DL_CRC_DATA: 1,
                        NVML_NVLINK_ERROR_DL_ECC_DATA: 0,
                        NVML_NVLINK_ERROR_DL_REPLAY: 2,
                        NVML_NVLINK_ERROR_DL_RECOVERY: 0,
                        NVML_NVLINK_ERROR_DL_CRC_FLIT: 3,
                    },
                ),
                1: (NVML_FEATURE_DISABLED, {}),
                2: (
                    NVML_FEATURE_ENABLED,
                    {
                        NVML_NVLINK_ERROR_DL_CRC_DATA: 4,
                        NVML_NVLINK_ERROR_DL_ECC_DATA: 0,
                        NVML_NVLINK_ERROR_DL_REPLAY: 5,
                        NVML_NVLINK_ERROR_DL_RECOVERY: 1,
                        NVML_NVLINK_ERROR_DL_CRC_FLIT: 6,
                    },
                ),
            },
            "mig_mode": (NVML_DEVICE_MIG_ENABLE, NVML_DEVICE_MIG_ENABLE),
            "max_mig": 3,  # index 1 is not populated
        },
        {
            "name": "NVIDIA RTX A4000",
            "pci": (0x0000, 0x81, 0x00),
            "uuid": "GPU-66666666-7777-8888-9999-000000000000",
            "serial": "1325021098765",
            "memory": (16376 * MIB, 512 * MIB),
            "bar1": (256 * MIB, 5 * MIB),
            "util": (12, 3),
            "temp": 41,
            "fan": 30,
            "pstate": 8,
            "power_mode": NVML_FEATURE_ENABLED,
            "power": 35500,
            "energy": 50_000_000,
            "clocks": {
                NVML_CLOCK_GRAPHICS: 210,
                NVML_CLOCK_SM: 210,
                NVML_CLOCK_MEM: 405,
                NVML_CLOCK_VIDEO: 555,
            },
            "max_clocks": {
                NVML_CLOCK_GRAPHICS: 2100,
                NVML_CLOCK_SM: 2100,
                NVML_CLOCK_MEM: 7001,
                NVML_CLOCK_VIDEO: 1950,
            },
            "power_limit": 140000,
            "encoder": (0, 167000),
            "decoder": (0, 167000),
            "compute_procs": 0,
            "graphics_procs": 1,
            "violations": {},
            "nvlink": {},
            "mig_mode": None,
        },
    ]


def _migs() -> dict[tuple[int, int], dict[str, Any]]:
    return {
        (0, 0): {
            "name": "NVIDIA A100-SXM4-40GB MIG 1g.5gb",
            "uuid": "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "memory": (4864 * MIB, 13 * MIB),
            "temp": 54,
        },
        (0, 2): {
            "name": "NVIDIA A100-SXM4-40GB MIG 3g.20gb",
            "uuid": "MIG-ffffffff-1111-2222-3333-444444444444",
            "memory": (19968 * MIB, 2048 * MIB),
            "temp": 54,
        },
    }


GPUS = _gpus()
MIGS = _migs()


def reset() -> None:
    """Back to the initial values (tests call it before each use)."""
    global INIT_ERROR, initialized
    GPUS[:] = _gpus()
    MIGS.clear()
    MIGS.update(_migs())
    INIT_ERROR = None
    initialized = False


class _Handle:
    def __init__(self, gpu: int, mig: int | None = None) -> None:
        self.gpu, self.mig = gpu, mig

    @property
    def data(self) -> dict[str, Any]:
        return GPUS[self.gpu] if self.mig is None else MIGS[(self.gpu, self.mig)]


def _get(h: _Handle, key: str) -> Any:
    if not initialized:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    v = h.data.get(key)
    if v is None:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return v


def nvmlInit() -> None:
    global initialized
    if INIT_ERROR is not None:
        raise NVMLError(INIT_ERROR)
    initialized = True


def nvmlShutdown() -> None:
    global initialized
    if not initialized:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    initialized = False


def nvmlDeviceGetCount() -> int:
    if not initialized:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    return len(GPUS)


def nvmlDeviceGetHandleByIndex(i: int) -> _Handle:
    if not 0 <= i < len(GPUS):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return _Handle(i)


def nvmlDeviceGetPciInfo(h: _Handle) -> SimpleNamespace:
    domain, bus, device = _get(h, "pci")
    return SimpleNamespace(
        domain=domain, bus=bus, device=device, busId=f"{domain:08X}:{bus:02X}:{device:02X}.0".encode()
    )


def nvmlDeviceGetName(h: _Handle) -> str:
    return _get(h, "name")


def nvmlDeviceGetUUID(h: _Handle) -> str:
    return _get(h, "uuid")


def nvmlDeviceGetSerial(h: _Handle) -> str:
    return _get(h, "serial")


def nvmlDeviceGetBoardPartNumber(h: _Handle) -> str:
    return _get(h, "board")


def nvmlDeviceIsMigDeviceHandle(h: _Handle) -> int:
    return 1 if h.mig is not None else 0


def nvmlDeviceGetMemoryInfo(h: _Handle) -> SimpleNamespace:
    total, used = _get(h, "memory")
    return SimpleNamespace(total=total, used=used, free=total - used)


def nvmlDeviceGetBAR1MemoryInfo(h: _Handle) -> SimpleNamespace:
    total, used = _get(h, "bar1")
    return SimpleNamespace(bar1Total=total, bar1Used=used, bar1Free=total - used)


def nvmlDeviceGetUtilizationRates(h: _Handle) -> SimpleNamespace:
    gpu, mem = _get(h, "util")
    return SimpleNamespace(gpu=gpu, memory=mem)


def nvmlDeviceGetTemperature(h: _Handle, sensor: int) -> int:
    if sensor != NVML_TEMPERATURE_GPU:
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return _get(h, "temp")


def nvmlDeviceGetFanSpeed(h: _Handle) -> int:
    return _get(h, "fan")


def nvmlDeviceGetEccMode(h: _Handle) -> list[int]:
    return list(_get(h, "ecc"))


def nvmlDeviceGetPerformanceState(h: _Handle) -> int:
    return _get(h, "pstate")


def nvmlDeviceGetPowerManagementMode(h: _Handle) -> int:
    return _get(h, "power_mode")


def nvmlDeviceGetPowerUsage(h: _Handle) -> int:
    return _get(h, "power")


def nvmlDeviceGetTotalEnergyConsumption(h: _Handle) -> int:
    return _get(h, "energy")


def nvmlDeviceGetClockInfo(h: _Handle, clock: int) -> int:
    return _get(h, "clocks")[clock]


def nvmlDeviceGetMaxClockInfo(h: _Handle, clock: int) -> int:
    return _get(h, "max_clocks")[clock]


def nvmlDeviceGetTotalEccErrors(h: _Handle, error_type: int, counter_type: int) -> int:
    if counter_type != NVML_AGGREGATE_ECC:
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return _get(h, "ecc_errors")[error_type]


def nvmlDeviceGetPowerManagementLimit(h: _Handle) -> int:
    return _get(h, "power_limit")


def nvmlDeviceGetEncoderUtilization(h: _Handle) -> list[int]:
    return list(_get(h, "encoder"))


def nvmlDeviceGetDecoderUtilization(h: _Handle) -> list[int]:
    return list(_get(h, "decoder"))


def nvmlDeviceGetRemappedRows(h: _Handle) -> tuple[int, int, int, int]:
    return tuple(_get(h, "remapped"))


def nvmlDeviceGetComputeRunningProcesses(h: _Handle) -> list[SimpleNamespace]:
    return [SimpleNamespace(pid=1000 + i, usedGpuMemory=MIB) for i in range(_get(h, "compute_procs"))]


def nvmlDeviceGetGraphicsRunningProcesses(h: _Handle) -> list[SimpleNamespace]:
    return [SimpleNamespace(pid=2000 + i, usedGpuMemory=MIB) for i in range(_get(h, "graphics_procs"))]


def nvmlDeviceGetViolationStatus(h: _Handle, policy: int) -> SimpleNamespace:
    v = _get(h, "violations").get(policy)
    if v is None:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return SimpleNamespace(referenceTime=1_700_000_000_000_000, violationTime=v)


def nvmlDeviceGetNvLinkState(h: _Handle, link: int) -> int:
    v = _get(h, "nvlink").get(link)
    if v is None:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return v[0]


def nvmlDeviceGetNvLinkErrorCounter(h: _Handle, link: int, counter: int) -> int:
    v = _get(h, "nvlink").get(link)
    if v is None or counter not in v[1]:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return v[1][counter]


def nvmlDeviceGetMigMode(h: _Handle) -> list[int]:
    return list(_get(h, "mig_mode"))


def nvmlDeviceGetMaxMigDeviceCount(h: _Handle) -> int:
    return _get(h, "max_mig")


def nvmlDeviceGetMigDeviceHandleByIndex(h: _Handle, index: int) -> _Handle:
    if (h.gpu, index) not in MIGS:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return _Handle(h.gpu, index)
