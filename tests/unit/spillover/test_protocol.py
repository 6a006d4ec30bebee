"""The client's steps, driven by scripted replies and a fake clock: what each operation sends,
and what it makes of the answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import spillover
from spillover import protocol
from spillover.protocol import ROUND, Call, Deadline, Flow, Reply

TID = "01J00000000000000000000000.us-east-1"
STATUS = {"id": TID, "app": "demo", "function": "sleep", "state": "running",
          "home_region": "us-east-1", "a_field_from_a_newer_edge": 1}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def reply(status: int, body: Any = b"", **headers: str) -> Reply:
    if not isinstance(body, bytes):
        body, headers = json.dumps(body).encode(), {"Content-Type": "application/json", **headers}
    return Reply(status, headers, body)


def drive(flow: Flow[Any], answer: Callable[[Call], Reply]) -> tuple[Any, list[Call]]:
    """As the clients do: send each call, raise an error answer, hand the reply back."""
    calls = []
    call = next(flow)
    while True:
        calls.append(call)
        r = answer(call)
        r.raise_for_status(call.accept)
        try:
            call = flow.send(r)
        except StopIteration as done:
            return done.value, calls


def test_run_is_one_request_when_the_task_finishes_within_a_round() -> None:
    sub = protocol.submission("demo", "sleep", {"seconds": 1}, region=["eu-west-1", "us-east-1"],
                              prefer_region="eu-west-1", priority=7)  # fmt: skip
    value, calls = drive(protocol.run(sub, Deadline(None)), lambda c: reply(200, {"slept": 1}))
    assert value == {"slept": 1}
    [call] = calls
    assert (call.method, call.path, call.wait) == ("POST", "/v1/apps/demo/sleep", ROUND)
    assert call.headers["X-Spillover-Timeout"] == f"{ROUND:.3f}"
    assert call.headers["X-Spillover-Region"] == "eu-west-1,us-east-1"
    assert call.headers["X-Spillover-Prefer-Region"] == "eu-west-1"
    assert call.headers["X-Spillover-Priority"] == "7"
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["Idempotency-Key"] == sub.key and len(sub.key) == 32


def test_every_submit_gets_its_own_key_unless_one_is_given() -> None:
    keys = {protocol.submission("a", "f", b"").key for _ in range(100)}
    assert len(keys) == 100
    assert protocol.submission("a", "f", b"", idempotency_key="order-42").key == "order-42"


def test_run_follows_202_with_result_waits_until_the_result() -> None:
    answers = iter([reply(202, STATUS), reply(202, STATUS), reply(200, b"\x00bytes")])
    value, calls = drive(protocol.run(protocol.submission("demo", "echo", b"x"), Deadline(None)),
                         lambda c: next(answers))  # fmt: skip
    assert value == b"\x00bytes"
    assert [c.method for c in calls] == ["POST", "GET", "GET"]
    assert calls[1].path == f"/v1/tasks/{TID}/result?wait={ROUND:.3f}"


def test_a_deadline_shortens_the_last_round_and_then_names_the_task() -> None:
    clock = Clock()
    deadline = Deadline(45, clock)

    def answer(call: Call) -> Reply:
        clock.t += call.wait  # the edge holds each request as long as it was asked
        return reply(202, STATUS)

    with pytest.raises(spillover.Timeout) as caught:
        drive(protocol.run(protocol.submission("demo", "sleep", b""), deadline), answer)
    assert caught.value.task_id == TID and "45 s" in caught.value.message


def test_waits_are_rounds_of_at_most_round_seconds() -> None:
    clock = Clock()
    waits: list[float] = []

    def answer(call: Call) -> Reply:
        waits.append(call.wait)
        clock.t += call.wait
        return reply(202, STATUS) if len(waits) < 4 else reply(200, {"ok": True})

    value, _ = drive(protocol.result(TID, Deadline(None, clock)), answer)
    assert value == {"ok": True} and waits == [ROUND] * 4


def test_a_failed_task_raises_its_outcome() -> None:
    failed = reply(500, {"error": {"code": "handler_error", "message": "ValueError: no"}},
                   **{"X-Spillover-Task-Id": TID})  # fmt: skip
    with pytest.raises(spillover.TaskFailed) as caught:
        drive(protocol.result(TID, Deadline(None)), lambda c: failed)
    assert (caught.value.code, caught.value.task_id) == ("handler_error", TID)


def test_submit_is_async_and_returns_the_status() -> None:
    status, [call] = drive(protocol.submit(protocol.submission("demo", "sleep", b"")),
                           lambda c: reply(202, STATUS))  # fmt: skip
    assert (
        call.path == "/v1/apps/demo/sleep?async=true" and "X-Spillover-Timeout" not in call.headers
    )
    assert (status.id, status.state, status.done) == (TID, "running", False)


def test_cancel_of_a_finished_task_returns_its_status_and_a_live_conflict_raises() -> None:
    done = {**STATUS, "state": "succeeded"}
    answers = iter([reply(409, {"error": {"code": "conflict", "message": "finished"}}),
                    reply(200, done)])  # fmt: skip
    status, calls = drive(protocol.cancel(TID), lambda c: next(answers))
    assert status.state == "succeeded" and [c.method for c in calls] == ["DELETE", "GET"]
    answers = iter([reply(409, {"error": {"code": "conflict", "message": "kept changing"}}),
                    reply(200, STATUS)])  # fmt: skip
    with pytest.raises(spillover.Conflict, match="kept changing"):
        drive(protocol.cancel(TID), lambda c: next(answers))


def test_a_result_to_a_file_is_the_path_and_paths_are_quoted(tmp_path: Path) -> None:
    to = tmp_path / "out.bin"
    value, [call] = drive(protocol.result("a/b", Deadline(None), to), lambda c: reply(200))
    assert value == to and call.to == to and call.path.startswith("/v1/tasks/a%2Fb/result")
    sub = protocol.submission("my app", "f/x", b"")
    assert sub.path == "/v1/apps/my%20app/f%2Fx"


def test_status_ignores_fields_it_does_not_know() -> None:
    status = protocol.Status.of({**STATUS, "state": "failed", "new_field": 1,
                                 "error": {"code": "timeout", "message": "too long"}})  # fmt: skip
    assert status.done and status.error == {"code": "timeout", "message": "too long"}
    hooked = {"delivered": False, "attempts": 2, "last_error": "503", "gave_up": False}
    assert protocol.Status.of({**STATUS, "webhook": hooked}).webhook == hooked
