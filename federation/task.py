"""The task record and its state machine, as pure functions of (record, now).

    queued ──claim──▶ running ──complete──▶ succeeded | failed
      │  ▲               │
      │  └──requeue──────┤  (claimer lost; attempts exhausted → failed/replica_lost)
      ├──cancel──▶ cancelled ◀──cancel──┘
      └──expire──▶ expired   (waited longer than response_grace_period)

Every transition returns a new record; etcd adapters decide where to write it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from ulid import ULID

from federation.blobs import BlobRef
from federation.errors import Conflict


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self not in (State.QUEUED, State.RUNNING)


ErrorCode = Literal[
    "handler_error",
    "timeout",
    "expired",
    "cancelled",
    "replica_lost",
    "payload_unavailable",
    "result_too_large",
    "internal",
]


# An error message lands in the task record, which a settle writes to etcd twice (record and
# done entry); a handler's exception may carry megabytes.
ERROR_MESSAGE_BYTES = 4096


def truncated(message: str, limit: int = ERROR_MESSAGE_BYTES) -> str:
    """``message`` in at most ``limit`` bytes of UTF-8; when cut, it ends with a marker that
    says how long it was."""
    data = message.encode()
    if len(data) <= limit:
        return message
    marker = f" … [truncated: {len(data)} bytes]"
    return data[: limit - len(marker.encode())].decode(errors="ignore") + marker


class TaskError(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: ErrorCode
    message: str

    @field_validator("message")
    @classmethod
    def _bounded(cls, message: str) -> str:
        return truncated(message)


class TaskRecord(BaseModel):
    """What etcd stores per task. Small on purpose: bodies live under their own keys, but for
    a result of a few hundred bytes (``result_inline``), which the reader of the finished record
    then has without a second read."""

    # Bodies in JSON as base64: a result is any bytes.
    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    id: str
    app: str
    function: str
    state: State = State.QUEUED
    home_region: str
    region: str | None = None  # where it runs or ran
    allowed_regions: tuple[str, ...] = ()  # hard pin; empty means any region of the app
    priority: int = Field(default=5, ge=0, le=9)
    attempts: int = 0
    max_attempts: int = 3
    created_at: float  # epoch seconds; also the age used for ordering and spillover
    deadline: float  # a queued task still waiting at this time expires
    retention: float = 86400.0  # seconds its record and result are kept once it has finished
    started_at: float | None = None
    finished_at: float | None = None
    claimer: str | None = None
    content_type: str = "application/octet-stream"
    result_content_type: str | None = None
    error: TaskError | None = None
    webhook: str | None = None
    idempotency_key: str | None = None
    owner: str | None = None  # the name of the API key that submitted it (None: auth off)
    # sha256 of what was asked (app, function, body): a retry with the task's idempotency key
    # must ask the same, or it is refused (422 idempotency_key_reused).
    fingerprint: str | None = None
    # Bodies over the inline limit live in a blob store; the record holds where (else etcd).
    payload_ref: BlobRef | None = None
    result_ref: BlobRef | None = None
    result_inline: bytes | None = None

    @property
    def partition(self) -> str:
        return partition_of(self.id)

    @property
    def pinned(self) -> bool:
        return bool(self.allowed_regions)


def new_task_id(partition: str, ulid: str | None = None) -> str:
    """A ULID (sortable by time) followed by the partition that stores the task, so any edge can
    find the task without a search: ``01JD3...Q8.eu-west-1``. An enqueue that falls back to
    another partition keeps the ULID: the body's blob is named after it."""
    return f"{ulid or new_ulid()}.{partition}"


def new_ulid() -> str:
    return str(ULID())


def ulid_of(task_id: str) -> str:
    return task_id.partition(".")[0]


def partition_of(task_id: str) -> str:
    ulid, sep, partition = task_id.partition(".")
    if not sep or len(ulid) != 26 or not partition:
        raise ValueError(f"task id {task_id!r} is not of the form <ulid>.<partition>")
    return partition


_ALLOWED: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.RUNNING, State.CANCELLED, State.EXPIRED}),
    State.RUNNING: frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED, State.QUEUED}),
}


def _check(record: TaskRecord, to: State) -> None:
    if to not in _ALLOWED.get(record.state, frozenset()):
        raise Conflict(f"task {record.id} is {record.state.value}; it cannot become {to.value}")


def start(record: TaskRecord, *, region: str, claimer: str, now: float) -> TaskRecord:
    _check(record, State.RUNNING)
    return record.model_copy(
        update={
            "state": State.RUNNING,
            "region": region,
            "claimer": claimer,
            "attempts": record.attempts + 1,
            "started_at": now,
        }
    )


