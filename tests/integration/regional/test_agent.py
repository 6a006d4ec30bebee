"""The regional agent with real replica subprocesses on real etcd."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
from typing import Any

import pytest

from federation import keys
from federation.errors import Unavailable
from federation.placement import ReadyEntry
from federation.queue import decode
from federation.task import State
from regional.agent import Agent
from regional.replicas import Replica
from regional.rpc import replica_pb2 as pb
from tests.apps.worker import pattern
from tests.factories import task
from tests.integration.conftest import REGION, Harness, worker_spec
from tests.waiting import until

pytestmark = pytest.mark.slow


async def test_a_task_runs_and_its_result_is_committed(harness: Harness) -> None:
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    record = await harness.submit("worker", "echo", b"hello spillover")
    done = await harness.result(record)
    assert done.state is State.SUCCEEDED and done.region == REGION
    assert await harness.queue.result(done) == b"hello spillover"
    hb = agent.heartbeat()
    assert hb.apps[0].slots == 4 and hb.apps[0].ready_replicas == 1
    # The beats carry the rate of started tasks (the autoscaler's rps across a region's nodes).
    await asyncio.gather(*(harness.submit("worker", "echo", b"x") for _ in range(10)))

    def rate() -> float:
        beat = agent.regions.get(REGION)
        return beat.apps[0].requests_per_second if beat and beat.apps else 0.0

    await until(lambda: rate() > 0)


async def test_never_more_than_replica_concurrency_and_the_rest_waits_in_the_queue(
    harness: Harness,
) -> None:
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    records = [await harness.submit("worker", "sleep", {"seconds": 3}) for _ in range(6)]
    runner = agent.runners["worker"]
    pool = runner.pool
    await until(lambda: pool.busy_slots == 4)
    await asyncio.sleep(0.3)  # time to over-claim, if it would
    assert pool.busy_slots == 4 and len(runner.running) == 4
    etcd = harness.clusters.for_partition(REGION)
    prefix = keys.ready_app(harness.queue.root, REGION, "worker")
    queued, _ = await etcd.range_all(prefix, keys.prefix_end(prefix))
    assert len(queued) == 2  # the 5th and 6th wait in the queue, not in the agent
    finals = [await harness.result(r) for r in records]
    assert all(f.state is State.SUCCEEDED for f in finals)


async def test_a_freed_slot_takes_the_next_task_while_the_last_outcome_is_written(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.apps.put(worker_spec(replica_concurrency=1))
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    second_started = asyncio.Event()
    real = agent.queue.complete

    async def slow_complete(claim: Any, *args: Any) -> Any:
        if claim.payload == b"first":
            # Held until the one slot runs the next task: it must not wait for this write.
            await asyncio.wait_for(second_started.wait(), timeout=20)
        else:
            second_started.set()
        return await real(claim, *args)

    monkeypatch.setattr(agent.queue, "complete", slow_complete)
    first = await harness.submit("worker", "echo", b"first")
    second = await harness.submit("worker", "echo", b"second")
    assert (await harness.result(first)).state is State.SUCCEEDED
    assert (await harness.result(second)).state is State.SUCCEEDED


async def test_short_tasks_never_wait_behind_long_ones_while_a_slot_is_free(
    harness: Harness,
) -> None:
    await harness.apps.put(worker_spec(replica_concurrency=2))
    agent = await harness.start_agent(replicas={"worker": 2})
    await harness.ready(agent, "worker", 2)
    longs = [await harness.submit("worker", "sleep", {"seconds": 30}) for _ in range(3)]
    pool = agent.runners["worker"].pool
    await until(lambda: pool.busy_slots == 3)  # the long ones run; one slot is free
    shorts = [await harness.submit("worker", "sleep", {"seconds": 0.05}) for _ in range(20)]
    started = time.monotonic()
    finals = [await harness.result(r, timeout=20) for r in shorts]
    assert all(f.state is State.SUCCEEDED for f in finals)
    # 20 x 50 ms through the one free slot: ~1 s, far less than one long task (30 s).
    assert time.monotonic() - started < 15
    for r in longs:
        assert (await harness.queue.get(r.id)).state is State.RUNNING
        await harness.queue.cancel(r.id)


async def test_cancel_reaches_a_running_task_and_frees_its_slot(harness: Harness) -> None:
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    record = await harness.submit("worker", "sleep", {"seconds": 60})
    await until(lambda: is_running(harness, record.id))
    await harness.queue.cancel(record.id)
    pool = agent.runners["worker"].pool
    await until(lambda: pool.busy_slots == 0, timeout=5)
    assert (await harness.queue.get(record.id)).state is State.CANCELLED
    await until(lambda: replica_busy(pool.replicas[0], 0), timeout=5)  # stopped there too


async def replica_busy(replica: Replica, n: int) -> bool:
    """What the replica itself counts busy is ``n``."""
    assert replica.stub is not None
    return (await replica.stub.Status(pb.StatusRequest())).busy == n


async def test_cancel_frees_the_slot_of_a_task_with_events_still_unwritten(
    harness: Harness,
) -> None:
    # A run stopped by its revoked claim stays marked as cancelling; the last write of its
    # events then raised CancelledError, and the slot was never given back: the replica kept a
    # busy slot for good (seen as a flaky cancel test, when the events happened to be dirty).
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    record = await harness.submit("worker", "steps", {"n": 6000, "seconds": 60})  # every 10 ms
    await until(lambda: is_running(harness, record.id))
    await asyncio.sleep(0.5)  # events flowing
    await harness.queue.cancel(record.id)
    pool = agent.runners["worker"].pool
    await until(lambda: pool.busy_slots == 0, timeout=5)


async def test_cancel_reaches_a_task_claimed_in_a_placement_region_that_is_no_peer(
    harness: Harness,
) -> None:
    # An app placed in us-east-1 and eu-west-1 makes the us-east-1 agent claim eu-west-1 tasks,
    # though eu-west-1 is not among its peers. Its claims there were not followed: a cancel did
    # not stop the run, and a claim applied behind its back was never given back.
    spec = worker_spec().model_copy(
        update={"placement": worker_spec().placement.model_copy(
            update={"regions": (REGION, "eu-west-1"), "spillover_after": 0.0})}
    )  # fmt: skip
    await harness.apps.put(spec)
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    record = task("eu-west-1", app="worker", function="sleep")
    await harness.queue.enqueue(record, json.dumps({"seconds": 60}).encode())
    await until(lambda: is_running(harness, record.id))
    await harness.queue.cancel(record.id)
    pool = agent.runners["worker"].pool
    await until(lambda: pool.busy_slots == 0, timeout=5)


async def test_a_late_delete_of_an_earlier_claim_does_not_stop_the_current_run(
    harness: Harness,
) -> None:
    """The agent learns that a claim ended from a watch. The delete of an earlier claim of the
    same task (given back, then claimed again by this agent under the same key) can arrive after
    the new run started; that run's claim is live, and stopped nothing would ever settle it."""
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    record = await harness.submit("worker", "sleep", {"seconds": 1})
    runner = agent.runners["worker"]
    await until(lambda: record.id in runner.running)
    runner.cancel(record.id)  # what the late delete event asks for
    done = await harness.result(record, timeout=20)
    assert done.state is State.SUCCEEDED and done.attempts == 1


