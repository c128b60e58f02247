"""Collectors: one module per collectors.json type; importing this package registers them all."""

from __future__ import annotations

import importlib
import pkgutil

from .base import REGISTRY, CollectorInitError, MetricCollector, register

__all__ = ["REGISTRY", "CollectorInitError", "MetricCollector", "register", "load_all"]


def load_all() -> dict[str, type[MetricCollector]]:
    """Import every collector module of this package (each registers itself) and return the registry."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in ("base",) and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return REGISTRY
