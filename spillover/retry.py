"""When a request is sent again, and after how long (tenacity).

Retried: connection failures (the client raises them as ``Unavailable``), ``429`` and ``503``.
Safe for every request the client makes: reads and cancels are idempotent, and every submit
carries its Idempotency-Key, so a retry finds the task the first attempt stored instead of
storing a second one. Not retried: a body that cannot be sent twice (a pipe), and everything
else (a 4xx is the caller's to fix; a task's failure is its outcome).

The wait is exponential with jitter (0.25 s, 0.5 s, 1 s, ... at most 10 s, plus up to 0.25 s
at random, so clients that failed together do not come back together), but never shorter than
the answer's ``Retry-After``: an overloaded edge says when to come back, and a client that
comes back sooner only adds to the overload. Retrying stops after ``retry_for`` seconds, and
before a wait that would end past the caller's deadline; the last error is raised.
"""

from __future__ import annotations

from typing import Any

from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_before_delay,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from spillover.errors import SpilloverError, TaskFailed
from spillover.protocol import Deadline

RETRIED = (429, 503)


def retryable(e: BaseException) -> bool:
    return isinstance(e, SpilloverError) and not isinstance(e, TaskFailed) and e.status in RETRIED


class wait_retry_after(wait_base):
    def __init__(self, initial: float = 0.25, most: float = 10.0, jitter: float = 0.25) -> None:
        self.backoff = wait_exponential(multiplier=initial, max=most) + wait_random(0, jitter)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        after = getattr(error, "retry_after", None) or 0.0
        return max(float(after), self.backoff(retry_state))


class stop_at_deadline(stop_base):
    """Stop when the next wait would end past the caller's deadline."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        left = self.deadline.left()
        return left is not None and left < retry_state.upcoming_sleep


def policy(deadline: Deadline, retry_for: float, replayable: bool = True) -> dict[str, Any]:
    """Keyword arguments for tenacity's ``Retrying`` / ``AsyncRetrying``."""
    return {
        "retry": retry_if_exception(lambda e: replayable and retryable(e)),
        "wait": wait_retry_after(),
        "stop": stop_before_delay(retry_for) | stop_at_deadline(deadline),
        "reraise": True,
    }
