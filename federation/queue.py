"""The federated queue: enqueue, claim, fenced complete, cancel (expiry, requeue of lost claims
and retention are the reaper's, ``reaper.py``).

Each operation that must be atomic is one etcd txn. Claims *move* a task (queue entry → claim
under the claimer's lease) and never delete it, so a claimer that dies loses nothing: the reaper
finds the running task whose claim vanished with the lease and puts it back. A result is written
only while the claim still holds the claimer's token (fencing), so it is committed exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from federation import keys
from federation import task as sm
from federation.aio import cancel_and_wait
from federation.blobs import BlobRef
from federation.errors import (
    Conflict,
    IdempotencyKeyReused,
    NotClaimer,
    NotFound,
    StorageFull,
    Unavailable,
    Unreachable,
)
from federation.etcd import (
    KV,
    Etcd,
    Op,
    Snapshot,
    absent,
    delete,
    get,
    mod_is,
    nested,
    put,
    value_is,
)
from federation.events import TaskEvents
from federation.groupcommit import GroupCommit
from federation.placement import ReadyEntry
from federation.session import Session
from federation.task import TaskError, TaskRecord
from federation.topology import Clusters

# etcd counts a nested txn's ops and the outer ones against --max-txn-ops (128). A claim is one
# compare and five ops (the fifth reads the payload, saving a round trip), so 20 claims
# (20 x 6 = 120) fit in one txn.
MAX_BATCH = 20
# Results up to this size live in the task's record (``TaskRecord.result_inline``): the record
# is written two or three times when a task finishes (its key, the done index, the webhook
# index) and read by every waiter.
RESULT_IN_RECORD = 512


def ns(t: float) -> int:
    return round(t * 1e9)


def encode(record: TaskRecord) -> bytes:
    return record.model_dump_json(exclude_defaults=True).encode()


def decode(value: bytes) -> TaskRecord:
    return TaskRecord.model_validate_json(value)


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed task and its payload. ``token`` fences every write the claimer makes for it."""

    record: TaskRecord
    token: bytes
    key: bytes
    payload: bytes = b""


class Claimer:
    """An identity that claims tasks: its id, its region and one session per etcd cluster."""

    def __init__(self, claimer_id: str, region: str, *, ttl: int = 5) -> None:
        self.id = claimer_id
        self.region = region
        self.ttl = ttl
        self.sessions: dict[str, Session] = {}  # by cluster name

    async def session(self, etcd: Etcd) -> Session:
        s = self.sessions.get(etcd.name)
        if s is None or s.lost.is_set():
            s = await Session(etcd, self.ttl).start()
            self.sessions[etcd.name] = s
        return s

    async def close(self) -> None:
        for s in self.sessions.values():
            await s.close()