@pytest.mark.parametrize("channel_closes_first", [False, True])
async def test_sigkill_of_a_replica_mid_task_requeues_it_and_it_completes_once(
    harness: Harness, channel_closes_first: bool
) -> None:
    """Either way the agent may learn of the death: the stream breaks (an RpcError), or the
    replica's exit closes its channel under the call first (a CancelledError of the call)."""
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    record = await harness.submit("worker", "sleep", {"seconds": 3})  # the kill lands mid-task
    runner = agent.runners["worker"]
    pool = runner.pool
    await until(lambda: bool(runner.running))
    victim = pool.replicas[0]
    assert victim.process is not None and victim.channel is not None
    if channel_closes_first:
        await victim.channel.close()
    os.kill(victim.process.pid, signal.SIGKILL)
    done = await harness.result(record, timeout=30)
    assert done.state is State.SUCCEEDED and done.attempts == 2
    assert json.loads(await harness.queue.result(done))["pid"] != victim.process.pid
    assert all(r is not victim for r in pool.replicas)  # replaced
    assert exits(agent) == 1  # what a crash-loop alert counts


async def test_sigkill_of_a_replica_gives_back_every_task_on_its_session(harness: Harness) -> None:
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    records = [await harness.submit("worker", "sleep", {"seconds": 3}) for _ in range(4)]
    pool = agent.runners["worker"].pool
    await until(lambda: pool.busy_slots == 4)
    victim = pool.replicas[0]
    assert victim.process is not None
    os.kill(victim.process.pid, signal.SIGKILL)
    finals = [await harness.result(r, timeout=30) for r in records]
    assert [(f.state, f.attempts) for f in finals] == [(State.SUCCEEDED, 2)] * 4
    assert exits(agent) == 1


