"""Receivers: one module per receivers.json type; `load_all()` imports them all (each registers itself)."""

from __future__ import annotations

import importlib
import pkgutil

from .base import REGISTRY, ReceiveManager, Receiver, ReceiverError, create_receiver, register

__all__ = [
    "REGISTRY",
    "ReceiveManager",
    "Receiver",
    "ReceiverError",
    "create_receiver",
    "register",
    "load_all",
]


def load_all() -> dict[str, type[Receiver]]:
    """Import every receiver module of this package and return the registry."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return REGISTRY
