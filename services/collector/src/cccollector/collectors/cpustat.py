"""cpustat (spec §6.1): CPU time shares per hardware thread and node from /proc/stat."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cccommon.message import CCMessage

from ._files import FileCollector, read_text
from .base import CollectorInitError, Emit, register

STAT_FILE = "/proc/stat"

#: /proc/stat columns 1-10 of the cpu lines, in file order
COLUMNS = (
    "cpu_user",
    "cpu_nice",
    "cpu_system",
    "cpu_idle",
    "cpu_iowait",
    "cpu_irq",
    "cpu_softirq",
    "cpu_steal",
    "cpu_guest",
    "cpu_guest_nice",
)


def _cpu_lines(text: str) -> list[str]:
    """The `cpu…` lines, which the kernel writes first (the long `intr` line is not split)."""
    end = text.find("\nintr")
    if end < 0:
        end = len(text)
    out = []
    for line in text[:end].split("\n"):
        if not line.startswith("cpu"):
            break
        out.append(line)
    return out


def _counters(fields: list[str]) -> list[int]:
    v = [int(x) for x in fields[1:11]]
    if len(v) < 10:  # kernels before guest/guest_nice existed
        v.extend([0] * (10 - len(v)))
    return v


@register
class CpustatCollector(FileCollector):
    type = "cpustat"
    inline = True
    source = "CpustatCollector"
    group = "CPU"

    def init(self, config: Mapping[str, Any]) -> None:
        self.check_options(config)
        self._cols = [(i, n) for i, n in enumerate(COLUMNS) if n not in self.exclude]
        self._send_used = "cpu_idle" not in self.exclude
        self._send_num = "num_cpus" not in self.exclude
        self._clk = os.sysconf("SC_CLK_TCK")
        self._file = self.path(STAT_FILE)
        text = self.read_source(STAT_FILE)
        now = self.clock()
        self._old: dict[str, list[int]] = {}
        self._tags: dict[str, dict[str, str]] = {}
        for line in _cpu_lines(text):
            f = line.split()
            key = f[0]
            try:
                self._old[key] = _counters(f)
                if key == "cpu":
                    self._tags[key] = {"type": "node", "unit": "Percent"}
                else:
                    self._tags[key] = {"type": "hwthread", "type-id": str(int(key[3:])), "unit": "Percent"}
            except ValueError:
                continue
        if "cpu" not in self._old:
            raise CollectorInitError(f"cpustat: no 'cpu' line in {self._file}")
        self._nodetags = {"type": "node"}
        self._last = now
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        try:
            text = read_text(self._file)
        except OSError as e:
            self.log.error("Read(): failed to read %s: %s", self._file, e)
            return
        now = self.clock()
        dt = (now - self._last) / 1e9
        self._last = now
        clk = self._clk
        cols = self._cols
        meta = self.meta
        olds = self._old
        tagmap = self._tags
        send_used = self._send_used
        ncpu = 0
        for line in _cpu_lines(text):
            f = line.split()
            key = f[0]
            if key != "cpu":
                ncpu += 1
            old = olds.get(key)
            if old is None:  # hot-plugged after start: no baseline (upstream panics)
                continue
            try:
                new = _counters(f)
            except ValueError:
                continue
            olds[key] = new
            if dt <= 0:
                continue
            tags = tagmap[key]
            total = 0.0
            idle = 0.0
            for i, name in cols:
                v = (new[i] - old[i]) / dt / clk
                total += v
                if i == 3:
                    idle = v
                emit(CCMessage(name, tags.copy(), meta.copy(), {"value": v * 100}, now))
            if send_used:
                emit(CCMessage("cpu_used", tags.copy(), meta.copy(), {"value": (total - idle) * 100}, now))
        if self._send_num:
            emit(CCMessage("num_cpus", self._nodetags.copy(), meta.copy(), {"value": ncpu}, now))