async def test_scale_in_drains_and_never_kills_a_running_task(harness: Harness) -> None:
    await harness.apps.put(worker_spec(replica_concurrency=1))
    agent = await harness.start_agent(replicas={"worker": 2})
    await harness.ready(agent, "worker", 2)
    records = [await harness.submit("worker", "sleep", {"seconds": 1.5}) for _ in range(2)]
    pool = agent.runners["worker"].pool
    await until(lambda: pool.busy_slots == 2)
    pool.scale_to(1)
    await until(lambda: sum(r.draining for r in pool.replicas) == 1)
    assert len(pool.replicas) == 2  # the draining one still runs its task
    finals = [await harness.result(r) for r in records]
    assert all(f.state is State.SUCCEEDED and f.attempts == 1 for f in finals)
    await until(lambda: len(pool.replicas) == 1)
    assert exits(agent) == 0  # asked to stop: not a crash


def exits(agent: Agent) -> float:
    """spillover_replica_exits_total of the worker app: replicas that died unasked."""
    labels = {"app": "worker", "region": REGION}
    value = agent.metrics.registry.get_sample_value("spillover_replica_exits_total", labels)
    return value or 0.0


async def test_handler_errors_and_max_runtime_fail_the_task_not_the_replica(
    harness: Harness,
) -> None:
    await harness.apps.put(worker_spec(max_runtime=1))
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    boom = await harness.result(await harness.submit("worker", "boom", b"xyz"))
    assert boom.state is State.FAILED and boom.error is not None
    assert boom.error.code == "handler_error" and boom.error.message == "ValueError: bad input: xyz"
    slow = await harness.result(await harness.submit("worker", "sleep", {"seconds": 60}))
    assert slow.state is State.FAILED and slow.error is not None and slow.error.code == "timeout"
    replica = agent.runners["worker"].pool.replicas[0]
    await until(lambda: replica_busy(replica, 0), timeout=5)  # the handler was stopped
    missing = await harness.result(await harness.submit("worker", "nope", b""))
    assert missing.error is not None and "no function 'nope'" in missing.error.message
    napped = await harness.result(await harness.submit("worker", "nap", {"seconds": 0.2}))
    assert napped.state is State.SUCCEEDED  # an async handler, with progress events
    assert agent.runners["worker"].pool.replicas[0].process.returncode is None  # type: ignore[union-attr]


async def test_with_a_functions_list_the_replica_calls_only_those(harness: Harness) -> None:
    """A task that reached the queue anyway (the edge refuses it first) fails, naming them."""
    await harness.apps.put(worker_spec(functions=["echo", "sleep"]))
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    echoed = await harness.result(await harness.submit("worker", "echo", b"hi"))
    assert echoed.state is State.SUCCEEDED
    boom = await harness.result(await harness.submit("worker", "boom", b"x"))
    assert boom.state is State.FAILED and boom.error is not None
    assert boom.error.code == "handler_error"
    assert boom.error.message == (
        "the handler has no function 'boom' (the app's functions, listed in [app] functions: "
        "echo, sleep)"
    )


