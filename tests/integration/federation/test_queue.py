"""The federated queue on real etcd: one member and a three-member cluster."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from federation import keys
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
from federation.etcd import Etcd
from federation.events import TaskEvents
from federation.queue import MAX_BATCH, RESULT_IN_RECORD, Claimer, Queue
from federation.ready import ReadyView
from federation.reaper import expire_due, queued_apps, requeue_lost, sweep_retention
from federation.task import State, TaskError, TaskRecord
from federation.waiters import TaskWaiters
from tests.factories import task
from tests.integration.federation.helpers import claim_until, following

P = "us-east-1"


async def test_enqueue_claim_complete_and_wait(queue: Queue) -> None:
    record = task(P)
    stored, created = await queue.enqueue(record, b"hello")
    assert created and stored == record
    waiters = TaskWaiters(queue, [P])
    follower = asyncio.create_task(waiters.run())
    claimer = Claimer("c1", P)
    try:
        async with following(ReadyView(queue, "demo", [P])) as view:
            [claim] = await claim_until(view, claimer, 1)
            assert claim.payload == b"hello"  # read by the claim txn itself
            assert (await queue.get(record.id)).state is State.RUNNING
            waiting = asyncio.create_task(waiters.wait(record.id, timeout=10))
            await asyncio.sleep(0.05)
            done = await queue.complete(claim, b"world", "text/plain")
            assert (await waiting).state is State.SUCCEEDED
        assert done.attempts == 1 and done.region == P
        assert await queue.result(done) == b"world"
        # The fence: the same claim cannot commit twice.
        with pytest.raises(NotClaimer):
            await queue.complete(claim, b"again", "text/plain")
        assert await queue.result(done) == b"world"
    finally:
        follower.cancel()
        await claimer.close()


async def test_a_small_result_lives_in_the_record_a_larger_one_in_its_own_key_a_blob_in_neither(
    queue: Queue,
) -> None:
    """The waiter of a small result has it from the finished record, with no second read."""
    small, large = bytes(range(256)) * 2, b"x" * (RESULT_IN_RECORD + 1)  # any bytes
    ref = BlobRef(url="s3://bucket/r", size=5 << 20, sha256="0" * 64)
    records = [task(P), task(P), task(P)]
    for r in records:
        await queue.enqueue(r, b"")
    claimer = Claimer("c1", P)
    try:
        async with following(ReadyView(queue, "demo", [P])) as view:
            claims = {c.record.id: c for c in await claim_until(view, claimer, 3)}
        first = await queue.complete(claims[records[0].id], small, "application/octet-stream")
        second = await queue.complete(claims[records[1].id], large, "text/plain")
        third = await queue.complete(claims[records[2].id], b"", "text/plain", ref)
    finally:
        await claimer.close()
    etcd = queue.etcd(P)
    stored = await queue.get(first.id)  # as etcd holds it, through its JSON
    assert stored.result_inline == small and await queue.result(stored) == small
    assert await etcd.get(keys.result(queue.root, P, first.id)) is None
    stored = await queue.get(second.id)
    assert stored.result_inline is None and await queue.result(stored) == large
    stored = await queue.get(third.id)
    assert stored.result_ref == ref and stored.result_inline is None
    assert await etcd.get(keys.result(queue.root, P, third.id)) is None


async def test_idempotent_enqueue_returns_one_task(queue: Queue) -> None:
    attempts = [task(P, idempotency_key="order-42") for _ in range(10)]
    results = await asyncio.gather(*(queue.enqueue(r, b"x") for r in attempts))
    ids = {r.id for r, _ in results}
    assert len(ids) == 1 and sum(created for _, created in results) == 1
    # A retry homed in another region (the first went down, the client moved) whose partition
    # lives in the same cluster finds the same task.
    elsewhere, created = await queue.enqueue(task("eu-west-1", idempotency_key="order-42"), b"x")
    assert not created and elsewhere.id in ids and elsewhere.partition == P
    # Another API key, same idempotency key: its own task (keys are scoped per API key).
    theirs, created = await queue.enqueue(task(P, idempotency_key="order-42", owner="b"), b"x")
    assert created and theirs.id not in ids


async def test_an_idempotency_key_reused_for_another_request_is_refused(queue: Queue) -> None:
    first = task(P, idempotency_key="k", fingerprint="a" * 64)
    await queue.enqueue(first, b"x")
    again, created = await queue.enqueue(task(P, idempotency_key="k", fingerprint="a" * 64), b"x")
    assert again.id == first.id and not created
    with pytest.raises(IdempotencyKeyReused) as refused:
        await queue.enqueue(task(P, app="other", idempotency_key="k", fingerprint="b" * 64), b"y")
    assert refused.value.status == 422 and first.id in refused.value.message


@pytest.fixture
def txns(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``txns[0]``: how many etcd txns have been sent since the test began."""
    sent = [0]
    real = Etcd.txn

    async def counting(self: Etcd, *args: Any, **kw: Any) -> Any:
        sent[0] += 1
        return await real(self, *args, **kw)

    monkeypatch.setattr(Etcd, "txn", counting)
    return sent


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-applied"])
async def test_an_enqueue_whose_outcome_is_unknown_is_sent_again_and_stored_once(
    queue: Queue, monkeypatch: pytest.MonkeyPatch, applied: bool
) -> None:
    """The reply of an enqueue's txn is lost (a timeout, a channel cut by a failover), after
    etcd applied it or before: the enqueue sends it again, and the task is stored once, its
    caller told it was created. With an idempotency key too."""
    etcd = queue.etcd(P)
    real, replies = etcd.txn, iter([False])

    async def reply_lost(*args: Any, **kwargs: Any) -> Any:
        if next(replies, True):
            return await real(*args, **kwargs)
        if applied:
            await real(*args, **kwargs)
        raise Unavailable("etcd timed out on txn")

    monkeypatch.setattr(etcd, "txn", reply_lost)
    records = [task(P), task(P, idempotency_key="order-7")]
    for record in records:
        replies = iter([False])
        stored, created = await queue.enqueue(record, b"body")
        assert created and stored.id == record.id
        assert (await queue.get(record.id)).state is State.QUEUED
        body = await etcd.get(keys.payload(queue.root, P, record.id))
        assert body is not None and body.value == b"body"
    prefix = keys.tasks(queue.root, P)
    stored_ids, _ = await etcd.range_all(prefix, keys.prefix_end(prefix), keys_only=True)
    assert len(stored_ids) == 2


