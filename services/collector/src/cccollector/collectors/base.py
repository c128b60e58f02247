"""What every collector implements, and the registry the collector manager reads.

A collector is created once per `collectors.json` entry: `init(config)` validates its options
(strict: unknown keys fail, except where the spec says otherwise) and checks that its sources
exist, raising `CollectorInitError` with one clear message otherwise; `read(interval, emit)`
is called on every tick and calls `emit(message)` for each produced CCMessage; `close()` frees
resources. Blocking file reads happen in `read`, which the manager runs in a worker thread
(`asyncio.to_thread`), so collectors are plain synchronous code. Collectors that need a
subprocess use `self.run_command(argv, timeout)`.

Testability: `root` (default "/") prefixes every absolute path the collector reads
(`self.path("/proc/stat")`), and `which(name)` finds programs on PATH, so tests run collectors
against fixture trees and fake programs.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from cccommon.message import CCMessage, MessageError, new_message

Emit = Callable[[CCMessage], None]


class CollectorInitError(Exception):
    """The collector cannot run here (bad option, missing file, program or library)."""


class MetricCollector:
    #: key in collectors.json
    type: ClassVar[str] = ""
    #: upstream class name, used as meta `source`
    source: ClassVar[str] = ""
    #: meta `group`
    group: ClassVar[str] = ""
    #: serial collectors run one after another after the parallel ones (likwid, nvidia, rocm_smi)
    parallel: ClassVar[bool] = True
    #: reads only /proc files, which never block: run on the event loop, not in a worker thread
    #: (a thread hand-off costs more CPU than such a read)
    inline: ClassVar[bool] = False
    #: option keys accepted in strict mode (besides those handled by the base class)
    options: ClassVar[frozenset[str]] = frozenset()
    #: False for collectors that ignore unknown options (cpufreq_cpuinfo)
    strict: ClassVar[bool] = True

    def __init__(self, root: str = "/", env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.env = dict(os.environ if env is None else env)
        self.config: dict[str, Any] = {}
        self.exclude: set[str] = set()
        self.initialized = False

    # ----------------------------------------------------------------- helpers for subclasses

    def path(self, p: str) -> str:
        """`p` below the collector's filesystem root."""
        if self.root in ("", "/"):
            return p
        return os.path.join(self.root, p.lstrip("/"))

    def which(self, name: str) -> str | None:
        return shutil.which(name, path=self.env.get("PATH"))

    def run_command(self, argv: list[str], timeout: float = 10.0) -> str:
        """stdout of a program; raises RuntimeError with the program's stderr on failure."""
        try:
            r = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, env=self.env, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RuntimeError(f"{argv[0]}: {e}") from e
        if r.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited with {r.returncode}: {r.stderr.strip()[:200]}")
        return r.stdout

    def check_options(self, config: Mapping[str, Any]) -> None:
        """Strict option decoding: unknown keys fail the collector (spec §6.0)."""
        if not isinstance(config, Mapping):
            raise CollectorInitError(f"{self.type}: options must be a JSON object")
        if self.strict:
            allowed = self.options | {"exclude_metrics"}
            unknown = sorted(set(config) - allowed)
            if unknown:
                raise CollectorInitError(f"{self.type}: unknown option(s) {', '.join(unknown)}")
        ex = config.get("exclude_metrics") or []
        if not isinstance(ex, list) or not all(isinstance(x, str) for x in ex):
            raise CollectorInitError(f"{self.type}: exclude_metrics must be a list of strings")
        self.exclude = set(ex)
        self.config = dict(config)

    def message(
        self,
        name: str,
        tags: Mapping[str, str],
        value: Any,
        t_ns: int | None = None,
        unit: str | None = None,
        unit_as_tag: bool = False,
    ) -> CCMessage | None:
        """A metric with meta source/group (and unit as meta, or as tag for cpustat)."""
        tg = dict(tags)
        meta = {"source": self.source, "group": self.group}
        if unit is not None:
            if unit_as_tag:
                tg["unit"] = unit
            else:
                meta["unit"] = unit
        cls = value.__class__
        if (cls is float and math.isfinite(value)) or cls is int:
            # the common case needs none of new_message's checks: names and keys come from code
            return CCMessage(name, tg, meta, {"value": value}, t_ns or time.time_ns())
        try:
            return new_message(name, tg, meta, {"value": value}, t_ns or time.time_ns())
        except MessageError:
            return None

    # ----------------------------------------------------------------- the interface

    def init(self, config: Mapping[str, Any]) -> None:
        """Validate options and sources; raise CollectorInitError. Subclasses call check_options."""
        self.check_options(config)
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.initialized = False


#: collectors.json type → class; filled by `register`
REGISTRY: dict[str, type[MetricCollector]] = {}


def register(cls: type[MetricCollector]) -> type[MetricCollector]:
    REGISTRY[cls.type] = cls
    return cls
