"""The autoscaler on a real agent with real replica processes: a burst scales an app out, the
queue drains, and after the cooldown it scales back in without killing a task."""

from __future__ import annotations

import time

import pytest

from federation import keys
from federation.task import State
from tests.integration.conftest import Harness, worker_spec
from tests.waiting import until

pytestmark = pytest.mark.slow


async def test_a_burst_scales_out_drains_and_scales_back_in_after_cooldown(
    harness: Harness,
) -> None:
    spec = worker_spec(replica_concurrency=1, min_replicas=1, max_replicas=3, cooldown=2,
                       queue_time_threshold=0.5)  # fmt: skip
    await harness.apps.put(spec)
    agent = await harness.start_agent(autoscale=True)
    await harness.ready(agent, "worker", 1)
    leader = await harness.clusters.control.get(keys.leader(harness.clusters.root, "us-east-1"))
    assert leader is not None and leader.value == agent.claimer.id.encode()

    burst = time.monotonic()
    records = [await harness.submit("worker", "sleep", {"seconds": 1.5}) for _ in range(6)]
    pool = agent.runners["worker"].pool
    await until(lambda: pool.desired > 1, timeout=30, every=0.005)
    decided = time.monotonic() - burst  # backlog appears -> the autoscaler asks for more
    await until(lambda: len(pool.ready_replicas) >= 2, timeout=30, every=0.005)
    serving = time.monotonic() - burst  # ... -> a new replica serving (its load included)
    await until(lambda: pool.desired == 3, timeout=10)
    done = [await harness.result(r, timeout=60) for r in records]
    assert all(d.state is State.SUCCEEDED and d.attempts == 1 for d in done)  # none killed
    await until(lambda: pool.desired == 1 and len(pool.replicas) == 1, timeout=60)
    print(f"reaction: decided after {decided:.2f} s, a new replica serving after {serving:.2f} s")