async def is_running(harness: Harness, task_id: str) -> bool:
    return (await harness.queue.get(task_id)).state is State.RUNNING


async def test_demo_predict_batches_concurrent_requests_with_the_right_rows(
    harness: Harness,
) -> None:
    """The real demo model (torch) in a real replica: concurrent predicts are batched into one
    forward pass, and every caller gets the outputs of its own rows."""
    await harness.apps.put(worker_spec("demo", "spillover.demo.app:Model", replica_concurrency=8))
    agent = await harness.start_agent()
    await harness.ready(agent, "demo", 1, timeout=60)
    inputs = [[[float(i + j)] * 16 for j in range(i % 3 + 1)] for i in range(8)]
    alone = json.loads(
        await harness.queue.result(
            await harness.result(await harness.submit("demo", "predict", {"inputs": inputs[5]}))
        )
    )["outputs"]
    records = [await harness.submit("demo", "predict", {"inputs": x}) for x in inputs]
    outputs = [json.loads(await harness.queue.result(await harness.result(r))) for r in records]
    assert [len(o["outputs"]) for o in outputs] == [len(x) for x in inputs]
    flat = [v for row in outputs[5]["outputs"] for v in row]
    assert flat == pytest.approx([v for row in alone for v in row])


async def test_a_result_of_any_size_up_to_max_payload_bytes_and_none_over_it(
    harness: Harness,
) -> None:
    """A 70 MiB result (over gRPC's 64 MiB message limit) arrives whole, in the agent's blob
    store; one over the app's max_payload_bytes fails its task with result_too_large, and the
    replica serves on (before, the first killed replica after replica: a crash loop)."""
    await harness.apps.put(worker_spec(max_payload_bytes=80 << 20))
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    pool = agent.runners["worker"].pool
    (replica,) = pool.replicas
    done = await harness.result(await harness.submit("worker", "big", {"size": 70 << 20}), 60)
    assert done.state is State.SUCCEEDED and done.attempts == 1 and done.result_ref is not None
    assert done.result_ref.size == 70 << 20
    assert done.result_ref.sha256 == hashlib.sha256(pattern(70 << 20)).hexdigest()
    over = await harness.result(await harness.submit("worker", "big", {"size": 81 << 20}), 60)
    assert over.state is State.FAILED and over.error is not None and over.attempts == 1
    assert over.error.code == "result_too_large" and str(80 << 20) in over.error.message
    assert pool.replicas == [replica] and not replica.draining and replica.process is not None
    assert replica.process.returncode is None
    after = await harness.result(await harness.submit("worker", "echo", b"next"))
    assert after.state is State.SUCCEEDED


async def test_a_10_mb_error_message_is_stored_cut_to_4_kib_with_a_marker(harness: Harness) -> None:
    """An exception's message lands in the task record, written to etcd twice per settle: a
    10 MB one must not become a 10 MB write (etcd refuses it; the task ran three times)."""
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    done = await harness.result(await harness.submit("worker", "shout", {"size": 10_000_000}))
    assert done.state is State.FAILED and done.attempts == 1 and done.error is not None
    assert done.error.code == "handler_error"
    assert done.error.message.startswith("ValueError: xxx")
    assert len(done.error.message.encode()) <= 4096
    assert done.error.message.endswith("[truncated: 10000012 bytes]")


