"""Errors of the federation core. Each says whose fault it is and whether a retry can help.

Edges map them to HTTP: ``status`` is the response code, ``code`` the JSON error code.
"""

from __future__ import annotations


class SpilloverError(Exception):
    """Base error. ``status`` < 500 is the client's fault; ``retryable`` means try again later."""

    status = 500
    code = "internal"
    retryable = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Seconds after which a retry may succeed: the HTTP answer's Retry-After (429 and 503
        # always carry one; see ``Unavailable``).
        self.retry_after = retry_after


class BadRequest(SpilloverError):
    """A header, parameter or body the API does not accept; the message names which."""

    status = 400
    code = "bad_request"


class InvalidConfig(SpilloverError):
    """An app spec or component config broke a rule; the message names key, value and rule."""

    status = 422
    code = "invalid_config"


class NotFound(SpilloverError):
    status = 404
    code = "not_found"


class Conflict(SpilloverError):
    """The operation does not fit the task's state (for example cancelling a finished task)."""

    status = 409
    code = "conflict"


class NotClaimer(SpilloverError):
    """A fenced write was refused: the claim is no longer the caller's (lease lost, task requeued
    or cancelled). The caller is a zombie for this task and must drop its result."""

    status = 409
    code = "claim_lost"


class Unavailable(SpilloverError):
    """etcd could not take the request durably. Nothing was acknowledged; retry later."""

    status = 503
    code = "unavailable"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = 1.0) -> None:
        super().__init__(message, retry_after=retry_after)


class StorageFull(Unavailable):
    """The partition's etcd is above its space watermark (or out of space): new tasks are
    refused until finished ones are swept; settles and reads go on."""

    code = "storage_full"


class QueueFull(SpilloverError):
    """The app's queue in the home partition holds ``[queue] max_depth`` tasks."""

    status = 429
    code = "queue_full"
    retryable = True


class RateLimited(SpilloverError):
    """The API key is over its request rate."""

    status = 429
    code = "rate_limited"
    retryable = True


class IdempotencyKeyReused(SpilloverError):
    """An Idempotency-Key already named another request (other app, function or body)."""

    status = 422
    code = "idempotency_key_reused"


class Rejected(SpilloverError):
    """etcd refused the request for what it is (too large, too many operations in one txn):
    the same request would be refused again, so it is not retried. Our fault: 500."""

    code = "etcd_rejected"


class PermissionDenied(Rejected):
    """etcd's RBAC refused the request: this process's etcd user (its certificate's CN) may not
    touch that key or call that RPC (``etcd_rbac.py``). A deployment's choice or a wrong role,
    never a passing state: not retried. Our fault: 500 ``etcd_rejected``, unless a caller knows
    better (an edge refused an app write answers 403)."""


class PayloadTooLarge(SpilloverError):
    status = 413
    code = "payload_too_large"


class Unauthorized(SpilloverError):
    """No API key, or one that is not (or no longer) valid."""

    status = 401
    code = "unauthorized"


class Forbidden(SpilloverError):
    """A valid key whose grant does not cover the app or the operation."""

    status = 403
    code = "forbidden"


class Unreachable(Unavailable):
    """No member of the cluster could be reached: the request was certainly not applied, so
    it is safe to store the task elsewhere instead (a timeout is not: it may have applied)."""
