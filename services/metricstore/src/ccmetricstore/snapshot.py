"""The format-neutral picture of one host's data that checkpoints, WAL replay and restore share."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SeriesSnapshot:
    """One metric on one level: `data[k]` is the sample at `start + k*frequency` (NaN = missing)."""

    frequency: int
    start: int
    data: np.ndarray


@dataclass
class Snapshot:
    """A level with its metrics and child levels; the root snapshot is a host."""

    metrics: dict[str, SeriesSnapshot] = field(default_factory=dict)
    children: dict[str, Snapshot] = field(default_factory=dict)
    from_: int = 0
    to: int = 0

    def is_empty(self) -> bool:
        return not self.metrics and all(c.is_empty() for c in self.children.values())

    def value_count(self) -> int:
        return sum(len(s.data) for s in self.metrics.values()) + sum(
            c.value_count() for c in self.children.values()
        )
