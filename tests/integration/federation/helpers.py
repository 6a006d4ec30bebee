from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from federation.aio import cancel_and_wait
from federation.queue import Claim, Claimer, Queue
from federation.ready import ReadyView


@contextlib.asynccontextmanager
async def following(view: ReadyView) -> AsyncIterator[ReadyView]:
    """Run a view's list-watch for the duration of the block."""
    task = asyncio.create_task(view.run())
    try:
        await asyncio.wait_for(view.wait_synced(), 10)
        yield view
    finally:
        await cancel_and_wait([task])


async def claim_until(
    view: ReadyView, claimer: Claimer, n: int, *, timeout: float = 10.0
) -> list[Claim]:
    """Claim until ``n`` tasks are held (waiting on the watch between tries)."""
    held: list[Claim] = []
    async with asyncio.timeout(timeout):
        while len(held) < n:
            view.changed.clear()
            held += await view.claim(claimer, n - len(held))
            if len(held) < n:
                await view.changed.wait()
    return held


async def drain(queue: Queue, view: ReadyView, claimer: Claimer, total: int) -> list[Claim]:
    return await claim_until(view, claimer, total)
