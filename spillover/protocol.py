"""The HTTP API as the client speaks it, without I/O: each operation is a generator that
yields the :class:`Call` it needs next and is sent the :class:`Reply`, so the blocking
:class:`~spillover.Client` and the asyncio :class:`~spillover.AsyncClient` drive the same
steps (h11's sans-I/O shape) and differ only in how they send.

Waiting is done in rounds of at most :data:`ROUND` seconds — a synchronous submit asks the edge
to hold it that long (``X-Spillover-Timeout``), ``GET .../result?wait=`` the same — so no
request outlives a proxy's idle timeout and a caller's deadline is kept to within one round
trip: when it passes, the edge has answered ``202`` with the task's id, and
:class:`~spillover.Timeout` names it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from spillover.errors import Timeout, error_of
from spillover.upload import JSON, Upload

T = TypeVar("T")
ROUND = 30.0  # seconds one request may wait at the edge (under its max_sync_timeout, 300)
DONE = frozenset({"succeeded", "failed", "cancelled", "expired"})
RECONNECT_PAUSE = 0.5  # seconds before an event stream that ended early is opened again


@dataclass(frozen=True)
class Call:
    """One HTTP request. ``wait``: how long the edge may hold it before it answers;
    ``to``: a 200 body goes into this file, not into memory; ``accept``: error statuses the
    operation handles itself (all others raise their typed error)."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Upload | None = None
    wait: float = 0.0
    to: Path | None = None
    accept: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes  # empty when it went into ``Call.to``

    def raise_for_status(self, accept: frozenset[int] = frozenset()) -> None:
        if self.status >= 400 and self.status not in accept:
            raise error_of(self.status, self.headers, self.body)


Flow = Generator[Call, Reply, T]


@dataclass(frozen=True)
class Status:
    """A task's status (the API's task status JSON). ``state`` is one of queued, running,
    succeeded, failed, cancelled, expired; ``error`` is ``{"code", "message"}`` where set;
    ``webhook``, for a task submitted with one, how its delivery goes (``{"delivered",
    "attempts", "last_error", "gave_up"}``). Fields the client does not know yet are ignored,
    so a newer edge never breaks it."""

    id: str
    app: str
    function: str
    state: str
    home_region: str
    region: str | None = None
    pinned: bool = False
    priority: int = 5
    attempts: int = 0
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    queue_ms: float | None = None
    run_ms: float | None = None
    error: dict[str, str] | None = None
    webhook: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.state in DONE

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Status:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


class Deadline:
    """The end of a caller's ``timeout`` (None: none), on a monotonic clock."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock = seconds, clock
        self.at = None if seconds is None else clock() + seconds

    def left(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - self.clock())

    def round(self) -> float:
        """How long the next request may wait at the edge."""
        left = self.left()
        return ROUND if left is None else min(ROUND, left)


@dataclass(frozen=True)
class Submission:
    """A task to submit: where, its body, its headers. ``key`` is its Idempotency-Key, one per
    logical submit, so every retry of it finds the task the first attempt stored."""

    app: str
    function: str
    body: Upload
    headers: Mapping[str, str]
    key: str

    @property
    def path(self) -> str:
        return f"/v1/apps/{quote(self.app, safe='')}/{quote(self.function, safe='')}"


def submission(
    app: str,
    function: str,
    payload: Any,
    *,
    region: str | list[str] | tuple[str, ...] | None = None,
    prefer_region: str | None = None,
    priority: int | None = None,
    webhook: str | None = None,
    idempotency_key: str | None = None,
    content_type: str | None = None,
) -> Submission:
    key = idempotency_key or uuid.uuid4().hex
    body = Upload(payload, content_type)
    headers = {"Idempotency-Key": key, **body.headers()}
    if region is not None:  # several: an allowed set (data residency)
        headers["X-Spillover-Region"] = region if isinstance(region, str) else ",".join(region)
    if prefer_region is not None:
        headers["X-Spillover-Prefer-Region"] = prefer_region
    if priority is not None:
        headers["X-Spillover-Priority"] = str(priority)
    if webhook is not None:
        headers["X-Spillover-Webhook"] = webhook
    return Submission(app, function, body, headers, key)


def _seconds(s: float) -> str:
    return f"{s:.3f}"


def run(sub: Submission, deadline: Deadline, to: Path | None = None) -> Flow[Any]:
    """Submit and wait: one request when the task finishes within a round."""
    wait = deadline.round()
    headers = {**sub.headers, "X-Spillover-Timeout": _seconds(wait)}
    reply = yield Call("POST", sub.path, headers, sub.body, wait=wait, to=to)
    if reply.status != 202:
        return decoded(reply, to)
    # Still running after the round (or a retry found the first attempt's task running).
    task_id = json.loads(reply.body)["id"]
    if deadline.left() == 0:
        raise _timeout(task_id, deadline)
    return (yield from result(task_id, deadline, to))


def submit(sub: Submission) -> Flow[Status]:
    reply = yield Call("POST", sub.path + "?async=true", sub.headers, sub.body)
    return Status.of(json.loads(reply.body))


def result(task_id: str, deadline: Deadline, to: Path | None = None) -> Flow[Any]:
    while True:
        wait = deadline.round()
        path = f"{_task(task_id)}/result?wait={_seconds(wait)}"
        reply = yield Call("GET", path, wait=wait, to=to)
        if reply.status != 202:
            return decoded(reply, to)
        if deadline.left() == 0:
            raise _timeout(task_id, deadline)


def _timeout(task_id: str, deadline: Deadline) -> Timeout:
    message = f"task {task_id} not finished after {deadline.seconds:g} s; it goes on"
    return Timeout(message, task_id=task_id)


def status(task_id: str) -> Flow[Status]:
    reply = yield Call("GET", _task(task_id))
    return Status.of(json.loads(reply.body))


def cancel(task_id: str) -> Flow[Status]:
    """Cancel; a task that already finished (409) is left as it is. Either way, its status."""
    reply = yield Call("DELETE", _task(task_id), accept=frozenset({409}))
    if reply.status != 409:
        return Status.of(json.loads(reply.body))
    conflict = error_of(reply.status, reply.headers, reply.body)
    reply = yield Call("GET", _task(task_id))
    now = Status.of(json.loads(reply.body))
    if not now.done:  # not finished: the task kept changing under the cancel
        raise conflict
    return now


def events_call(task_id: str) -> Call:
    return Call("GET", f"{_task(task_id)}/events", {"Accept": "text/event-stream"})


def as_path(to: str | os.PathLike[str] | None) -> Path | None:
    return None if to is None else Path(to)


def _task(task_id: str) -> str:
    return f"/v1/tasks/{quote(task_id, safe='')}"


def decoded(reply: Reply, to: Path | None) -> Any:
    """A result: JSON decoded, other bodies as bytes, or the file it was written to."""
    if to is not None:
        return to
    content_type = reply.headers.get("Content-Type", "").split(";")[0].strip()
    return json.loads(reply.body) if content_type == JSON else reply.body
