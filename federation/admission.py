"""Admission of new tasks: an app's queue in one home partition holds at most ``[queue]
max_depth`` tasks. Past it, a submit answers 429 queue_full with a Retry-After from the recent
drain rate, and nothing is stored: a queue in front of GPUs pushes back early instead of
growing until etcd is full.

The depth comes from etcd (a count of the app's queue entries, no values sent), at most once a
``refresh`` per (partition, app) and process, plus this process's own enqueues since. Other
edges' enqueues in between are not seen, so N edges taking R submits/s each can overshoot by
about N·R·refresh tasks: a soft limit, priced at one small read a second. etcd 3.4 walks every
counted key (``scan.py``), so a deep queue is counted less often: never more than a fiftieth of
the time (a queue allowed a million tasks, ~0.4 s to count, is counted every ~20 s).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from federation import keys
from federation.errors import QueueFull
from federation.queue import Queue

MAX_TRACKED = 10_000  # (partition, app) pairs kept; the least recently used go first
COUNT_SHARE = 50


def retry_after(depth: int, max_depth: int, drain_rate: float) -> float:
    """Seconds until a full queue should have room again: long enough to drain a tenth of
    ``max_depth`` at the recent rate, so the clients told to wait do not all return at once.
    For example 10,000 queued at most, 10,050 now, draining 200/s: (50 + 1,000) / 200 = 5.25 s.
    Nothing draining (no replica serves the app): 30 s. Always 1 to 60 s."""
    if drain_rate <= 0:
        return 30.0
    backlog = depth - max_depth + max(1, max_depth // 10)
    return min(60.0, max(1.0, backlog / drain_rate))


@dataclass
class _Depth:
    counted: int  # what etcd said
    until: float  # when to ask again
    added: int = 0  # this process's enqueues since


class Depths:
    def __init__(
        self, queue: Queue, *, refresh: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.queue = queue
        self.refresh = refresh
        self.clock = clock
        self._depths: OrderedDict[tuple[str, str], _Depth] = OrderedDict()
        self._counting: dict[tuple[str, str], asyncio.Task[int]] = {}

    async def depth(self, partition: str, app: str) -> int:
        key = (partition, app)
        known = self._depths.get(key)
        if known is not None and self.clock() < known.until:
            self._depths.move_to_end(key)
            return known.counted + known.added
        # One count in flight per queue: a burst of submits shares it.
        counting = self._counting.get(key)
        if counting is None:
            counting = asyncio.ensure_future(self._count(partition, app))
            self._counting[key] = counting
            counting.add_done_callback(lambda _: self._counting.pop(key, None))
        started = self.clock()
        counted = await asyncio.shield(counting)
        took = self.clock() - started
        self._depths[key] = _Depth(counted, self.clock() + max(self.refresh, COUNT_SHARE * took))
        self._depths.move_to_end(key)
        while len(self._depths) > MAX_TRACKED:
            self._depths.popitem(last=False)
        return counted

    async def _count(self, partition: str, app: str) -> int:
        return await self.queue.etcd(partition).count(
            keys.ready_app(self.queue.root, partition, app)
        )

    def added(self, partition: str, app: str) -> None:
        if (known := self._depths.get((partition, app))) is not None:
            known.added += 1

    async def admit(self, partition: str, app: str, max_depth: int, drain_rate: float) -> None:
        """Raise QueueFull if the app's queue in ``partition`` is at ``max_depth``."""
        depth = await self.depth(partition, app)
        if depth >= max_depth:
            raise QueueFull(
                f"app {app!r} has {depth} tasks queued in {partition}, its [queue] max_depth "
                f"is {max_depth}; retry later",
                retry_after=retry_after(depth, max_depth, drain_rate),
            )