def finish(
    record: TaskRecord,
    *,
    ok: bool,
    now: float,
    error: TaskError | None = None,
    result_content_type: str | None = None,
    result_ref: BlobRef | None = None,
    result_inline: bytes | None = None,
) -> TaskRecord:
    to = State.SUCCEEDED if ok else State.FAILED
    _check(record, to)
    if not ok and error is None:
        raise ValueError("a failed task needs an error")
    return record.model_copy(
        update={
            "state": to,
            "finished_at": now,
            "error": None if ok else error,
            "result_content_type": result_content_type if ok else None,
            "result_ref": result_ref if ok else None,
            "result_inline": result_inline if ok else None,
        }
    )


def requeue(record: TaskRecord, *, now: float, reason: str, ran: bool = True) -> TaskRecord:
    """A running task whose claimer is gone: back to the queue, unless it has used its attempts
    (a task that kills every replica it touches must not loop forever). One that never reached
    a replica (``ran`` False: its claim was orphaned, or no replica was left for it) gets its
    attempt back."""
    _check(record, State.QUEUED)
    if not ran:
        record = record.model_copy(update={"attempts": max(0, record.attempts - 1)})
    elif record.attempts >= record.max_attempts:
        return record.model_copy(
            update={
                "state": State.FAILED,
                "finished_at": now,
                "error": TaskError(
                    code="replica_lost",
                    message=f"{reason}; gave up after {record.attempts} attempts",
                ),
            }
        )
    return record.model_copy(
        update={"state": State.QUEUED, "region": None, "claimer": None, "started_at": None}
    )


def cancel(record: TaskRecord, *, now: float) -> TaskRecord:
    _check(record, State.CANCELLED)
    return record.model_copy(
        update={
            "state": State.CANCELLED,
            "finished_at": now,
            "error": TaskError(code="cancelled", message="cancelled by request"),
        }
    )


def expire(record: TaskRecord, *, now: float) -> TaskRecord:
    _check(record, State.EXPIRED)
    waited = now - record.created_at
    return record.model_copy(
        update={
            "state": State.EXPIRED,
            "finished_at": now,
            "error": TaskError(
                code="expired",
                message=f"waited {waited:.1f} s in the queue, past response_grace_period",
            ),
        }
    )


class WebhookDelivery(BaseModel):
    """How a task's webhook went: one delivery chain (``federation/deliveries.py``) records
    each attempt, so a failing receiver is seen on the task's status, never dropped silently."""

    model_config = ConfigDict(frozen=True)
    delivered: bool = False
    attempts: int = 0  # POSTs tried so far, across agents (one that took over goes on counting)
    last_error: str | None = None  # why the latest failed attempt failed (kept once delivered)
    gave_up: bool = False  # no more attempts: refused (a 4xx, a private address) or out of them

    @field_validator("last_error")
    @classmethod
    def _bounded(cls, message: str | None) -> str | None:
        return None if message is None else truncated(message, 1024)

    @property
    def final(self) -> bool:
        return self.delivered or self.gave_up


class TaskStatus(BaseModel):
    """The task status JSON of the HTTP API (spec: "Task status JSON")."""

    id: str
    app: str
    function: str
    state: State
    home_region: str
    region: str | None
    pinned: bool
    priority: int
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    queue_ms: float | None
    run_ms: float | None
    error: TaskError | None
    webhook: WebhookDelivery | None  # None: the task has no webhook

    @classmethod
    def of(cls, r: TaskRecord, now: float, webhook: WebhookDelivery | None = None) -> TaskStatus:
        """``webhook``: its delivery as recorded; a task with a webhook has none before it
        finished."""
        queue_end = r.started_at if r.started_at is not None else (r.finished_at or now)
        run_ms = None
        if r.started_at is not None:
            run_ms = round(((r.finished_at or now) - r.started_at) * 1000, 1)
        return cls(
            id=r.id,
            app=r.app,
            function=r.function,
            state=r.state,
            home_region=r.home_region,
            region=r.region,
            pinned=r.pinned,
            priority=r.priority,
            attempts=r.attempts,
            created_at=rfc3339(r.created_at),
            started_at=rfc3339(r.started_at),
            finished_at=rfc3339(r.finished_at),
            queue_ms=round((queue_end - r.created_at) * 1000, 1),
            run_ms=run_ms,
            error=r.error,
            webhook=webhook or (WebhookDelivery() if r.webhook else None),
        )


def rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
