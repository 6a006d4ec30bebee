"""Webhook deliveries: exactly one delivery chain per webhook across every agent that follows a
partition, and how it went, for the task's status.

Every agent of the home region sees each finished task with a webhook (``finished.py``); the one
whose create-if-absent of ``hook-claims/{id}`` succeeds, under its lease, delivers. It records
each attempt in ``hooked/{id}`` fenced by that claim, and lets the claim go with the final state
in one txn. The others follow the claims: one that goes before its chain ended (the sender died
and its lease lapsed) is taken by another agent, which goes on from the recorded attempts. A
sender that lost its claim cannot record any more (the fence), so two chains never both go on.

Delivery stays at least once: a sender that dies after a receiver took the POST but before it
recorded that is followed by another that sends it again. Receivers deduplicate by task id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from federation import keys
from federation.claims import Held, step
from federation.etcd import KV, absent, delete, get, put, value_is
from federation.queue import Queue
from federation.task import WebhookDelivery, partition_of


def _decode(kv: KV | None) -> WebhookDelivery:
    if kv is None:
        return WebhookDelivery()
    if not kv.value.startswith(b"{"):  # a marker of the release before states: final
        delivered = kv.value == b"delivered"
        return WebhookDelivery(delivered=delivered, gave_up=not delivered,
                               last_error=None if delivered else kv.value.decode())  # fmt: skip
    return WebhookDelivery.model_validate_json(kv.value)


def _keys(queue: Queue, task_id: str) -> tuple[bytes, bytes]:
    p = partition_of(task_id)
    return keys.hook_claim(queue.root, p, task_id), keys.hooked(queue.root, p, task_id)


async def delivery(queue: Queue, task_id: str) -> WebhookDelivery:
    """How the task's webhook went so far (nothing yet: no attempts)."""
    _, state = _keys(queue, task_id)
    return _decode(await queue.etcd(partition_of(task_id)).get(state))


async def claim(queue: Queue, task_id: str, me: str, lease: int) -> WebhookDelivery | None:
    """Take the task's delivery chain if no agent holds it: its state as of the claim (read in
    the same txn), or None when another agent holds it. A final state is let go at once: the
    chain ended between the caller's look and its claim."""
    etcd, (claim_key, state) = queue.etcd(partition_of(task_id)), _keys(queue, task_id)
    taken = await etcd.txn([absent(claim_key)], [put(claim_key, me.encode(), lease), get(state)])
    if not taken.succeeded:
        return None
    found = _decode(taken.got(1))
    if found.final:
        await release(queue, task_id, me)
    return found


async def record(queue: Queue, task_id: str, me: str, state: WebhookDelivery) -> bool:
    """Write how the chain goes, if the claim is still ``me``'s (False: it is not, the chain
    must stop). A final state lets the claim go in the same txn."""
    etcd, (claim_key, key) = queue.etcd(partition_of(task_id)), _keys(queue, task_id)
    ops = [put(key, state.model_dump_json().encode())]
    if state.final:
        ops.append(delete(claim_key))
    return (await etcd.txn([value_is(claim_key, me.encode())], ops)).succeeded


async def release(queue: Queue, task_id: str, me: str) -> None:
    claim_key, _ = _keys(queue, task_id)
    etcd = queue.etcd(partition_of(task_id))
    await etcd.txn([value_is(claim_key, me.encode())], [delete(claim_key)])


async def released(queue: Queue, partition: str) -> AsyncIterator[str]:
    """Ids of tasks whose delivery claim went (its chain ended, or its holder's lease lapsed),
    as it goes; after a watch gap, the claims no longer listed."""
    held: dict[bytes, Held] = {}
    async for item in queue.etcd(partition).list_watch(keys.hook_claims(queue.root, partition)):
        held, gone = step(held, item, 0.0)  # when each was first seen does not matter here
        for key in gone:
            yield keys.task_id_of(key)
