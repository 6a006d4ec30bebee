"""Errors of the edge, on top of the federation's (``federation/errors.py``): each is an HTTP
answer the ``json_errors`` middleware turns into ``{"error": {"code", "message"}}``; and the
catalogue of every error code an edge answers with, its HTTP status and what it means, which
``/openapi.json`` publishes (``x-spillover-error-codes``) and ``docs/api.md`` lists (a test keeps
both and the code in step). Task failures are the ``error.code`` of a finished task."""

from __future__ import annotations

from federation.errors import SpilloverError, Unavailable


class BodyTimeout(SpilloverError):
    """The client did not send its body in time (``body_timeout``, ``body_min_rate``). The
    connection is closed after the answer: the rest of the body is never read."""

    status = 408
    code = "body_timeout"


class Overloaded(Unavailable):
    """This edge is serving ``max_connections`` requests already; another edge, or this one a
    moment later, can take the request."""

    code = "overloaded"


# Codes of aiohttp's own HTTP errors (the json_errors middleware); others are "http_error".
HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}

ERROR_CODES: dict[str, tuple[str, str]] = {
    "bad_request": ("400", "a header, parameter or body breaks a rule; the message names it"),
    "unauthorized": ("401", "no API key, or an unknown or revoked one"),
    "forbidden": ("403", "the key is not granted the app, or is not an admin key"),
    "not_found": ("404", "no such app, task or route (or another key's task)"),
    "method_not_allowed": ("405", "the route has no such method; `Allow` lists those it has"),
    "body_timeout": ("408", "the request body did not arrive in time"),
    "conflict": ("409", "not possible in the task's state (cancelling a finished task)"),
    "cancelled": ("409", "the task was cancelled (its result)"),
    "payload_too_large": ("413", "the body is over the app's `max_payload_bytes`"),
    "invalid_config": ("422", "the app spec breaks a rule; the message names key, value, rule"),
    "idempotency_key_reused": ("422", "the Idempotency-Key was used with another request"),
    "queue_full": ("429", "the app's queue in the home region holds `[queue] max_depth` tasks"),
    "rate_limited": ("429", "the API key is over its request rate"),
    "handler_error": ("500", "the handler raised; the message is its error"),
    "internal": ("500", "a fault of the edge; it has been logged"),
    "etcd_rejected": ("500", "etcd refused the request for what it is (too large); a fault"),
    "replica_lost": ("502", "the replica died while running the task, and retries ran out"),
    "payload_unavailable": ("502", "the task's body could not be read from the blob store"),
    "blob_unavailable": ("502", "a stored body or result could not be read whole"),
    "result_too_large": ("502", "the handler's result is over the app's max_payload_bytes"),
    "unavailable": ("503", "etcd cannot take the request durably; nothing was acknowledged"),
    "storage_full": ("503", "etcd is above its space watermark: new tasks wait for space"),
    "overloaded": ("503", "this edge serves `max_connections` requests already"),
    "timeout": ("504", "the task ran longer than `max_runtime`"),
    "expired": ("504", "the task waited longer than `response_grace_period`"),
    "http_error": ("4xx", "another HTTP error of the server framework (the message says which)"),
}
