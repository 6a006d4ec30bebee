"""A claimer's side of its claims, beyond settling them (``queue.py``): which of them ended
under it (a client cancelled the task, or the lease lapsed), so it stops running those tasks;
and letting go of one whose outcome cannot be written, so the task is not stuck ``running``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from federation import keys
from federation.errors import NotClaimer
from federation.etcd import Event, Snapshot, delete, value_is
from federation.queue import Claim, Claimer, Queue


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


async def abandon(queue: Queue, claim: Claim) -> None:
    """Let go of a claim without settling it, when its outcome cannot be written: only the
    claim key goes (a delete, which etcd takes even with its space used up), and the reaper
    requeues the task as it does a dead claimer's. NotClaimer when it is not ours any more."""
    p = claim.record.partition
    result = await queue.etcd(p).txn([value_is(claim.key, claim.token)], [delete(claim.key)])
    if not result.succeeded:
        raise NotClaimer(f"task {claim.record.id}: the claim is no longer ours")


async def held(queue: Queue, claim: Claim) -> bool:
    """Whether ``claim`` is still the claimer's: its key holds its token. A claimer that
    claimed a task again under the same key gets the delete of the earlier claim late, from a
    watch: the key then holds the new claim's token, and the new run goes on."""
    kv = await queue.etcd(claim.record.partition).get(claim.key)
    return kv is not None and kv.value == claim.token
