"""The retry policy: what is retried, how long it waits (never shorter than Retry-After), and
that it stops before the caller's deadline or after ``retry_for``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tenacity import RetryCallState, Retrying

import spillover
from spillover.protocol import Deadline
from spillover.retry import policy, retryable, stop_at_deadline, wait_retry_after


def state(attempt: int, error: BaseException) -> RetryCallState:
    rs = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    rs.attempt_number = attempt
    rs.set_exception((type(error), error, None))
    return rs


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (spillover.QueueFull("full"), True),
        (spillover.RateLimited("slow down"), True),
        (spillover.StorageFull("disk"), True),
        (spillover.Unavailable("no etcd"), True),
        (spillover.NotFound("gone"), False),
        (spillover.BadRequest("bad"), False),
        (spillover.TaskFailed("handler_error", "boom"), False),
        (ValueError("ours"), False),
    ],
)
def test_what_is_retried(error: BaseException, retried: bool) -> None:
    assert retryable(error) is retried


@given(st.integers(min_value=1, max_value=40), st.none() | st.floats(min_value=0, max_value=600))
def test_the_wait_is_backoff_with_jitter_but_never_before_retry_after(
    attempt: int, after: float | None
) -> None:
    wait = wait_retry_after()(state(attempt, spillover.QueueFull("full", retry_after=after)))
    backoff = min(10.0, 0.25 * 2 ** (attempt - 1))
    assert wait >= (after or 0) and wait >= backoff
    assert wait <= max(after or 0, 10.0 + 0.25) + 1e-9


def test_it_stops_before_a_wait_past_the_deadline() -> None:
    clock = [0.0]
    deadline = Deadline(5, lambda: clock[0])
    rs = state(1, spillover.QueueFull("full", retry_after=3))
    rs.upcoming_sleep = 3
    assert not stop_at_deadline(deadline)(rs)
    clock[0] = 2.5
    assert stop_at_deadline(deadline)(rs)
    assert not stop_at_deadline(Deadline(None))(rs)


def test_a_body_that_cannot_be_sent_twice_is_never_retried() -> None:
    calls: list[int] = []

    def attempt(kw: dict[str, Any]) -> None:
        for a in Retrying(**kw, sleep=lambda s: None):
            with a:
                calls.append(1)
                raise spillover.Unavailable("down", retry_after=None)

    with pytest.raises(spillover.Unavailable):
        attempt(policy(Deadline(None), retry_for=60, replayable=False))
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(spillover.Unavailable):  # replayable: until the deadline's next wait
        attempt(policy(Deadline(1.0), retry_for=60, replayable=True))
    assert len(calls) > 1
