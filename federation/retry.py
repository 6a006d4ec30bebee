"""The one retry policy: etcd briefly away (:class:`Unavailable`) is retried with capped,
jittered exponential backoff (50 ms, 100 ms, ... 2 s), for a bounded time where the caller has
something better to do after (give a task back, let a lease lapse), until an event where only
that event ends the need (a lost lease takes the claim with it), or for as long as it takes
where it has nothing else to do (a follower that must list before it can watch).

    await retried(queue.release, claim, reason, deadline=30)

Anything else is raised at once, and so is :class:`StorageFull`: a refusal that retrying cannot
heal (etcd rejecting the request, its space used up) is not retried as if it could.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    stop_never,
    stop_when_event_set,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from federation.errors import StorageFull, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_WAIT = 0.05  # the first backoff; jittered, then doubling


def transient(e: BaseException) -> bool:
    """etcd could not take the request now, and may a moment later."""
    return isinstance(e, Unavailable) and not isinstance(e, StorageFull)


def on_unavailable(
    deadline: float | None = None, until: asyncio.Event | None = None, *, first: float = 0.05
) -> AsyncRetrying:
    """Retry :func:`transient` errors for ``deadline`` seconds (None: no limit) or until
    ``until`` is set, then raise the last error. ``first``: the first backoff (doubling)."""
    stop: stop_base = stop_never if deadline is None else stop_after_delay(deadline)
    if until is not None:  # tenacity's check is is_set(), which asyncio's Event has too
        stop = stop | stop_when_event_set(until)  # type: ignore[arg-type]
    return AsyncRetrying(
        retry=retry_if_exception(transient),
        wait=wait_exponential(multiplier=first, max=2.0) + wait_random(0, 0.05),
        stop=stop,
        before_sleep=before_sleep_log(log, logging.INFO),
        reraise=True,
    )


async def retried(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    deadline: float | None = None,
    until: asyncio.Event | None = None,
    **kwargs: Any,
) -> T:
    """``await fn(*args, **kwargs)``, retried by :func:`on_unavailable`.

    The first try goes straight to ``fn``; tenacity comes in only once it failed. On the hot
    path (every claim round, every settle) calls almost never fail, and setting tenacity up for
    each cost an agent 0.14 ms of CPU per task, 7 % of its share (``spillover bench profile``)."""
    started = time.monotonic()
    try:
        return await fn(*args, **kwargs)
    except Exception as e:
        spent = time.monotonic() - started
        if not transient(e) or (deadline is not None and spent >= deadline):
            raise
        if until is not None and until.is_set():
            raise
        log.info("%s: %s; retrying", getattr(fn, "__qualname__", fn), e)
    await asyncio.sleep(FIRST_WAIT + random.uniform(0, 0.05))  # as the policy's first backoff
    left = None if deadline is None else max(0.0, deadline - (time.monotonic() - started))
    result: T = await on_unavailable(left, until, first=2 * FIRST_WAIT)(fn, *args, **kwargs)
    return result