@pytest.mark.parametrize(
    ("script", "told"),
    [
        (["unreachable"], Unreachable),  # never sent: not again; the edge may store it elsewhere
        (["lost", "unreachable"], Unavailable),  # not Unreachable: the first may still apply
        (["applied-lost", "full"], "created"),  # refused for space after the first stored it
    ],
)
async def test_an_enqueue_is_sent_again_only_when_it_may_have_applied(
    queue: Queue, monkeypatch: pytest.MonkeyPatch, script: list[str], told: Any
) -> None:
    etcd = queue.etcd(P)
    real, sent = etcd.txn, []
    errors = {"applied-lost": Unavailable("etcd timed out on txn"), "lost": Unavailable("etcd "
              "timed out on txn"), "unreachable": Unreachable("no etcd member reachable"),
              "full": StorageFull("etcd is out of space")}  # fmt: skip

    async def scripted(*args: Any, **kwargs: Any) -> Any:
        step = script[len(sent)] if len(sent) < len(script) else "ok"
        sent.append(step)
        if step in ("ok", "applied-lost"):
            result = await real(*args, **kwargs)
            if step == "ok":
                return result
        raise errors[step]

    monkeypatch.setattr(etcd, "txn", scripted)
    record = task(P)
    if told == "created":
        assert await queue.enqueue(record, b"body") == (record, True)
        assert (await queue.get(record.id)).state is State.QUEUED
    else:
        with pytest.raises(Unavailable) as refused:
            await queue.enqueue(record, b"body")
        assert type(refused.value) is told
    assert sent == script


