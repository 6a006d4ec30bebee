"""A claimer's side of its claims, beyond settling them (``queue.py``): its claims as they come
and go, so it stops running tasks whose claim ended under it (a client cancelled the task, or
the lease lapsed) and gives back those it holds but runs nothing for; and letting go of one whose
outcome cannot be written, so the task is not stuck ``running``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from federation import keys
from federation.errors import Conflict, NotClaimer, NotFound
from federation.etcd import Event, Snapshot, delete, value_is
from federation.queue import Claim, Claimer, Queue
from federation.task import State


@dataclass(frozen=True, slots=True)
class Held:
    """A claim of ours, as our list-watch of them shows it."""

    token: bytes
    since: float  # when it was first seen with this token


@dataclass(frozen=True, slots=True)
class OwnClaims:
    held: Mapping[bytes, Held]  # claim key: every claim of ours in the partition now
    revoked: list[str]  # ids of tasks whose claim this change ended


def step(
    held: Mapping[bytes, Held], item: Snapshot | Event, now: float
) -> tuple[dict[bytes, Held], list[bytes]]:
    """The claims held after ``item`` of a list-watch of them, and the keys it ended. After a
    gap (the watch fell behind compaction, a new snapshot came) the deletes it hid are the keys
    no longer listed. A claim keeps when it was first seen while its token stays the same."""

    def seen(key: bytes, token: bytes) -> Held:
        before = held.get(key)
        return before if before is not None and before.token == token else Held(token, now)

    if isinstance(item, Snapshot):
        listed = {kv.key: seen(kv.key, kv.value) for kv in item.kvs}
        return listed, sorted(held.keys() - listed.keys())
    if item.kind == "put":
        return {**held, item.kv.key: seen(item.kv.key, item.kv.value)}, []
    return {k: h for k, h in held.items() if k != item.kv.key}, [item.kv.key]


async def own_claims(
    queue: Queue, claimer: Claimer, partition: str, clock: Callable[[], float]
) -> AsyncIterator[OwnClaims]:
    """``claimer``'s claims in ``partition`` after each change, and the tasks whose claim the
    change ended: settled or released by the claimer itself, cancelled (a cancel deletes the
    claim, which also fences off its result), or lapsed with the lease. A claimer stops running
    any it still runs. Follow from before the first claim: a claim is known from its listing or
    its put."""
    held: dict[bytes, Held] = {}
    prefix = keys.claims_of(queue.root, partition, claimer.id)
    async for item in queue.etcd(partition).list_watch(prefix):
        held, gone = step(held, item, clock())
        yield OwnClaims(held, [keys.task_id_of(key) for key in gone])


def orphaned(
    held: Mapping[bytes, Held], now: float, grace: float, running: Callable[[str], bool]
) -> list[tuple[bytes, Held]]:
    """Claims of ours that nothing of ours runs ``grace`` s after they appeared. A claim txn
    whose call was cut (a failover closed its channel, a timeout) may still be applied by etcd
    after the claimer read its claims back and found none: Raft commits a proposal already on
    its way. Its task would sit ``running`` under our live lease with nobody running it, and no
    reaper requeues a claim whose lease lives."""
    return [(key, h) for key, h in held.items()
            if now - h.since >= grace and not running(keys.task_id_of(key))]  # fmt: skip


async def give_back(queue: Queue, key: bytes, held: Held, reason: str) -> bool:
    """Requeue the task of a claim of ours (an orphan), fenced on its token: one settled,
    cancelled or claimed again meanwhile is left alone. Whether it was given back."""
    try:
        record = await queue.get(keys.task_id_of(key))
        if record.state is not State.RUNNING:
            return False
        await queue.release(Claim(record, held.token, key), reason, ran=False)
    except (NotClaimer, NotFound, Conflict):
        return False
    return True


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
