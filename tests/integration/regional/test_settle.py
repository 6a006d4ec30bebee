"""Nothing wedges when a task's outcome cannot be written: etcd away for a moment (killed and
restarted, under a live lease), or etcd refusing the write itself. Before, the agent logged and
moved on while its lease kept the claim alive: the task sat ``running`` forever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from federation.errors import Unavailable
from federation.task import State
from regional import outcomes
from spillover.local.etcd import LocalEtcd
from tests.apps.worker import pattern
from tests.integration.conftest import Harness, worker_spec
from tests.waiting import until

pytestmark = pytest.mark.slow


@pytest.fixture
async def stoppable(fresh_etcd: LocalEtcd, root: str) -> AsyncIterator[Harness]:
    h = Harness(fresh_etcd, root)
    yield h
    await h.close()


@pytest.mark.parametrize(("deadline", "outage", "attempts"), [(30.0, 1.0, 1), (1.0, 4.0, 2)])
async def test_an_outcome_written_while_etcd_is_away_is_retried_or_the_task_given_back(
    stoppable: Harness,
    fresh_etcd: LocalEtcd,
    monkeypatch: pytest.MonkeyPatch,
    deadline: float,
    outage: float,
    attempts: int,
) -> None:
    """Retried while etcd comes back within the settle deadline (the task completes once);
    past it, the claim is given up and the task runs again. Either way it finishes. (The last
    retry may start up to 2 s after the deadline: the outage outlasts that.)"""
    monkeypatch.setattr(outcomes, "SETTLE_DEADLINE", deadline, raising=False)
    h = stoppable
    await h.apps.put(worker_spec())
    agent = await h.start_agent(lease_ttl=20)  # the lease outlives the outage
    await h.ready(agent, "worker", 1)
    record = await h.submit("worker", "sleep", {"seconds": 1.5})
    pool = agent.runners["worker"].pool
    await until(lambda: pool.busy_slots == 1)
    fresh_etcd.kill(0)
    try:
        # It answered: its outcome is being written.
        await until(lambda: pool.busy_slots == 0, timeout=30)
        await asyncio.sleep(outage)  # ... into an etcd that is away
    finally:
        await asyncio.to_thread(fresh_etcd.start_member, 0)
        await asyncio.to_thread(fresh_etcd.wait_healthy)
    # Clients reconnect on their own, after gRPC's reconnect backoff (seconds, growing).
    await until(lambda: readable(h, record.id), timeout=30)
    done = await h.result(record, timeout=60)
    assert done.state is State.SUCCEEDED and done.attempts == attempts


async def readable(h: Harness, task_id: str) -> bool:
    try:
        await h.queue.get(task_id)
    except Unavailable:
        return False
    return True


@pytest.fixture
async def small_requests(tmp_path: Path, root: str) -> AsyncIterator[Harness]:
    with LocalEtcd(tmp_path / "etcd", flags=("--max-request-bytes=65536",)) as cluster:
        h = Harness(cluster, root)
        yield h
        await h.close()


async def test_an_outcome_etcd_refuses_fails_the_task_with_a_clear_code(
    small_requests: Harness,
) -> None:
    """etcd takes requests up to 64 KiB here; a 200 KiB result inline (inline_limit 1 MiB) is
    refused as too large, which no retry can heal: the task fails with result_too_large."""
    h = small_requests
    await h.apps.put(worker_spec())
    blobs = {"dir": h.scratch(), "inline_limit": 1 << 20}
    agent = await h.start_agent(blobs=blobs)
    await h.ready(agent, "worker", 1)
    record = await h.submit("worker", "big", {"size": 200_000})
    done = await h.result(record, timeout=20)
    assert done.state is State.FAILED and done.error is not None
    assert done.error.code == "result_too_large" and "too large" in done.error.message
    small = await h.result(await h.submit("worker", "big", {"size": 1000}))
    assert small.state is State.SUCCEEDED
    assert await h.queue.result(small) == pattern(1000)