async def test_concurrent_enqueues_share_txns_and_each_is_stored_once(
    queue: Queue, txns: list[int]
) -> None:
    records = [task(P) for _ in range(40)]
    again = records[7]  # the same task twice in one burst: stored once
    results = await asyncio.gather(*(queue.enqueue(r, b"body") for r in [*records, again]))
    assert [created for _, created in results].count(True) == 40
    assert txns[0] <= 4  # 16 tasks per txn at most (etcd's --max-txn-ops), not one each
    for r in records:
        assert (await queue.get(r.id)).id == r.id


async def test_concurrent_settles_share_txns_and_a_stale_claim_fails_alone(
    queue: Queue, txns: list[int]
) -> None:
    records = [task(P) for _ in range(12)]
    await asyncio.gather(*(queue.enqueue(r, b"") for r in records))
    claimer = Claimer("c1", P)
    async with following(ReadyView(queue, "demo", [P])) as view:
        claims = await claim_until(view, claimer, 12)
    cancelled = claims[5].record.id
    await queue.cancel(cancelled)  # its claim is gone: the fence must refuse its result
    before = txns[0]
    settles = [
        queue.fail(c, TaskError(code="handler_error", message="no"))
        if i == 0
        else queue.complete(c, f"r{i}".encode(), "text/plain")
        for i, c in enumerate(claims)
    ]
    outcomes = await asyncio.gather(*settles, return_exceptions=True)
    assert txns[0] - before <= 3  # not one each
    for c, outcome in zip(claims, outcomes, strict=True):
        if c.record.id == cancelled:
            assert isinstance(outcome, NotClaimer)
            assert (await queue.get(cancelled)).state is State.CANCELLED
        else:
            assert not isinstance(outcome, BaseException)
            assert (await queue.get(c.record.id)).state is outcome.state
    assert outcomes[0].state is State.FAILED  # type: ignore[union-attr]
    assert await queue.result(outcomes[3]) == b"r3"  # type: ignore[arg-type]
    await claimer.close()


async def test_no_task_goes_to_two_of_eight_concurrent_claimers(queue: Queue) -> None:
    total = 200
    await asyncio.gather(*(queue.enqueue(task(P), b"") for _ in range(total)))
    claimers = [Claimer(f"c{i}", P) for i in range(8)]
    views = [ReadyView(queue, "demo", [P]) for _ in claimers]
    won: dict[str, list[str]] = {c.id: [] for c in claimers}

    async def run(claimer: Claimer, view: ReadyView) -> None:
        async with following(view):
            deadline = time.monotonic() + 20
            while view.entries and time.monotonic() < deadline:
                for c in await view.claim(claimer, 4):
                    won[claimer.id].append(c.record.id)
                    await queue.complete(c, b"ok", "text/plain")

    await asyncio.gather(*(run(c, v) for c, v in zip(claimers, views, strict=True)))
    every = [tid for ids in won.values() for tid in ids]
    assert len(every) == total and len(set(every)) == total
    assert sum(1 for ids in won.values() if ids) > 1  # they really competed
    for c in claimers:
        await c.close()


async def test_a_claim_wider_than_one_batch_leaves_the_rest_in_the_view(queue: Queue) -> None:
    """More free slots than one claim txn takes (MAX_BATCH): the entries past the batch were
    not tried, so they stay claimable (dropping them left those tasks queued for good)."""
    n = MAX_BATCH + 5
    for _ in range(n):
        await queue.enqueue(task(P), b"x")
    claimer = Claimer("c1", P)
    try:
        async with following(ReadyView(queue, "demo", [P])) as view:
            first = await view.claim(claimer, n)
            assert len(first) == MAX_BATCH and len(view.entries) == n - MAX_BATCH
            assert len(await view.claim(claimer, n)) == n - MAX_BATCH
    finally:
        await claimer.close()


