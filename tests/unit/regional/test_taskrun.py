"""A task run against a scripted replica run (no process, no etcd): what each way a run ends
means for the task and the replica, and that the slot is free before the outcome is written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from federation.appspec import AppSpec, parse_spec
from federation.queue import Claim
from regional.outcomes import Failure, GiveBack, Outcome, Result
from regional.replicas import Replica
from regional.replicaset import ReplicaSet
from regional.rpc import replica_pb2 as pb
from regional.taskrun import RunContext, TaskRun
from tests.factories import task

SPEC = parse_spec({"app": {"name": "demo", "handler": "m:M"}, "scaling": {"max_runtime": 7}})


class Call:
    """A replica's answer, scripted: these events, then this error (or the end); with none,
    it holds until cancelled."""

    def __init__(self, *events: pb.RunEvent, error: BaseException | None = None) -> None:
        self.events, self.error = events, error
        self.cancelled = False
        self.hold = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[pb.RunEvent]:
        for e in self.events:
            yield e
        if self.error is not None:
            raise self.error
        if self.events == ():
            await self.hold.wait()

    def cancel(self) -> None:
        self.cancelled = True


class Session:
    def __init__(self, call: Call) -> None:
        self.call = call
        self.requests: list[pb.RunRequest] = []

    def start(self, request: pb.RunRequest) -> Call:
        self.requests.append(request)
        return self.call


class Recorder:
    """Outcomes and events, as etcd would get them; with the busy slots at each settle."""

    def __init__(self, pool: ReplicaSet) -> None:
        self.pool = pool
        self.settled: list[tuple[Outcome, int]] = []
        self.events: list[Any] = []

    async def settle(self, claim: Claim, outcome: Outcome) -> None:
        self.settled.append((outcome, self.pool.busy_slots))

    async def put_events(self, task_id: str, events: Any) -> None:
        self.events.append(events)


def prepare(call: Call, spec: AppSpec = SPEC) -> tuple[TaskRun, Recorder, Replica, Session]:
    pool = ReplicaSet(spec, "us-east-1", provider=None, desired=1)  # type: ignore[arg-type]
    session = Session(call)
    replica = Replica("r1", 2, stub=object(), session=session)  # type: ignore[arg-type]
    pool.replicas = [replica]
    recorder = Recorder(pool)
    ctx = RunContext(recorder, None, 1 << 20, recorder, pool)  # type: ignore[arg-type]
    claimed = pool.acquire()
    assert claimed is replica
    claim = Claim(task("us-east-1", function="echo"), b"token", b"key", payload=b"in")
    return TaskRun(claim, replica, spec, ctx), recorder, replica, session


async def run(call: Call, spec: AppSpec = SPEC) -> tuple[Recorder, Replica, Session]:
    taskrun, recorder, replica, session = prepare(call, spec)
    await taskrun.run()
    assert replica.busy == 0  # the slot came back, whatever happened
    return recorder, replica, session


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "x")


async def test_a_result_in_chunks_with_progress_is_written_after_its_slot_is_free() -> None:
    call = Call(
        pb.RunEvent(progress=pb.Progress(fraction=0.5, message="half")),
        pb.RunEvent(chunk=b"hello "),
        pb.RunEvent(result=pb.Result(body=b"world", content_type="text/plain")),
    )
    recorder, replica, session = await run(call)
    assert recorder.settled == [(Result(b"hello world", "text/plain"), 0)]
    assert recorder.events and recorder.events[-1].progress.message == "half"
    (request,) = session.requests
    assert (request.payload, request.function) == (b"in", "echo")
    assert not replica.draining and call.cancelled  # the replica's side is let go


async def test_a_handler_error_fails_the_task_not_the_replica() -> None:
    recorder, replica, _ = await run(Call(pb.RunEvent(error=pb.Error(message="ValueError: x"))))
    assert recorder.settled == [(Failure("handler_error", "ValueError: x"), 0)]
    assert not replica.draining


async def test_max_runtime_fails_the_task_stops_its_run_and_keeps_the_replica() -> None:
    spec = SPEC.model_copy(
        update={"scaling": SPEC.scaling.model_copy(update={"max_runtime": 0.05})}
    )
    call = Call()  # it never answers
    recorder, replica, _ = await run(call, spec)
    assert recorder.settled == [(Failure("timeout", "ran longer than max_runtime = 0.05 s"), 0)]
    assert call.cancelled and not replica.draining


@pytest.mark.parametrize(
    "call",
    [
        Call(error=rpc_error(grpc.StatusCode.UNAVAILABLE)),
        Call(error=asyncio.CancelledError()),  # its channel closed under the call
        Call(pb.RunEvent(log=pb.Log(line="bye"))),  # ended without an outcome
    ],
)
async def test_a_broken_call_retires_the_replica_and_gives_the_task_back(call: Call) -> None:
    recorder, replica, _ = await run(call)
    [(outcome, _)] = recorder.settled
    assert isinstance(outcome, GiveBack) and outcome.reason.startswith("replica r1 died")
    assert replica.draining


async def test_a_run_told_to_stop_writes_nothing_and_frees_its_slot() -> None:
    call = Call()
    taskrun, recorder, replica, _ = prepare(call)
    running = asyncio.ensure_future(taskrun.run())
    await asyncio.sleep(0)  # it waits for the replica's answer
    running.cancel()  # the claim was revoked
    await running
    assert recorder.settled == [] and replica.busy == 0 and call.cancelled
