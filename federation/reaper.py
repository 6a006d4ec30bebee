"""The reaper: requeues tasks whose claimer died, expires tasks that waited too long, and deletes
finished tasks once their retention ends. Every live agent runs one; its txns compare what they
read, so two reapers never move a task twice (one sub-txn per task, in batches).

Its cost does not grow with the backlog: expiry reads, in each (app, priority) run of the queue,
only the tasks enqueued longer ago than the app's response_grace_period (a range bounded by key,
so etcd walks only those: ``scan.py``), and the sweep reads only done entries whose retention has
ended (the done index is in that order).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from federation import keys
from federation import task as sm
from federation.errors import Unavailable
from federation.etcd import KV, Etcd, Op, absent, delete, mod_is, nested
from federation.queue import Queue, decode, ns
from federation.scan import RUNS

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
    graces: Callable[[], Mapping[str, float]] = dict,
    discover_every: float = 600.0,
) -> None:
    """Forever: every ``interval`` s requeue lost claims (a lost claim is back in the queue
    within lease TTL + interval); every ``expire_every`` s expire overdue tasks of the deployed
    apps (``graces``: app → response_grace_period), and every ``discover_every`` s those of apps
    no longer deployed; every ``sweep_every`` s (every interval under storage ``pressure``)
    sweep finished tasks."""
    partitions = tuple(partitions)
    loop = asyncio.get_running_loop()
    next_expiry = next_sweep = next_discovery = loop.time()
    while True:
        now = loop.time()
        expiring, sweeping = now >= next_expiry, now >= next_sweep
        discovering = now >= next_discovery
        for p in partitions:
            try:
                moved = await requeue_lost(queue, p)
                expired = 0
                if expiring:
                    apps = dict(graces())
                    if discovering:  # a deleted app's tasks: their own deadlines decide
                        apps |= {a: 0.0 for a in await queued_apps(queue, p) if a not in apps}
                    expired = await expire_due(queue, p, apps)
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
            if discovering:
                next_discovery = now + discover_every
        if sweeping:
            next_sweep = now + sweep_every
        await asyncio.sleep(interval)


async def expire_due(queue: Queue, partition: str, graces: Mapping[str, float]) -> int:
    """Expire queued tasks of ``graces``' apps (app → response_grace_period) that waited past
    their deadline. Each (app, priority) run is read only below "enqueued a grace ago": etcd
    walks just those keys, however deep the rest of the backlog (each record's own deadline
    still decides: the app's grace may have changed since)."""
    etcd, now = queue.etcd(partition), queue.clock()
    subs = []
    for app, grace in graces.items():
        for run in range(RUNS):
            start = keys.ready_app(queue.root, partition, app) + b"%d/" % run
            end = start + b"%020d" % (ns(now - grace) + 1)
            while True:
                kvs, _, more = await etcd.range(start, end, limit=PAGE)
                for kv in kvs:
                    record = decode(kv.value)
                    if record.deadline <= now:
                        expired = sm.expire(record, now=now)
                        subs.append(
                            nested([mod_is(kv.key, kv.mod_revision)],
                                   [delete(kv.key), *queue.settle_ops(expired)])
                        )  # fmt: skip
                if not more:
                    break
                start = kvs[-1].key + b"\x00"
    return await _run_batches(etcd, subs, per_sub=6)


async def queued_apps(queue: Queue, partition: str) -> list[str]:
    """Every app with tasks queued in the partition: one read per app, each walking what lies
    after the last (so the whole queue once: for the rare look for apps no longer deployed)."""
    ready = keys.ready_all(queue.root, partition)
    apps: list[str] = []
    start = ready
    while True:
        kvs, _, _ = await queue.etcd(partition).range(
            start, keys.prefix_end(ready), limit=1, keys_only=True
        )
        if not kvs:
            return apps
        app = kvs[0].key[len(ready) :].split(b"/", 1)[0]
        apps.append(app.decode())
        start = keys.prefix_end(ready + app + b"/")


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
        due += await _finished_before(queue, partition, now, now - pressure_retention)
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
            delete(keys.hook_claim(root, partition, r.id)),  # a chain still going stops
            delete(keys.hook(root, partition, r.id)),
        ]
        if r.idempotency_key is not None:
            ops.append(delete(keys.idempotency(root, r.owner, r.idempotency_key)))
        subs.append(nested([], ops))
    return await _run_batches(etcd, subs, per_sub=10)


async def _finished_before(
    queue: Queue, partition: str, now: float, cutoff: float, windows: int = 9
) -> list[KV]:
    """Done entries not yet due that finished before ``cutoff``: read in windows of the time
    their retention ends, from now on, each wider than the last (a minute, then ×4), so each
    read walks only its window (``scan.py``) and a call reads at most ``windows`` of them and a
    few thousand entries (the next sweep, half a second later, goes on)."""
    etcd, out, start, span = queue.etcd(partition), [], now, 60.0
    for _ in range(windows):
        lo = keys.done_before(queue.root, partition, ns(start))
        hi = keys.done_before(queue.root, partition, ns(start + span))
        while True:
            kvs, _, more = await etcd.range(lo, hi, limit=PAGE * 5)
            out += [kv for kv in kvs if (decode(kv.value).finished_at or cutoff) < cutoff]
            if not more or len(out) >= PAGE * 5:
                break
            lo = kvs[-1].key + b"\x00"
        if len(out) >= PAGE * 5:
            break
        start, span = start + span, span * 4
    return out


async def _run_batches(etcd: Etcd, subs: list[Op], *, per_sub: int) -> int:
    size = max(1, 120 // per_sub)
    done = 0
    for i in range(0, len(subs), size):
        result = await etcd.txn([], subs[i : i + size])
        done += sum(result.nested_succeeded())
    return done
