"""A claimer's local view of an app's queue entries across partitions, kept by list-then-watch,
and the claim step that picks from it. The view is what makes claims cheap: the claimer learns of
a new task from the watch (one event, ~2 ms after enqueue) and claims it in one txn, without
racing peers for the head of a range read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from federation import keys
from federation.etcd import Event, Snapshot
from federation.placement import ClaimRules, ReadyEntry, claim_order
from federation.queue import MAX_BATCH, Claim, Claimer, Queue, decode


class ReadyView:
    def __init__(self, queue: Queue, app: str, partitions: Iterable[str]) -> None:
        self.queue = queue
        self.app = app
        self.partitions = tuple(partitions)
        self.entries: dict[bytes, ReadyEntry] = {}
        self.changed = asyncio.Event()
        self.synced: dict[str, asyncio.Event] = {p: asyncio.Event() for p in self.partitions}

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for p in self.partitions:
                tg.create_task(self._follow(p))

    async def wait_synced(self) -> None:
        for ev in self.synced.values():
            await ev.wait()

    async def _follow(self, partition: str) -> None:
        prefix = keys.ready_app(self.queue.root, partition, self.app)
        async for item in self.queue.clusters.for_partition(partition).list_watch(prefix):
            self.apply(prefix, item)
            if isinstance(item, Snapshot):
                self.synced[partition].set()

    def apply(self, prefix: bytes, item: Snapshot | Event) -> None:
        if isinstance(item, Snapshot):
            for k in [k for k in self.entries if k.startswith(prefix)]:
                del self.entries[k]
            for kv in item.kvs:
                self.entries[kv.key] = ReadyEntry(kv.key, kv.mod_revision, decode(kv.value))
        elif item.kind == "put":
            kv = item.kv
            self.entries[kv.key] = ReadyEntry(kv.key, kv.mod_revision, decode(kv.value))
        else:
            self.entries.pop(item.kv.key, None)
        self.changed.set()

    async def claim(
        self,
        claimer: Claimer,
        n: int,
        rules: ClaimRules | None = None,
        *,
        rank: int = 0,
        n_claimers: int = 1,
    ) -> list[Claim]:
        """Claim up to ``n`` tasks in claim order (never more: no prefetch), at most
        ``MAX_BATCH`` per call: the caller claims again while it has free slots."""
        if n <= 0:
            return []
        rules = rules or ClaimRules(claimer.region)
        # At most one claim txn's worth: every entry in ``order`` is tried (and so dropped
        # below); an entry dropped untried would never come back, its task queued for good.
        order = claim_order(
            self.entries.values(), rules, self.queue.clock(), rank=rank, n_claimers=n_claimers
        )[: min(n, MAX_BATCH)]
        by_partition: dict[str, list[ReadyEntry]] = {}
        for e in order:
            by_partition.setdefault(e.record.partition, []).append(e)
        claimed: list[Claim] = []
        for entries in by_partition.values():
            claimed.extend(await self.queue.claim(claimer, entries))
        # Entries we tried are gone from our view whether we won them or not; if a peer changed
        # one instead, its watch event puts it back. This stops us retrying a lost race in a loop.
        for e in order:
            self.entries.pop(e.key, None)
        return claimed
