"""The running server's shared objects, handed to the REST handlers, workers and (later) web pages."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .archiver import Archiver
    from .auth import AuthService
    from .clusters import ClusterRegistry
    from .config import BackendConfig
    from .env import Env
    from .metricdata import MetricDataDispatcher
    from .nodestate import NodeStateService
    from .repository.base import Repository

__all__ = ["BackendContext"]


@dataclass
class BackendContext:
    """Everything a request handler may need; built once by `server.build_context`."""

    config: BackendConfig
    env: Env
    repo: Repository
    archive: Any
    """The job archive backend (file, S3 or SQLite); its methods are synchronous (use to_thread)."""
    registry: ClusterRegistry
    dispatcher: MetricDataDispatcher
    archiver: Archiver | None = None
    nodestates: NodeStateService | None = None
    auth: AuthService | None = None
    start_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serialises the duplicate check and insert of start_job (upstream's process-wide lock)."""
    extra: dict[str, Any] = field(default_factory=dict)
