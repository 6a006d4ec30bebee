"""What a call can raise. The HTTP API's error codes map to the classes the federation itself
raises (``spillover.QueueFull`` is what an edge answers as ``429 queue_full``), so there is one
class per code on both sides; a task that ran and did not succeed is :class:`TaskFailed`.

Every class derives from :class:`SpilloverError`, which carries ``code``, ``status``,
``message`` and ``retry_after`` (seconds, from the answer's ``Retry-After``).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping

from federation.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    InvalidConfig,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    RateLimited,
    SpilloverError,
    StorageFull,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "IdempotencyKeyReused",
    "InvalidConfig",
    "NotFound",
    "PayloadTooLarge",
    "QueueFull",
    "RateLimited",
    "SpilloverError",
    "StorageFull",
    "TaskCancelled",
    "TaskFailed",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "error_of",
]

TASK_ID = "X-Spillover-Task-Id"


class TaskFailed(SpilloverError):
    """The task finished without a result: ``code`` is its error code (``handler_error``,
    ``timeout`` (its ``max_runtime``), ``expired``, ``replica_lost``, ``result_too_large``, ...)
    and ``task_id`` names it."""

    def __init__(
        self, code: str, message: str, *, task_id: str | None = None, status: int = 500
    ) -> None:
        super().__init__(message)
        self.code, self.task_id, self.status = code, task_id, status

    def __str__(self) -> str:
        return f"task {self.task_id} {self.code}: {self.message}"


class TaskCancelled(TaskFailed):
    """The task was cancelled (``DELETE /v1/tasks/{id}``) before it finished."""


class Timeout(SpilloverError, TimeoutError):
    """The caller's ``timeout`` passed before the task finished. The task goes on: re-attach
    with ``client.task(e.task_id)``. Never an answer of the edge, so ``status`` is 0."""

    status = 0
    code = "client_timeout"

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


# Where a code is known, its class; otherwise the status decides, else the base class.
_BY_CODE: dict[str, type[SpilloverError]] = {
    c.code: c
    for c in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge,
              InvalidConfig, IdempotencyKeyReused, QueueFull, RateLimited, Unavailable,
              StorageFull)
}  # fmt: skip
_BY_STATUS: dict[int, type[SpilloverError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: PayloadTooLarge, 503: Unavailable,
}  # fmt: skip


def error_of(status: int, headers: Mapping[str, str], body: bytes) -> SpilloverError:
    """The exception for an error answer (status ≥ 400) of an edge.

    An answer that names a task (``X-Spillover-Task-Id``) with a code that is not an API error
    is that task's outcome: it failed or was cancelled."""
    code, message = _parse(body)
    task_id = headers.get(TASK_ID)
    if task_id is not None and code not in _BY_CODE:
        code = code or f"http_{status}"
        cls = TaskCancelled if code == "cancelled" else TaskFailed
        return cls(code, message or f"task {code}", task_id=task_id, status=status)
    error_class = _BY_CODE.get(code or "") or _BY_STATUS.get(status, SpilloverError)
    e = error_class(message or f"HTTP {status}", retry_after=retry_after(headers))
    # Also when the class is a fallback: the caller sees the code and status as answered.
    e.code, e.status = code or f"http_{status}", status
    return e


def _parse(body: bytes) -> tuple[str | None, str]:
    """``{"error": {"code", "message"}}``; a body that is not (a proxy's page) is the message."""
    try:
        error = json.loads(body)["error"]
        return str(error["code"]), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError):
        return None, body[:200].decode(errors="replace").strip()


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: delay-seconds, or an HTTP date (RFC 9110 allows both)."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        at = email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, at - (time.time() if now is None else now))