@pytest.mark.parametrize(
    ("function", "write", "state"),
    [("echo", "complete", State.SUCCEEDED), ("boom", "fail", State.FAILED)],
)
async def test_an_outcome_etcd_refused_during_an_election_is_written_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, function: str, write: str, state: State
) -> None:
    # During an election etcd refuses a txn ("leader changed", a channel closed on failover).
    # The agent gave the outcome up while its lease lived on, so no reaper requeued the task:
    # it stayed "running" forever (2 of 280 tasks in the chaos suite's leader-kill scenario).
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    real = getattr(agent.queue, write)
    refused: list[str] = []

    async def refused_once(*args: Any) -> Any:
        if not refused:
            refused.append(write)
            raise Unavailable("etcd refused txn: etcdserver: leader changed")
        return await real(*args)

    monkeypatch.setattr(agent.queue, write, refused_once)
    record = await harness.submit("worker", function, b"x")
    done = await harness.result(record, timeout=15)
    assert refused == [write]
    assert done.state is state and done.attempts == 1


async def test_a_poison_task_fails_alone_and_the_tasks_beside_it_succeed(harness: Harness) -> None:
    # A task that kills its replica takes the tasks beside it down, and each is requeued with an
    # attempt used. Beside the poison at every one of its attempts, innocent tasks used up
    # max_attempts and failed replica_lost with it (the chaos suite's poison scenario).
    await harness.apps.put(worker_spec())  # one replica of 4 slots: all four share it
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    innocent = [await harness.submit("worker", "sleep", {"seconds": 1.0}) for _ in range(3)]
    poison = await harness.submit("worker", "poison", b"")
    bad = await harness.result(poison, timeout=60)
    assert bad.state is State.FAILED and bad.error is not None
    assert bad.error.code == "replica_lost" and bad.attempts == 3
    for r in innocent:
        done = await harness.result(r, timeout=60)
        assert done.state is State.SUCCEEDED, done.error


async def test_a_task_cancelled_while_it_waits_to_run_alone_gives_its_replica_back(
    harness: Harness,
) -> None:
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    pool = agent.runners["worker"].pool
    busy = await harness.submit("worker", "sleep", {"seconds": 1.5})
    await until(lambda: pool.busy_slots == 1)
    alone = await harness.submit("worker", "echo", b"alone", attempts=1, max_attempts=2)
    await until(lambda: any(r.reserved for r in pool.replicas))  # waiting for the sleep to end
    await harness.queue.cancel(alone.id)
    assert (await harness.result(busy)).state is State.SUCCEEDED
    await until(lambda: pool.free_slots == 4)  # nothing left counted busy, nor closed
    again = await harness.submit("worker", "echo", b"again")
    assert (await harness.result(again)).state is State.SUCCEEDED


async def test_a_claim_applied_behind_the_agents_back_is_given_back(harness: Harness) -> None:
    # A claim txn whose call was cut (a failover closed its channel) may still be applied by
    # etcd after the agent read its claims back and found none: Raft commits a proposal already
    # on its way. The task sat "running" under the agent's live lease with nobody running it,
    # and no reaper requeues a claim that lives (the chaos suite's leader scenario, full form).
    await harness.apps.put(worker_spec(replica_concurrency=1))
    agent = await harness.start_agent()
    agent.claims.grace = 0.5
    await harness.ready(agent, "worker", 1)
    busy = await harness.submit("worker", "sleep", {"seconds": 2})  # the only slot: no claims

    async def running() -> bool:
        return (await harness.queue.get(busy.id)).state is State.RUNNING

    await until(running)
    late = await harness.submit("worker", "echo", b"late", max_attempts=1)
    etcd = harness.clusters.for_partition(REGION)
    prefix = keys.ready_app(harness.queue.root, REGION, "worker")
    [kv] = (await etcd.range_all(prefix, keys.prefix_end(prefix)))[0]
    entry = ReadyEntry(kv.key, kv.mod_revision, decode(kv.value))
    assert await agent.queue.claim(agent.claimer, [entry])  # the agent's, unbeknown to it
    done = await harness.result(late, timeout=20)
    # Its only attempt was not spent by the orphaned claim: it runs, once.
    assert done.state is State.SUCCEEDED and done.attempts == 1