async def test_cancel_queued_running_and_finished(queue: Queue) -> None:
    queued, running = task(P, priority=9), task(P, priority=9)
    await queue.enqueue(queued, b"")
    assert (await queue.cancel(queued.id)).state is State.CANCELLED
    await queue.enqueue(running, b"")
    claimer = Claimer("c1", P)
    async with following(ReadyView(queue, "demo", [P])) as view:
        [claim] = await claim_until(view, claimer, 1)
        assert claim.record.id == running.id  # the cancelled one never starts
        cancelled = await queue.cancel(running.id)
        assert cancelled.state is State.CANCELLED and cancelled.error is not None
        # The claim is gone (that is how the claimer hears of it) and its result is refused.
        etcd = queue.clusters.for_partition(P)
        assert await etcd.get(claim.key) is None
        with pytest.raises(NotClaimer):
            await queue.complete(claim, b"late", "text/plain")
    with pytest.raises(Conflict):
        await queue.cancel(running.id)
    with pytest.raises(NotFound):
        await queue.cancel(task(P).id)
    await claimer.close()


async def test_failed_tasks_carry_the_error(queue: Queue) -> None:
    await queue.enqueue(task(P), b"")
    claimer = Claimer("c1", P)
    async with following(ReadyView(queue, "demo", [P])) as view:
        [claim] = await claim_until(view, claimer, 1)
    err = TaskError(code="handler_error", message="ValueError: no")
    failed = await queue.fail(claim, err)
    assert (await queue.get(failed.id)).error == err
    await claimer.close()


async def test_release_requeues_then_gives_up_after_max_attempts(queue: Queue) -> None:
    record = task(P, max_attempts=2)
    await queue.enqueue(record, b"")
    claimer = Claimer("c1", P)
    async with following(ReadyView(queue, "demo", [P])) as view:
        [first] = await claim_until(view, claimer, 1)
        back = await queue.release(first, "replica died")
        assert back.state is State.QUEUED
        [second] = await claim_until(view, claimer, 1)
        assert second.record.attempts == 2
        gone = await queue.release(second, "replica died")
    assert gone.state is State.FAILED and gone.error is not None
    assert gone.error.code == "replica_lost"
    await claimer.close()


async def test_expire_and_retention(queue: Queue) -> None:
    stale = task(P, now=time.time() - 10, grace=5, idempotency_key="k", retention=0.0)
    kept = task(P, now=time.time() - 10, grace=5)  # the default retention: a day
    fresh = task(P)
    for t in (stale, kept, fresh):
        await queue.enqueue(t, b"body")
    assert await expire_due(queue, P, {"demo": 5.0}) == 2
    expired = await queue.get(stale.id)
    assert expired.state is State.EXPIRED and expired.error is not None
    assert (await queue.get(fresh.id)).state is State.QUEUED
    etcd = queue.clusters.for_partition(P)
    # A finished task's body goes when it finishes; the queued one keeps its own.
    assert await etcd.get(keys.payload(queue.root, P, stale.id)) is None
    assert await etcd.get(keys.payload(queue.root, P, fresh.id)) is not None
    # Retention deletes the record and its idempotency key once it ends, and nothing else...
    assert await sweep_retention(queue, P) == 1
    with pytest.raises(NotFound):
        await queue.get(stale.id)
    assert (await queue.get(kept.id)).state is State.EXPIRED
    _, created = await queue.enqueue(task(P, idempotency_key="k"), b"")
    assert created
    # ...unless etcd is short of space: then every task finished long enough ago goes too.
    assert await sweep_retention(queue, P, pressure_retention=0.0) == 1
    with pytest.raises(NotFound):
        await queue.get(kept.id)
    assert (await queue.get(fresh.id)).state is State.QUEUED


