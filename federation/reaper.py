"""The reaper: requeues tasks whose claimer died, expires tasks that waited too long, and deletes
finished tasks after their retention. Every live agent runs one; its txns compare what they read,
so two reapers never move a task twice (one sub-txn per task, in batches)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from federation import keys
from federation import task as sm
from federation.errors import Unavailable
from federation.etcd import Etcd, Op, absent, delete, mod_is, nested
from federation.queue import Queue, decode, ns

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
                moved = await requeue_lost(queue, p)
                expired = await expire_due(queue, p)
                swept = await sweep_retention(queue, p, retention) if sweep else 0
            except Unavailable as e:
                log.info("reaper: partition %s unavailable (%s)", p, e)
                continue
            if moved or expired or swept:
                log.info("reaper %s: requeued %d, expired %d, deleted %d", p, moved, expired, swept)
        if sweep:
            next_sweep = loop.time() + retention_every
        await asyncio.sleep(interval)


async def expire_due(queue: Queue, partition: str) -> int:
    """Expire queued tasks of a partition that waited past their deadline."""
    etcd, now = queue.etcd(partition), queue.clock()
    prefix = keys.ready_all(queue.root, partition)
    kvs, _ = await etcd.range_all(prefix, keys.prefix_end(prefix))
    due = [(kv, decode(kv.value)) for kv in kvs]
    subs = [
        nested(
            [mod_is(kv.key, kv.mod_revision)],
            [delete(kv.key), *queue.settle_ops(sm.expire(r, now=now))],
        )
        for kv, r in due
        if r.deadline <= now
    ]
    return await _run_batches(etcd, subs, per_sub=4)


async def requeue_lost(queue: Queue, partition: str) -> int:
    """Requeue running tasks whose claim vanished with its claimer's lease (SIGKILL, hang,
    partition). Any live process may run this: every move compares what it read."""
    etcd, root = queue.etcd(partition), queue.root
    running_prefix = keys.running_all(root, partition)
    running, _ = await etcd.range_all(running_prefix, keys.prefix_end(running_prefix))
    if not running:
        return 0
    claims_prefix = keys.claims_all(root, partition)
    held, _ = await etcd.range_all(claims_prefix, keys.prefix_end(claims_prefix), keys_only=True)
    live = {kv.key for kv in held}
    now, subs = queue.clock(), []
    for kv in running:
        if kv.value in live:
            continue
        task_kv = await etcd.get(keys.task(root, partition, keys.task_id_of(kv.key)))
        if task_kv is None:
            continue
        record = decode(task_kv.value)
        if record.state is not sm.State.RUNNING:
            continue
        back = sm.requeue(record, now=now, reason=f"claimer {record.claimer} lost its lease")
        subs.append(
            nested(
                [
                    mod_is(kv.key, kv.mod_revision),
                    absent(kv.value),
                    mod_is(task_kv.key, task_kv.mod_revision),
                ],
                [delete(kv.key), *queue.settle_ops(back)],
            )
        )
    return await _run_batches(etcd, subs, per_sub=8)


async def sweep_retention(queue: Queue, partition: str, retention: float) -> int:
    """Delete finished tasks (record, bodies, idempotency key) ``retention`` s after the end."""
    etcd, root = queue.etcd(partition), queue.root
    start = keys.done_all(root, partition)
    end = keys.done_before(root, partition, ns(queue.clock() - retention))
    old, _ = await etcd.range_all(start, end, keys_only=True)
    subs = []
    for kv in old:
        task_id = keys.task_id_of(kv.key)
        ops = [
            delete(kv.key),
            delete(keys.task(root, partition, task_id)),
            delete(keys.payload(root, partition, task_id)),
            delete(keys.result(root, partition, task_id)),
            delete(keys.events(root, partition, task_id)),
            delete(keys.hooked(root, partition, task_id)),
        ]
        task_kv = await etcd.get(keys.task(root, partition, task_id))
        if task_kv is not None:
            r = decode(task_kv.value)
            if r.idempotency_key is not None:
                ops.append(delete(keys.idempotency(root, r.app, r.idempotency_key)))
        subs.append(nested([], ops))
    return await _run_batches(etcd, subs, per_sub=8)


async def _run_batches(etcd: Etcd, subs: list[Op], *, per_sub: int) -> int:
    size = max(1, 120 // per_sub)
    done = 0
    for i in range(0, len(subs), size):
        result = await etcd.txn([], subs[i : i + size])
        done += sum(result.nested_succeeded())
    return done
