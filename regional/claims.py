"""The agent's own claims, followed in every partition it claims from (``federation/claims.py``):
a claim that goes under a running task stops the run (a client cancelled the task, or the lease
lapsed); a claim that nothing of the agent runs ``GRACE`` s after it appeared is given back to
the queue.

Such orphans come from claim txns whose call was cut (a failover closed the channel): the claimer
reads its claims back and keeps what it finds (``Queue.claim``), but Raft may still apply a
proposal already on its way after that read. Its task sat ``running`` under the agent's live
lease with nobody running it, and no reaper requeues a claim whose lease lives (1 of 5,400 tasks
in the chaos suite's full leader-kill scenario).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from federation.claims import Held, give_back, orphaned, own_claims
from federation.errors import Rejected, Unavailable
from federation.queue import Claimer, Queue

log = logging.getLogger(__name__)

# Longer than a cut claim's read-back (``Queue._claims_held`` retries it up to 10 s), after which
# the claims it found are running.
GRACE = 15.0


class Claims:
    def __init__(
        self,
        queue: Queue,
        claimer: Claimer,
        running: Callable[[str], bool],
        cancel: Callable[[str], None],
        clock: Callable[[], float],
    ) -> None:
        self.queue = queue
        self.claimer = claimer
        self.running = running  # whether the agent runs (or settles) the task
        self.cancel = cancel  # stop the task's run: its claim went
        self.clock = clock
        self.grace = GRACE
        self.held: dict[str, Mapping[bytes, Held]] = {}  # partition: its claims of ours
        # Every partition the agent claims in (its own, its peers', its apps' placements):
        # ours to follow, and where results of ours may lie.
        self.partitions: set[str] = set()
        self._followed: set[str] = set()
        self._group: asyncio.TaskGroup | None = None  # while run() runs

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._group = tg
                self.follow(())  # those asked for before run() started
                tg.create_task(self._give_back_orphans())
        finally:
            self._group = None
            self._followed.clear()

    def follow(self, partitions: Iterable[str]) -> None:
        """Follow our claims in ``partitions`` too (an app placed in a region that is not a
        peer claims there): call before claiming in them."""
        self.partitions.update(partitions)
        if self._group is None:
            return
        for p in sorted(self.partitions - self._followed):
            self._followed.add(p)
            self._group.create_task(self._follow(p))

    async def _follow(self, partition: str) -> None:
        async for change in own_claims(self.queue, self.claimer, partition, self.clock):
            self.held[partition] = change.held
            for task_id in change.revoked:
                self.cancel(task_id)

    async def _give_back_orphans(self) -> None:
        while True:
            await asyncio.sleep(self.grace / 3)
            now = self.clock()
            for held in list(self.held.values()):
                for key, h in orphaned(held, now, self.grace, self.running):
                    try:
                        if await give_back(self.queue, key, h, "claimed by a txn cut short"):
                            log.warning("claim %s: nothing ran it; given back", key.decode())
                    except (Unavailable, Rejected) as e:  # still ours: tried at the next round
                        log.warning("claim %s not given back yet: %s", key.decode(), e)
