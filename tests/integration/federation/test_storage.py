"""etcd's space against its quota, on real etcd members started with a tiny
``--quota-backend-bytes``: the watermark refuses new tasks while settles, deletes and heartbeats
go on; a NOSPACE alarm refuses new tasks cleanly too, and the keeper recovers without an
operator once space is freed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from federation.aio import cancel_and_wait
from federation.errors import StorageFull
from federation.etcd import Etcd
from federation.queue import Claimer, Queue
from federation.ready import ReadyView
from federation.session import Session
from federation.storage import Level, StorageGuard, StorageKeeper
from federation.topology import Clusters, EtcdConfig
from spillover.local.etcd import LocalEtcd
from tests.factories import task
from tests.integration.federation.helpers import claim_until, following
from tests.waiting import until

pytestmark = pytest.mark.slow
P = "us-east-1"
MiB = 1 << 20
FILL = b"/fill/"


async def fill(etcd: Etcd, until: float) -> int:
    """Plain 64 KiB puts until the db is ``until`` bytes, or etcd refuses."""
    i = 0
    try:
        while True:
            await etcd.put(FILL + str(i).encode(), b"x" * (MiB // 16))
            i += 1
            size, _, _ = await etcd.space()
            if size >= until:
                return i
    except StorageFull:
        return i


async def unfill(etcd: Etcd, n: int) -> None:
    for i in range(n):
        await etcd.delete(FILL + str(i).encode())


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[tuple[LocalEtcd, Clusters]]:
    with LocalEtcd(tmp_path / "etcd", quota_bytes=40 * MiB) as cluster:
        config = EtcdConfig(endpoints=tuple(cluster.endpoints), root="/t", quota_bytes=40 * MiB)
        clusters = Clusters(config)
        yield cluster, clusters
        await clusters.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keeper(
    guard: StorageGuard, clusters: Clusters, claimer: Claimer, clock: Clock | None = None
) -> StorageKeeper:
    return StorageKeeper(guard, "control", clusters.control,
                         lambda: claimer.session(clusters.control),
                         clock=clock or time.monotonic)  # fmt: skip


async def keep(k: StorageKeeper, clock: Clock) -> None:
    """Two ticks of the keeper, its compaction lag apart: the second compacts what the first
    saw (the history of the deletes), then defragments."""
    await k.tick()
    clock.now += k.compact_lag + 1
    await k.tick()


async def test_above_the_watermark_new_tasks_are_refused_while_the_rest_goes_on(
    small: tuple[LocalEtcd, Clusters],
) -> None:
    _, clusters = small
    etcd, queue, guard = clusters.control, Queue(clusters), StorageGuard(clusters)
    claimer = Claimer("agent", P, ttl=5)
    await queue.enqueue(task(P), b"body")
    async with following(ReadyView(queue, "demo", [P])) as view:
        [claim] = await claim_until(view, claimer, 1)
    n = await fill(etcd, 0.82 * 40 * MiB)
    await guard.refresh()
    assert guard.level_of(etcd) is Level.HIGH
    with pytest.raises(StorageFull) as refused:
        guard.check(etcd)
    assert refused.value.retry_after and "new tasks refused" in refused.value.message
    assert guard.reasons()
    # Settles, deletes, heartbeats and leases still work: etcd itself is not full.
    done = await queue.complete(claim, b"result", "text/plain")
    assert done.state.value == "succeeded"
    async with Session(etcd, 5) as session:
        await etcd.put(b"/t/regions/us-east-1/agent", b"{}", lease=session.lease)
    await unfill(etcd, n)
    # The keeper gives the space back (compaction, then defragmentation) and the guard sees it.
    clock = Clock()
    await keep(keeper(guard, clusters, claimer, clock), clock)
    assert guard.level_of(etcd) is Level.OK
    guard.check(etcd)
    await claimer.close()


async def test_nospace_refuses_new_tasks_cleanly_and_recovers_without_an_operator(
    tmp_path: Path,
) -> None:
    with LocalEtcd(tmp_path / "etcd", quota_bytes=24 * MiB) as cluster:
        # The configured quota is larger than etcd's own: the watermark comes too late, as
        # when an operator got it wrong, and etcd's NOSPACE alarm is what stops the writes.
        config = EtcdConfig(endpoints=tuple(cluster.endpoints), root="/t", quota_bytes=1 << 30)
        clusters = Clusters(config)
        etcd, queue, guard = clusters.control, Queue(clusters), StorageGuard(clusters)
        claimer = Claimer("agent", P, ttl=5)
        await queue.enqueue(task(P), b"body")
        async with following(ReadyView(queue, "demo", [P])) as view:
            [claim] = await claim_until(view, claimer, 1)
        n = await fill(etcd, 10 * 24 * MiB)  # until etcd refuses: its alarm is raised
        await guard.refresh()
        assert guard.level_of(etcd) is Level.NOSPACE
        # A new task's batch carries a top-level put: etcd's quota sees it and refuses it, and
        # nothing of the task is stored (the nested puts alone would have slipped through).
        refused = task(P)
        with pytest.raises(StorageFull):
            await queue.enqueue(refused, b"body")
        assert await etcd.get(f"/t/q/{P}/tasks/{refused.id}".encode()) is None
        # A settle is nested only: the running task still completes, and deletes work.
        assert (await queue.complete(claim, b"ok", "text/plain")).state.value == "succeeded"
        await unfill(etcd, n)
        # No lease can be granted while the alarm is raised, so no keeper can be elected: every
        # agent's keeper acts on its own (compacts, defragments, disarms) — none was elected
        # here before the alarm either.
        guard.interval = 0.2
        recovering = asyncio.create_task(keeper(guard, clusters, Claimer("new", P)).run(b"new"))
        try:
            await until(lambda: guard.level_of(etcd) is Level.OK, timeout=30)
        finally:
            await cancel_and_wait([recovering])
        _, created = await queue.enqueue(task(P), b"body")
        assert created
        await etcd.put(b"/t/plain", b"puts work again")
        await claimer.close()
        await clusters.close()


async def test_the_guard_follows_the_level_in_the_background(
    small: tuple[LocalEtcd, Clusters],
) -> None:
    _, clusters = small
    guard = StorageGuard(clusters, interval=0.1)
    running = asyncio.create_task(guard.run())
    try:
        n = await fill(clusters.control, 0.82 * 40 * MiB)
        for _ in range(100):
            if guard.level_of(clusters.control) is Level.HIGH:
                break
            await asyncio.sleep(0.05)
        assert guard.level_of(clusters.control) is Level.HIGH
        await unfill(clusters.control, n)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_task_refused_for_space_is_never_stored_and_one_taken_always_is(
    tmp_path: Path,
) -> None:
    """etcd checks its quota before proposing a txn (nothing written) and again after applying
    it (written, then refused): 16 writers (edges) at once into a filling etcd hit both. Whatever
    etcd said, the answer must match what is stored: the edge falls back to another region on a
    refusal, so a refused task that was stored would run twice."""
    with LocalEtcd(tmp_path / "etcd", quota_bytes=24 * MiB) as cluster:
        config = EtcdConfig(endpoints=tuple(cluster.endpoints), root="/t", quota_bytes=1 << 30)
        edges = [Clusters(config) for _ in range(16)]
        clusters = edges[0]
        await fill(clusters.control, 0.85 * 24 * MiB)
        outcomes: list[tuple[str, bool]] = []

        async def one(queue: Queue) -> None:
            record = task(P)
            try:
                await queue.enqueue(record, b"x" * 32768)
                outcomes.append((record.id, True))
            except StorageFull:
                outcomes.append((record.id, False))

        queues = [Queue(c) for c in edges]
        for _ in range(100):  # until etcd refuses a few rounds in a row
            await asyncio.gather(*(one(q) for q in queues))
            if all(not taken for _, taken in outcomes[-48:]):
                break
        assert any(not taken for _, taken in outcomes), "etcd never refused"
        for task_id, taken in outcomes:
            stored = await clusters.control.get(f"/t/q/{P}/tasks/{task_id}".encode())
            assert (stored is not None) == taken, task_id
        for c in edges:
            await c.close()
