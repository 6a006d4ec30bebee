import pytest

from federation import task as sm
from federation.errors import Conflict
from federation.task import State, TaskError, TaskStatus, WebhookDelivery, truncated
from tests.factories import task

T0 = 1_700_000_000.0


def test_happy_path_records_times_attempts_and_region() -> None:
    r = task(now=T0)
    running = sm.start(r, region="eu-west-1", claimer="c", now=T0 + 0.25)
    done = sm.finish(running, ok=True, now=T0 + 1.25, result_content_type="application/json")
    assert (running.state, running.attempts, running.region) == (State.RUNNING, 1, "eu-west-1")
    status = TaskStatus.of(done, now=T0 + 9)
    assert status.state is State.SUCCEEDED
    assert status.queue_ms == 250.0 and status.run_ms == 1000.0
    assert status.created_at == "2023-11-14T22:13:20.000Z"


@pytest.mark.parametrize(
    ("state", "move"),
    [
        (State.SUCCEEDED, lambda r: sm.cancel(r, now=T0)),
        (State.CANCELLED, lambda r: sm.start(r, region="x", claimer="c", now=T0)),
        (State.EXPIRED, lambda r: sm.finish(r, ok=True, now=T0)),
        (State.QUEUED, lambda r: sm.finish(r, ok=True, now=T0)),
        (State.RUNNING, lambda r: sm.expire(r, now=T0)),
        (State.FAILED, lambda r: sm.requeue(r, now=T0, reason="x")),
    ],
)
def test_illegal_transitions_are_conflicts(state: State, move) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Conflict):
        move(task(now=T0, state=state))


def test_requeue_gives_up_after_max_attempts() -> None:
    r = task(now=T0, max_attempts=2)
    for _ in range(2):
        r = sm.start(r, region="a", claimer="c", now=T0)
        r = sm.requeue(r, now=T0, reason="replica died")
        if r.state is State.FAILED:
            break
    assert r.state is State.FAILED
    assert r.error is not None and r.error.code == "replica_lost"
    assert "2 attempts" in r.error.message


def test_a_task_that_never_reached_a_replica_gets_its_attempt_back() -> None:
    # An orphaned claim (a claim txn cut short, applied behind the claimer's back) counted an
    # attempt: at the last one the task failed replica_lost without ever having run.
    r = sm.start(task(now=T0, max_attempts=1), region="a", claimer="c", now=T0)
    back = sm.requeue(r, now=T0, reason="claimed by a txn cut short", ran=False)
    assert (back.state, back.attempts) == (State.QUEUED, 0)


def test_requeued_task_forgets_its_claim_but_keeps_its_age() -> None:
    r = sm.start(task(now=T0), region="a", claimer="c", now=T0 + 1)
    back = sm.requeue(r, now=T0 + 2, reason="x")
    assert (back.state, back.claimer, back.region, back.created_at) == (
        State.QUEUED,
        None,
        None,
        T0,
    )


def test_failed_needs_an_error_and_keeps_it() -> None:
    running = sm.start(task(now=T0), region="a", claimer="c", now=T0)
    with pytest.raises(ValueError):
        sm.finish(running, ok=False, now=T0)
    err = TaskError(code="handler_error", message="ValueError: bad input")
    assert sm.finish(running, ok=False, now=T0, error=err).error == err


def test_task_id_names_its_partition() -> None:
    tid = sm.new_task_id("ap-south-1")
    assert sm.partition_of(tid) == "ap-south-1"
    for bad in ("nodot", "short.ap-south-1", "01JD3ZZZZZZZZZZZZZZZZZZZZZ."):
        with pytest.raises(ValueError):
            sm.partition_of(bad)


@pytest.mark.parametrize("text", ["x" * 10_000_000, "é" * 5000, "€x" * 3000])
def test_an_error_message_is_stored_in_at_most_4_kib_with_a_marker(text: str) -> None:
    message = TaskError(code="handler_error", message=text).message
    assert len(message.encode()) <= 4096 and text.startswith(message.split(" … ")[0])
    assert message.endswith(f"[truncated: {len(text.encode())} bytes]")


def test_a_short_error_message_is_kept_whole() -> None:
    assert truncated("ValueError: bad input") == "ValueError: bad input"
    assert truncated("x" * 4096) == "x" * 4096


def test_the_status_shows_a_webhooks_delivery_and_none_without_one() -> None:
    plain = task(now=T0)
    assert TaskStatus.of(plain, now=T0).webhook is None
    hooked = task(now=T0, webhook="https://example.com/h")
    assert TaskStatus.of(hooked, now=T0).webhook == WebhookDelivery()  # nothing tried yet
    went = WebhookDelivery(attempts=3, last_error="x" * 10_000, gave_up=True)
    shown = TaskStatus.of(hooked, now=T0, webhook=went).webhook
    assert shown is not None and shown.final and len(shown.last_error or "") <= 1024
