"""The reaper: requeues tasks whose claimer died, expires tasks that waited too long, and deletes
finished tasks after their retention. Every live agent runs one; its txns compare what they read,
so two reapers never move a task twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from federation.errors import Unavailable
from federation.queue import Queue

log = logging.getLogger(__name__)

DEFAULT_RETENTION = 24 * 3600.0


async def run_reaper(
    queue: Queue,
    partitions: Iterable[str],
    *,
    interval: float = 0.5,
    retention: float = DEFAULT_RETENTION,
    retention_every: float = 60.0,
) -> None:
    """Forever: every ``interval`` s requeue lost claims and expire overdue tasks (a lost claim is
    back in the queue within lease TTL + interval); every ``retention_every`` s sweep old tasks."""
    partitions = tuple(partitions)
    loop = asyncio.get_running_loop()
    next_sweep = loop.time()
    while True:
        sweep = loop.time() >= next_sweep
        for p in partitions:
            try:
                moved = await queue.requeue_lost(p)
                expired = await queue.expire_due(p)
                swept = await queue.sweep_retention(p, retention) if sweep else 0
            except Unavailable as e:
                log.info("reaper: partition %s unavailable (%s)", p, e)
                continue
            if moved or expired or swept:
                log.info("reaper %s: requeued %d, expired %d, deleted %d", p, moved, expired, swept)
        if sweep:
            next_sweep = loop.time() + retention_every
        await asyncio.sleep(interval)
