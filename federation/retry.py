"""The one retry policy: etcd briefly away (:class:`Unavailable`) is retried with capped,
jittered exponential backoff (50 ms, 100 ms, ... 2 s), for a bounded time where the caller has
something better to do after (give a task back, let a lease lapse), or for as long as it takes
where it has not (a follower that must list before it can watch).

    await retried(queue.release, claim, reason, deadline=30)

Anything else is raised at once: a refusal that retrying cannot heal is not retried as if it
could.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_delay,
    stop_never,
    wait_exponential,
    wait_random,
)

from federation.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


def on_unavailable(deadline: float | None = None) -> AsyncRetrying:
    """Retry on :class:`Unavailable` for ``deadline`` seconds (None: until it succeeds), then
    raise the last error."""
    return AsyncRetrying(
        retry=retry_if_exception_type(Unavailable),
        wait=wait_exponential(multiplier=0.05, max=2.0) + wait_random(0, 0.05),
        stop=stop_never if deadline is None else stop_after_delay(deadline),
        before_sleep=before_sleep_log(log, logging.INFO),
        reraise=True,
    )


async def retried(
    fn: Callable[..., Awaitable[T]], *args: Any, deadline: float | None = None, **kwargs: Any
) -> T:
    """``await fn(*args, **kwargs)``, retried by :func:`on_unavailable`."""
    result: T = await on_unavailable(deadline)(fn, *args, **kwargs)
    return result
