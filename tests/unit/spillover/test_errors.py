"""Error answers to typed exceptions: every code of the API, task outcomes, and answers that
are not the API's JSON (a proxy's page)."""

from __future__ import annotations

import json

import pytest

import spillover
from spillover.errors import error_of, retry_after

TASK = {"X-Spillover-Task-Id": "01J00000000000000000000000.us-east-1"}


def body(code: str, message: str = "why") -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_request", spillover.BadRequest),
        (401, "unauthorized", spillover.Unauthorized),
        (403, "forbidden", spillover.Forbidden),
        (404, "not_found", spillover.NotFound),
        (409, "conflict", spillover.Conflict),
        (413, "payload_too_large", spillover.PayloadTooLarge),
        (422, "idempotency_key_reused", spillover.IdempotencyKeyReused),
        (429, "queue_full", spillover.QueueFull),
        (429, "rate_limited", spillover.RateLimited),
        (503, "storage_full", spillover.StorageFull),
        (503, "unavailable", spillover.Unavailable),
    ],
)
def test_each_api_code_is_its_class(status: int, code: str, cls: type[Exception]) -> None:
    e = error_of(status, {"Retry-After": "3"}, body(code, "the reason"))
    assert type(e) is cls and isinstance(e, spillover.SpilloverError)
    assert (e.code, e.status, e.message, e.retry_after) == (code, status, "the reason", 3.0)


def test_storage_full_is_also_unavailable() -> None:
    assert isinstance(error_of(503, {}, body("storage_full")), spillover.Unavailable)


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "handler_error"), (504, "timeout"), (504, "expired"), (502, "replica_lost"),
     (500, "result_too_large"), (502, "payload_unavailable")],
)  # fmt: skip
def test_a_task_outcome_is_task_failed_with_its_code(status: int, code: str) -> None:
    e = error_of(status, TASK, body(code, "it broke"))
    assert type(e) is spillover.TaskFailed
    assert (e.code, e.message, e.task_id, e.status) == (code, "it broke", TASK[
        "X-Spillover-Task-Id"], status)  # fmt: skip


def test_a_cancelled_task_is_task_cancelled_and_a_task_failed() -> None:
    e = error_of(409, TASK, body("cancelled"))
    assert type(e) is spillover.TaskCancelled and isinstance(e, spillover.TaskFailed)


def test_api_errors_stay_api_errors_even_when_a_task_is_named() -> None:
    assert type(error_of(503, TASK, body("unavailable"))) is spillover.Unavailable


def test_unknown_codes_fall_back_on_the_status_and_keep_the_code() -> None:
    e = error_of(404, {}, body("app_gone"))
    assert type(e) is spillover.NotFound and e.code == "app_gone"
    e = error_of(418, {}, body("teapot"))
    assert type(e) is spillover.SpilloverError and (e.code, e.status) == ("teapot", 418)


def test_a_proxy_page_is_an_error_with_its_text() -> None:
    e = error_of(503, {"Retry-After": "2"}, b"<html>Service Unavailable</html>")
    assert type(e) is spillover.Unavailable and e.code == "http_503"
    assert "Service Unavailable" in e.message and e.retry_after == 2.0
    assert type(error_of(502, {}, b"")) is spillover.SpilloverError


def test_retry_after_is_seconds_or_an_http_date() -> None:
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"Retry-After": "Sun, 06 Nov 1994 08:49:47 GMT"}, now=784111767) == 20.0
    assert retry_after({"Retry-After": "Sun, 06 Nov 1994 08:49:47 GMT"}, now=784111787 + 9) == 0
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None


def test_timeout_names_the_task_and_is_a_timeout_error() -> None:
    e = spillover.Timeout("not yet", task_id="t1")
    assert isinstance(e, TimeoutError) and isinstance(e, spillover.SpilloverError)
    assert (e.task_id, e.code, str(e)) == ("t1", "client_timeout", "not yet")