class Queue:
    def __init__(self, clusters: Clusters, *, clock: Callable[[], float] = time.time) -> None:
        self.clusters = clusters
        self.root = clusters.root
        self.clock = clock
        # Per cluster name: new tasks and settles batch apart, because only new tasks must be
        # refused when etcd is out of space (``groupcommit.py``).
        self._enqueues: dict[str, GroupCommit] = {}
        self._settles: dict[str, GroupCommit] = {}

    def etcd(self, partition: str) -> Etcd:
        return self.clusters.for_partition(partition)

    def _enqueue_group(self, partition: str) -> GroupCommit:
        etcd = self.etcd(partition)
        quota_key = keys.quota_probe(self.root)
        return self._enqueues.setdefault(etcd.name, GroupCommit(etcd, quota_key))

    def _settle_group(self, partition: str) -> GroupCommit:
        etcd = self.etcd(partition)
        return self._settles.setdefault(etcd.name, GroupCommit(etcd))

    def ready_key(self, r: TaskRecord) -> bytes:
        return keys.ready(self.root, r.partition, r.app, r.priority, ns(r.created_at), r.id)

    def _index_key(self, r: TaskRecord) -> bytes:
        """Where a record in its state is indexed: the queue, or (finished) the done index, in
        the order its retention ends."""
        if r.state is sm.State.QUEUED:
            return self.ready_key(r)
        assert r.finished_at is not None
        return keys.done(self.root, r.partition, ns(r.finished_at + r.retention), r.id)

    def settle_ops(self, r: TaskRecord) -> list[Op]:
        """Ops that store a record in its new state. The index entry carries the record too:
        waiters watch only the done index. A finished task's body goes at once: nothing reads
        it again, and a day of retention would otherwise keep every body in etcd. One with a
        webhook is indexed once more, for the agents that deliver them (``finished.py``)."""
        p, value = r.partition, encode(r)
        ops = [put(keys.task(self.root, p, r.id), value), put(self._index_key(r), value)]
        if r.state.terminal:
            ops.append(delete(keys.payload(self.root, p, r.id)))
            if r.webhook is not None:
                ops.append(put(keys.hook(self.root, p, r.id), value))
        return ops

    def _settled_keys(self, r: TaskRecord) -> set[bytes]:
        """The keys ``settle_ops`` names (a group-committed txn may not name a key twice)."""
        p = r.partition
        names = {keys.task(self.root, p, r.id), self._index_key(r)}
        names.add(keys.payload(self.root, p, r.id))
        if r.state.terminal and r.webhook is not None:
            names.add(keys.hook(self.root, p, r.id))
        return names

    # -- enqueue and reads --------------------------------------------------------------------

    async def enqueue(self, record: TaskRecord, payload: bytes) -> tuple[TaskRecord, bool]:
        """Store a new task durably. Returns (task, created); with an idempotency key that was
        seen before, the first task and False. Raises Unavailable when nothing was stored.
        Concurrent enqueues into one cluster share a txn (``groupcommit.py``). A txn whose
        outcome is unknown (a timeout, a channel cut by a failover, a refusal such as "leader
        changed") is sent once more: if the first stored the task, the second's compare finds
        it, so a submit is answered rather than refused, and never stored twice."""
        p, root = record.partition, self.root
        task_key = keys.task(root, p, record.id)
        compare = [absent(task_key)]
        ops = [*self.settle_ops(record), put(keys.payload(root, p, record.id), payload)]
        failure: list[Op] = [get(task_key)]
        names = self._settled_keys(record)
        if record.idempotency_key is not None:
            idem = keys.idempotency(root, record.owner, record.idempotency_key)
            compare.append(absent(idem))
            ops.append(put(idem, record.id.encode()))
            failure = [get(idem)]
            names.add(idem)
        group, args = self._enqueue_group(p), (compare, ops, failure, frozenset(names))
        size, resent = len(payload) + 2048, False
        try:
            succeeded, responses = await group.txn(*args, size)
        except Unreachable:
            raise  # certainly not stored: the caller may store it elsewhere
        except StorageFull:
            if not await self._stored(p, task_key):
                raise  # certainly not stored: the caller may store it elsewhere
            return record, True
        except Unavailable as e:
            resent = True
            try:
                succeeded, responses = await group.txn(*args, size)
            except Unavailable as again:  # the first may still store it: never elsewhere
                if isinstance(again, StorageFull) and await self._stored(p, task_key):
                    return record, True
                message = f"{e.message}; sent again: {again.message}"
                raise Unavailable(message, retry_after=again.retry_after) from again
        if succeeded:
            return record, True
        found = responses[0].response_range.kvs
        if not found:
            raise Conflict(f"task {record.id} changed while it was being created; retry")
        # Found: stored by the first of two sends (then created by this call), or by an
        # earlier request (the same record, or the same idempotency key).
        if record.idempotency_key is not None:
            first = await self._first_of(record, found[0].value.decode())
            return first, resent and first.id == record.id
        return decode(found[0].value), resent

    async def _stored(self, p: str, task_key: bytes) -> bool:
        """Whether etcd holds the task after refusing its txn for space. Its quota is checked
        twice: before a txn is proposed (nothing written) and after it is applied (written,
        then refused); a read tells which (reads are linearizable, served without space)."""
        return await self.etcd(p).get(task_key) is not None

    async def idempotent(self, record: TaskRecord) -> TaskRecord | None:
        """The task its idempotency key already made in the record's partition's cluster, if
        any: asked before storing a retry anywhere else."""
        if record.idempotency_key is None:
            return None
        key = keys.idempotency(self.root, record.owner, record.idempotency_key)
        kv = await self.etcd(record.partition).get(key)
        return None if kv is None else await self._first_of(record, kv.value.decode())

    async def _first_of(self, record: TaskRecord, first_id: str) -> TaskRecord:
        """The first task of the record's idempotency key, if the record asks the same."""
        first = await self.get(first_id)
        if first.fingerprint is not None and first.fingerprint != record.fingerprint:
            assert record.idempotency_key is not None
            raise IdempotencyKeyReused(
                f"Idempotency-Key {record.idempotency_key[:64]!r} was used for another "
                f"request (task {first.id}: {first.app}/{first.function}, another body)"
            )
        return first

    async def get(self, task_id: str) -> TaskRecord:
        return (await self._get_kv(task_id))[0]

    async def _get_kv(self, task_id: str) -> tuple[TaskRecord, KV]:
        try:
            p = sm.partition_of(task_id)
        except ValueError as e:
            raise NotFound(str(e)) from None
        kv = await self.etcd(p).get(keys.task(self.root, p, task_id))
        if kv is None:
            raise NotFound(f"task {task_id} not found")
        return decode(kv.value), kv

    async def result(self, record: TaskRecord) -> bytes:
        """The result of the task: ``record`` as it finished (an earlier copy is read again,
        as a small result lives in the finished record)."""
        if record.state is not sm.State.SUCCEEDED:
            record = await self.get(record.id)
        if record.result_inline is not None:
            return record.result_inline
        kv = await self.etcd(record.partition).get(
            keys.result(self.root, record.partition, record.id)
        )
        if kv is None:
            raise NotFound(f"result of task {record.id} not found")
        return kv.value

    # -- claim and the fenced writes ----------------------------------------------------------

    async def claim(self, claimer: Claimer, entries: Iterable[ReadyEntry]) -> list[Claim]:
        """Move the given queue entries (one partition, in claim order) to this claimer. One txn,
        one sub-txn per entry; an entry someone else took or changed is skipped, not retried."""
        batch = list(entries)[:MAX_BATCH]
        if not batch:
            return []
        p = batch[0].record.partition
        if any(e.record.partition != p for e in batch):
            raise ValueError("claim() takes entries of one partition at a time")
        etcd = self.etcd(p)
        lease = (await claimer.session(etcd)).lease
        now = self.clock()
        claims, subs = [], []
        for e in batch:
            running = sm.start(e.record, region=claimer.region, claimer=claimer.id, now=now)
            claim_key = keys.claim(self.root, p, claimer.id, running.id)
            token = secrets.token_hex(8).encode()
            subs.append(
                nested(
                    [mod_is(e.key, e.mod_revision)],
                    [
                        delete(e.key),
                        put(keys.task(self.root, p, running.id), encode(running)),
                        put(claim_key, token, lease),
                        put(keys.running(self.root, p, running.id), claim_key),
                        get(keys.payload(self.root, p, running.id)),
                    ],
                )
            )
            claims.append(Claim(running, token, claim_key))
        try:
            result = await etcd.txn([], subs)
        except Unavailable:
            # The reply may be lost after etcd applied the txn: then we hold claims we do not
            # know of, and their tasks would sit "running" until our lease ends. Ask etcd.
            return await self._claims_held(etcd, claims)
        return [
            dataclasses.replace(c, payload=payload)
            for c, (ok, payload) in zip(claims, result.nested_reads(4), strict=True)
            if ok
        ]

    async def _claims_held(self, etcd: Etcd, tried: list[Claim]) -> list[Claim]:
        """Which of ``tried`` we hold (our token is in the claim key), with their payloads.
        Retried for up to 10 s; if etcd stays away the claims lapse with our lease anyway."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Unavailable),
            stop=stop_after_delay(10),
            wait=wait_exponential(multiplier=0.05, max=1),
            reraise=True,
        ):
            with attempt:
                held = []
                for c in tried:
                    kv = await etcd.get(c.key)
                    if kv is not None and kv.value == c.token:
                        p = c.record.partition
                        body = await etcd.get(keys.payload(self.root, p, c.record.id))
                        held.append(dataclasses.replace(c, payload=body.value if body else b""))
        return held

    async def _fenced(self, claim: Claim, record: TaskRecord, result: bytes | None) -> TaskRecord:
        """Settle a claimed task while the claim is still ours. Concurrent settles share a txn
        (``groupcommit.py``): an agent finishing many short tasks pays etcd once per batch."""
        p = record.partition
        running = keys.running(self.root, p, record.id)
        ops = [delete(claim.key), delete(running), *self.settle_ops(record)]
        touched = {claim.key, running, *self._settled_keys(record)}
        if result is not None:
            result_key = keys.result(self.root, p, record.id)
            ops.append(put(result_key, result))
            touched.add(result_key)
        size = len(result or b"") + 4096  # the record two or three times, keys
        succeeded, _ = await self._settle_group(p).txn(
            [value_is(claim.key, claim.token)], ops, [], frozenset(touched), size
        )
        if not succeeded:
            raise NotClaimer(
                f"task {record.id}: the claim is no longer ours (lease lost, requeued or cancelled)"
            )
        return record

    async def complete(
        self, claim: Claim, result: bytes, content_type: str, ref: BlobRef | None = None
    ) -> TaskRecord:
        """The result: ``result`` inline, or in a blob (``ref``; then ``result`` is empty). A
        small one goes in the record itself, not a key of its own: one write and, for whoever
        waits for it, one read fewer (a read per task cost a waiting client a third of its CPU)."""
        small = ref is None and len(result) <= RESULT_IN_RECORD
        done = sm.finish(
            claim.record, ok=True, now=self.clock(), result_content_type=content_type,
            result_ref=ref, result_inline=result if small else None,
        )  # fmt: skip
        return await self._fenced(claim, done, None if small or ref is not None else result)

    async def fail(self, claim: Claim, error: TaskError) -> TaskRecord:
        return await self._fenced(
            claim, sm.finish(claim.record, ok=False, now=self.clock(), error=error), None
        )

    async def release(self, claim: Claim, reason: str, *, ran: bool = True) -> TaskRecord:
        """Give a claimed task back (its replica died, the claimer drains): requeued at once, or
        failed with replica_lost once it has used its attempts (``sm.requeue``)."""
        requeued = sm.requeue(claim.record, now=self.clock(), reason=reason, ran=ran)
        return await self._fenced(claim, requeued, None)

    # -- cancel ---------------------------------------------------------------------------------

    async def cancel(self, task_id: str) -> TaskRecord:
        """Queued: it never starts. Running: its claim is deleted, which tells the claimer (it
        watches its claims) to stop, and fences off its result. Finished: Conflict."""
        for _ in range(5):
            record, kv = await self._get_kv(task_id)
            cancelled = sm.cancel(record, now=self.clock())  # Conflict when already finished
            p = record.partition
            if record.state is sm.State.QUEUED:
                undo = [delete(self.ready_key(record))]
            else:
                assert record.claimer is not None
                undo = [
                    delete(keys.claim(self.root, p, record.claimer, record.id)),
                    delete(keys.running(self.root, p, record.id)),
                ]
            result = await self.etcd(p).txn(
                [mod_is(kv.key, kv.mod_revision)], [*undo, *self.settle_ops(cancelled)]
            )
            if result.succeeded:
                return cancelled
        raise Conflict(f"task {task_id} kept changing while being cancelled; retry")

    # -- progress and log events ---------------------------------------------------------------

    async def put_events(self, task_id: str, events: TaskEvents) -> None:
        p = sm.partition_of(task_id)
        await self.etcd(p).put(
            keys.events(self.root, p, task_id), events.model_dump_json().encode()
        )

    async def follow(self, task_id: str) -> AsyncIterator[TaskRecord | TaskEvents]:
        """The task's record and its events, now and after each change (two list-watches,
        merged in etcd revision order). Ends with the terminal record, after the events as they
        were then.

        Bounded for a slow reader: each key keeps only its newest unread value (both are
        snapshots — a record is the whole task, events the progress and the last lines — so
        the newest says everything the skipped ones did), at most two values per follower
        however far behind the reader falls. The terminal record is never skipped."""
        p = sm.partition_of(task_id)
        etcd = self.etcd(p)
        record_key = keys.task(self.root, p, task_id)
        events_key = keys.events(self.root, p, task_id)
        unread: dict[bytes, KV] = {}  # key -> its newest value not yet yielded
        read: dict[bytes, int] = {}  # key -> mod revision of the value last yielded
        changed = asyncio.Event()

        async def pump(key: bytes) -> None:
            async for item in etcd.list_watch(key):
                kvs = item.kvs if isinstance(item, Snapshot) else [item.kv]
                for kv in kvs:  # the prefix matches longer keys too; a re-list repeats values
                    if kv.key == key and kv.value and kv.mod_revision > read.get(key, 0):
                        unread[key] = kv
                        changed.set()

        pumps = [asyncio.create_task(pump(record_key)), asyncio.create_task(pump(events_key))]
        try:
            while True:
                await changed.wait()
                changed.clear()
                batch = sorted(unread.values(), key=lambda kv: kv.mod_revision)
                unread.clear()
                for kv in batch:
                    if kv.mod_revision <= read.get(kv.key, 0):
                        continue
                    read[kv.key] = kv.mod_revision
                    if kv.key == events_key:
                        yield TaskEvents.model_validate_json(kv.value)
                        continue
                    record = decode(kv.value)
                    if record.state.terminal:
                        # The agent writes the last events before the outcome; the two watches
                        # may deliver them in either order, so read them once more, then end.
                        last = await etcd.get(events_key)
                        if last is not None and last.mod_revision > read.get(events_key, 0):
                            yield TaskEvents.model_validate_json(last.value)
                        yield record
                        return
                    yield record
        finally:
            await cancel_and_wait(pumps)
