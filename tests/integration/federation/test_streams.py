"""What the queue tells a claimer and a follower of finished tasks, on real etcd, including
after a gap: the watch fell behind compaction and what it missed must not be lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from federation import keys
from federation.claims import OwnClaims, own_claims
from federation.finished import Finished, Following, finished
from federation.queue import Claimer, Queue
from federation.ready import ReadyView
from federation.reaper import sweep_retention
from federation.task import TaskError
from federation.topology import Clusters
from spillover.local.etcd import LocalEtcd
from tests.conftest import make_config
from tests.factories import task
from tests.integration.federation.helpers import claim_until, following

P = "us-east-1"


@pytest.fixture
async def queue(etcd1: LocalEtcd, root: str) -> AsyncIterator[Queue]:
    clusters = Clusters(make_config(etcd1, root))
    yield Queue(clusters)
    await clusters.close()


async def compact(queue: Queue) -> None:
    """Compact the cluster's history up to now."""
    etcd = queue.etcd(P)
    _, revision, _ = await etcd.range(b"/", b"/", limit=1)
    await etcd._current().compact(revision)


async def run_one(queue: Queue, claimer: Claimer, ok: bool = True, **fields: object) -> str:
    record = task(P, **fields)
    await queue.enqueue(record, b"x")
    async with following(ReadyView(queue, "demo", [P])) as view:
        [claim] = await claim_until(view, claimer, 1)
    if ok:
        await queue.complete(claim, b"y", "text/plain")
    else:
        await queue.fail(claim, TaskError(code="handler_error", message="no"))
    return record.id


async def test_the_webhook_stream_holds_only_tasks_with_a_webhook_until_their_sweep(
    queue: Queue,
) -> None:
    """The agents that deliver webhooks follow an index of their own: a task without one is
    never sent to them (every agent of the region would read every task that ends)."""
    claimer = Claimer("c1", P)
    try:
        await run_one(queue, claimer)
        hooked = await run_one(queue, claimer, webhook="https://example.com/h", retention=0.0)
        stream = finished(queue, P, replay=True, webhooks=True)
        first = await anext(stream)
        assert isinstance(first, Finished) and first.task_id == hooked
        assert first.record().webhook == "https://example.com/h"
        assert await anext(stream) == Following(gap=False)
        await stream.aclose()
        assert await sweep_retention(queue, P) == 1  # its retention was 0
        assert await queue.etcd(P).get(keys.hook(queue.root, P, hooked)) is None
    finally:
        await claimer.close()


async def test_finished_tasks_replay_then_follow_and_a_gap_is_announced(queue: Queue) -> None:
    claimer = Claimer("c1", P)
    try:
        before = await run_one(queue, claimer)
        replayed = finished(queue, P, replay=True)
        first = await anext(replayed)
        assert isinstance(first, Finished) and first.task_id == before
        assert first.record().state.value == "succeeded"
        assert await anext(replayed) == Following(gap=False)
        live = finished(queue, P)
        assert await anext(live) == Following(gap=False)  # no replay: from now on
        after = await run_one(queue, claimer, ok=False)
        item = await asyncio.wait_for(anext(live), 10)
        assert isinstance(item, Finished) and item.task_id == after
        # ``replayed`` was not read while ``after`` ended and history was compacted past it:
        # its watch starts behind compaction, so it says so and replays what it holds.
        await compact(queue)
        again = [await asyncio.wait_for(anext(replayed), 10) for _ in range(3)]
        assert [i.task_id for i in again if isinstance(i, Finished)] == [before, after]
        assert again[-1] == Following(gap=True)
        await live.aclose()
        await replayed.aclose()
    finally:
        await claimer.close()


async def test_own_claims_come_as_they_are_made_and_revoked_as_they_go(queue: Queue) -> None:
    claimer = Claimer("c1", P)
    stream = own_claims(queue, claimer, P, time.time)

    async def revoked() -> list[str]:
        while not (change := await asyncio.wait_for(anext(stream), 10)).revoked:
            pass
        return change.revoked

    assert await anext(stream) == OwnClaims({}, [])  # followed from before the first claim
    records = [task(P) for _ in range(3)]
    for r in records:
        await queue.enqueue(r, b"x")
    try:
        async with following(ReadyView(queue, "demo", [P])) as view:
            claims = {c.record.id: c for c in await claim_until(view, claimer, 3)}
        held = (await anext(stream)).held
        while len(held) < 3:
            held = (await asyncio.wait_for(anext(stream), 10)).held
        assert {held[c.key].token for c in claims.values()} == {c.token for c in claims.values()}
        await queue.cancel(records[0].id)  # a client's cancel deletes the claim
        assert await revoked() == [records[0].id]
        await queue.complete(claims[records[1].id], b"y", "text/plain")  # settled by us
        assert await revoked() == [records[1].id]
        await queue.release(claims[records[2].id], "draining")
        assert await revoked() == [records[2].id]
    finally:
        await stream.aclose()
        await claimer.close()
