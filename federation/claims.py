"""A claimer's side of its claims, beyond settling them (``queue.py``): which of them ended
under it (a client cancelled the task, or the lease lapsed), so it stops running those tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator

from federation import keys
from federation.etcd import Event, Snapshot
from federation.queue import Claimer, Queue


def step(held: frozenset[bytes], item: Snapshot | Event) -> tuple[frozenset[bytes], list[bytes]]:
    """The claim keys held after ``item`` of a list-watch of them, and those it ended. After a
    gap (the watch fell behind compaction, a new snapshot came) the deletes it hid are the keys
    no longer listed."""
    if isinstance(item, Snapshot):
        listed = frozenset(kv.key for kv in item.kvs)
        return listed, sorted(held - listed)
    if item.kind == "put":
        return held | {item.kv.key}, []
    return held - {item.kv.key}, [item.kv.key]


async def revoked(queue: Queue, claimer: Claimer, partition: str) -> AsyncIterator[str]:
    """Ids of tasks whose claim by ``claimer`` in ``partition`` is gone, as it goes: settled or
    released by the claimer itself, cancelled (a cancel deletes the claim, which also fences
    off its result), or lapsed with the lease. A claimer stops running any it still runs.
    Follow from before the first claim: a claim is known from its listing or its put."""
    held: frozenset[bytes] = frozenset()
    prefix = keys.claims_of(queue.root, partition, claimer.id)
    async for item in queue.etcd(partition).list_watch(prefix):
        held, gone = step(held, item)
        for key in gone:
            yield keys.task_id_of(key)