async def test_expiry_reads_only_the_overdue_head_of_each_run(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog in time: only the overdue head of each (app, priority) run is read (each range
    ends at "enqueued a grace ago", so etcd 3.4, which walks all a range spans, walks only those)
    and expired; a deleted app's tasks are found and expire by their own deadlines."""
    now = time.time()
    overdue = [task(P, now=now - 10, grace=5, priority=p) for p in (1, 5, 9)]
    waiting = [task(P, now=now - 1 + i / 100, priority=p) for i, p in enumerate((1, 5, 9) * 3)]
    orphan = task(P, app="gone", now=now - 10, grace=5)
    for t in [*overdue, *waiting, orphan]:
        await queue.enqueue(t, b"")
    etcd = queue.etcd(P)
    read: list[bytes] = []
    real = etcd.range

    async def recording(key: bytes, end: bytes, **kw: Any) -> Any:
        kvs, revision, more = await real(key, end, **kw)
        read.extend(kv.key for kv in kvs)
        return kvs, revision, more

    monkeypatch.setattr(etcd, "range", recording)
    assert await expire_due(queue, P, {"demo": 5.0}) == 3
    assert {keys.task_id_of(k) for k in read} == {t.id for t in overdue}
    assert {(await queue.get(t.id)).state for t in overdue} == {State.EXPIRED}
    assert {(await queue.get(t.id)).state for t in waiting} == {State.QUEUED}
    assert await expire_due(queue, P, {"demo": 5.0}) == 0
    assert set(await queued_apps(queue, P)) == {"demo", "gone"}
    assert await expire_due(queue, P, {"gone": 0.0}) == 1
    assert (await queue.get(orphan.id)).state is State.EXPIRED


async def test_requeue_lost_after_lease_loss_and_zombie_is_fenced(queue: Queue) -> None:
    await queue.enqueue(task(P), b"")
    zombie, healthy = Claimer("zombie", P, ttl=2), Claimer("healthy", P)
    async with following(ReadyView(queue, "demo", [P])) as view:
        [lost] = await claim_until(view, zombie, 1)
        assert await requeue_lost(queue, P) == 0  # its lease is alive: nothing to do
        etcd = queue.clusters.for_partition(P)
        await etcd.revoke((await zombie.session(etcd)).lease)  # the lease ends, as at a crash
        assert await requeue_lost(queue, P) == 1
        [again] = await claim_until(view, healthy, 1)
    assert again.record.id == lost.record.id and again.record.attempts == 2
    with pytest.raises(NotClaimer):
        await queue.complete(lost, b"zombie", "text/plain")
    await queue.complete(again, b"healthy", "text/plain")
    assert await queue.result(again.record) == b"healthy"
    await zombie.close()
    await healthy.close()


class LosesTheFirstReply(Etcd):
    """The real etcd client, except that the first txn's reply is lost after etcd applied it
    (what a timeout at the wrong moment does)."""

    lost = False

    async def txn(self, *args: Any, **kwargs: Any) -> Any:
        result = await super().txn(*args, **kwargs)
        if not self.lost:
            self.lost = True
            raise Unavailable("reply lost")
        return result


async def test_a_claim_whose_reply_was_lost_is_still_ours(queue: Queue) -> None:
    record = task(P)
    await queue.enqueue(record, b"body")
    async with following(ReadyView(queue, "demo", [P])) as view:
        etcd = queue.clusters.for_partition(P)
        faulty = LosesTheFirstReply([f"http://{etcd.endpoint}"])
        queue.clusters._by_endpoints[tuple(queue.clusters.config.endpoints)] = faulty
        claimer = Claimer("c1", P)
        [claim] = await claim_until(view, claimer, 1)
    assert faulty.lost and claim.payload == b"body"
    await queue.complete(claim, b"ok", "text/plain")
    assert (await queue.get(record.id)).state is State.SUCCEEDED
    await claimer.close()
    await faulty.close()


async def test_follow_keeps_only_the_newest_unread_value_for_a_slow_reader(queue: Queue) -> None:
    """30 progress writes while the reader reads nothing: it then gets the newest events value
    (not the 30 in turn: the follower holds at most one unread value per key) and the final
    record, in etcd revision order."""
    record = task(P)
    await queue.enqueue(record, b"")
    events = TaskEvents().with_line("started")
    await queue.put_events(record.id, events)
    stream = queue.follow(record.id)
    try:  # the record and the first events value: both watches are live
        assert {type(await anext(stream)), type(await anext(stream))} == {TaskRecord, TaskEvents}
        for i in range(30):
            events = events.with_progress((i + 1) / 30, f"step {i + 1}")
            await queue.put_events(record.id, events)
        await queue.cancel(record.id)
        await asyncio.sleep(1)  # the watches deliver all of it while the reader sleeps
        rest = [item async for item in stream]
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    values = [x for x in rest if isinstance(x, TaskEvents)]
    assert 1 <= len(values) < 30 and values[-1] == events
    assert rest[-1] == (await queue.get(record.id)) and rest[-1].state is State.CANCELLED
