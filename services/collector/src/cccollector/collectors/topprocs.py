"""topprocs (spec §6.18): the command names of the processes using the most CPU, as string metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._cmd import CommandCollector
from .base import CollectorInitError, Emit, register

MAX_NUM_PROCS = 10
DEFAULT_NUM_PROCS = 2
PS_ARGS = ["-Ao", "comm", "--sort=-pcpu"]


@register
class TopProcsCollector(CommandCollector):
    type = "topprocs"
    source = "TopProcsCollector"
    group = "TopProcs"
    options = frozenset({"num_procs"})

    def init(self, config: Mapping[str, Any] | None) -> None:
        # upstream quirk kept: the default applies only when no options are given at all;
        # `"topprocs": {}` leaves num_procs at 0 and fails
        self.check_options(config if config is not None else {"num_procs": DEFAULT_NUM_PROCS})
        n = self.config.get("num_procs", 0)
        if isinstance(n, bool) or not isinstance(n, int):
            raise CollectorInitError("topprocs: num_procs must be an integer")
        if not 1 <= n <= MAX_NUM_PROCS:
            raise CollectorInitError(
                f"topprocs: num_procs option must be set in 'topprocs' config (range: 1-{MAX_NUM_PROCS})"
            )
        self._n = n
        self._ps = self.find_program("ps")
        try:
            self.output([self._ps, *PS_ARGS])
        except RuntimeError as e:
            raise CollectorInitError(f"topprocs: cannot run ps: {e}") from None
        self._tags = {"type": "node"}
        self.initialized = True

    def read(self, interval: float, emit: Emit) -> None:
        try:
            out = self.output([self._ps, *PS_ARGS])
        except RuntimeError as e:
            self.log.error("Read(): %s", e)
            return
        now = self.clock()
        lines = out.split("\n")[1:]  # the first line is the header (COMMAND)
        for i, line in enumerate(lines[: self._n], 1):
            name = line.strip()
            if name:
                m = self.message(f"topproc{i}", self._tags, name, now)
                if m is not None:
                    emit(m)
