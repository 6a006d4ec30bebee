"""The reaper: requeues tasks whose claimer died, expires tasks that waited too long, and deletes
finished tasks once their retention ends. Every live agent runs one; its txns compare what they
read, so two reapers never move a task twice (one sub-txn per task, in batches).

Its cost does not grow with the backlog: expiry reads only the head of each (app, priority)
run of the queue (the oldest there are the first due), and the sweep reads only done entries
whose retention has ended (the done index is in that order).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from federation import keys
from federation import task as sm
from federation.errors import Unavailable
from federation.etcd import KV, Etcd, Op, absent, delete, mod_is, nested
from federation.queue import Queue, decode, ns

log = logging.getLogger(__name__)

PAGE = 200  # entries read per range while expiring or sweeping
# Storage pressure (``storage.py``): finished tasks are kept this long at most, whatever their
# app's result_retention says, until etcd is back under its low watermark.
PRESSURE_RETENTION = 300.0


async def run_reaper(
    queue: Queue,
    partitions: Iterable[str],
    *,
    interval: float = 0.5,
    expire_every: float = 2.0,
    sweep_every: float = 30.0,
    pressure: Callable[[str], bool] = lambda partition: False,
) -> None:
    """Forever: every ``interval`` s requeue lost claims (a lost claim is back in the queue
    within lease TTL + interval); every ``expire_every`` s expire overdue tasks; every
    ``sweep_every`` s (every interval under storage ``pressure``) sweep finished tasks."""
    partitions = tuple(partitions)
    loop = asyncio.get_running_loop()
    next_expiry = next_sweep = loop.time()
    while True:
        now = loop.time()
        expiring, sweeping = now >= next_expiry, now >= next_sweep
        for p in partitions:
            try:
                moved = await requeue_lost(queue, p)
                expired = await expire_due(queue, p) if expiring else 0
                squeezed = pressure(p)
                swept = 0
                if sweeping or squeezed:
                    short = PRESSURE_RETENTION if squeezed else None
                    swept = await sweep_retention(queue, p, pressure_retention=short)
            except Unavailable as e:
                log.info("reaper: partition %s unavailable (%s)", p, e)
                continue
            if moved or expired or swept:
                log.info("reaper %s: requeued %d, expired %d, deleted %d", p, moved, expired, swept)
        if expiring:
            next_expiry = now + expire_every
        if sweeping:
            next_sweep = now + sweep_every
        await asyncio.sleep(interval)


async def expire_due(queue: Queue, partition: str) -> int:
    """Expire queued tasks of a partition that waited past their deadline. Within one app and
    priority the queue is in age order and the oldest expire first, so each run is read from
    its head until the first task still in time: a deep backlog costs a few short reads."""
    etcd, now = queue.etcd(partition), queue.clock()
    ready = keys.ready_all(queue.root, partition)
    end = keys.prefix_end(ready)
    start, subs = ready, []
    while True:
        kvs, _, more = await etcd.range(start, end, limit=PAGE)
        if not kvs:
            break
        for kv in kvs:
            record = decode(kv.value)
            if record.deadline > now:
                start = keys.prefix_end(_run_of(kv.key))  # the rest of this run is younger
                break
            expired = sm.expire(record, now=now)
            subs.append(
                nested([mod_is(kv.key, kv.mod_revision)],
                       [delete(kv.key), *queue.settle_ops(expired)])
            )  # fmt: skip
        else:
            if not more:
                break
            start = kvs[-1].key + b"\x00"
    return await _run_batches(etcd, subs, per_sub=5)


def _run_of(ready_key: bytes) -> bytes:
    """``.../ready/{app}/{9-prio}/`` of a queue entry: its (app, priority) run."""
    return ready_key.rsplit(b"/", 2)[0] + b"/"


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


async def sweep_retention(
    queue: Queue, partition: str, *, pressure_retention: float | None = None
) -> int:
    """Delete finished tasks (record, bodies, idempotency key) whose retention has ended; with
    ``pressure_retention``, also those that finished longer ago than that."""
    etcd, root, now = queue.etcd(partition), queue.root, queue.clock()
    start = keys.done_all(root, partition)
    due, _ = await etcd.range_all(start, keys.done_before(root, partition, ns(now)))
    if pressure_retention is not None:
        due += await _finished_before(etcd, keys.done_before(root, partition, ns(now)),
                                      keys.prefix_end(start), now - pressure_retention)  # fmt: skip
    subs = []
    for kv in due:
        r = decode(kv.value)  # the done entry holds the record as it finished
        ops = [
            delete(kv.key),
            delete(keys.task(root, partition, r.id)),
            delete(keys.payload(root, partition, r.id)),
            delete(keys.result(root, partition, r.id)),
            delete(keys.events(root, partition, r.id)),
            delete(keys.hooked(root, partition, r.id)),
        ]
        if r.idempotency_key is not None:
            ops.append(delete(keys.idempotency(root, r.owner, r.idempotency_key)))
        subs.append(nested([], ops))
    return await _run_batches(etcd, subs, per_sub=8)


async def _finished_before(
    etcd: Etcd, start: bytes, end: bytes, cutoff: float, pages: int = 5
) -> list[KV]:
    """Done entries not yet due that finished before ``cutoff``, read in retention order. That
    order is finish order for apps of one retention, so the scan stops at the first page with
    none (and after ``pages`` pages: the next sweep, half a second later, goes on)."""
    out: list[KV] = []
    for _ in range(pages):
        kvs, _, more = await etcd.range(start, end, limit=PAGE * 5)
        found = [kv for kv in kvs if (decode(kv.value).finished_at or cutoff) < cutoff]
        out += found
        if not found or not more:
            break
        start = kvs[-1].key + b"\x00"
    return out


async def _run_batches(etcd: Etcd, subs: list[Op], *, per_sub: int) -> int:
    size = max(1, 120 // per_sub)
    done = 0
    for i in range(0, len(subs), size):
        result = await etcd.txn([], subs[i : i + size])
        done += sum(result.nested_succeeded())
    return done
