"""Spillover, as its users import it: the handler API for apps, and the client for callers.

    from spillover import batch, stream, Body, Context    # writing an app
    client = spillover.Client()                           # calling one

``import spillover`` stays light (a replica imports it with every app): the client, which
needs httpx2, is imported on first use of its names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from regional.batching import batch
from regional.handler import Context
from regional.streams import Body, stream
from spillover.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    RateLimited,
    SpilloverError,
    StorageFull,
    TaskCancelled,
    TaskFailed,
    Timeout,
    Unauthorized,
    Unavailable,
)

if TYPE_CHECKING:
    from spillover.aio import AsyncClient, AsyncTask
    from spillover.client import Client, Task
    from spillover.events import Event, LogEvent, ProgressEvent, StateEvent
    from spillover.protocol import Status

_LAZY = {
    "Client": "spillover.client",
    "Task": "spillover.client",
    "AsyncClient": "spillover.aio",
    "AsyncTask": "spillover.aio",
    "Status": "spillover.protocol",
    "Event": "spillover.events",
    "StateEvent": "spillover.events",
    "ProgressEvent": "spillover.events",
    "LogEvent": "spillover.events",
}

__all__ = [
    "AsyncClient",
    "AsyncTask",
    "BadRequest",
    "Body",
    "Client",
    "Conflict",
    "Context",
    "Event",
    "Forbidden",
    "IdempotencyKeyReused",
    "LogEvent",
    "NotFound",
    "PayloadTooLarge",
    "ProgressEvent",
    "QueueFull",
    "RateLimited",
    "SpilloverError",
    "StateEvent",
    "Status",
    "StorageFull",
    "Task",
    "TaskCancelled",
    "TaskFailed",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "batch",
    "stream",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once: later lookups skip this function
        return value
    raise AttributeError(f"module 'spillover' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
