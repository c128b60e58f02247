"""Sinks: one module per sinks.json type; importing this package registers them all.

`SinkManager(config)` creates the sinks of a `sinks.json` mapping, `create_sink(name, config)`
a single one; see `base` for the interface every sink implements.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import (
    REGISTRY,
    Sink,
    SinkError,
    SinkManager,
    SinkOptions,
    create_sink,
    register,
    set_processor_factory,
)

__all__ = [
    "REGISTRY",
    "Sink",
    "SinkError",
    "SinkManager",
    "SinkOptions",
    "create_sink",
    "register",
    "set_processor_factory",
    "load_all",
]


def load_all() -> dict[str, type[Sink]]:
    """Import every sink module of this package (each registers itself) and return the registry."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return REGISTRY
