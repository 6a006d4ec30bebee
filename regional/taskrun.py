"""One claimed task on one replica: the run (the payload inline, on the replica's session,
``session.py``; or streamed from its blob, a call of its own), the events it reports on the way
(progress and log lines to etcd, result chunks into the result sink), and its outcome, written
fenced by the claim (``outcomes.py``).

The replica's slot is freed the moment it answers, while the outcome is still being written:
the next claim and this settle overlap instead of taking turns. A task's last attempt, if it ran
before, first waits until nothing else runs on its replica (``replicaset.py``). How a run can
end (a run that is given up is cancelled on the replica: a cancel on the session, or the call
cut):

| the run ...                                    | outcome                                    |
|------------------------------------------------|--------------------------------------------|
| ends with a result / an error                  | the result / ``handler_error``             |
| brings more than ``max_payload_bytes``         | ``result_too_large``; the run is cancelled |
| passes ``max_runtime`` (the agent's timer)     | ``timeout``; the run is cancelled          |
| is cut because the payload blob is broken      | ``payload_unavailable``; replica not blamed |
| breaks (session or call broken, channel closed) | replica retired, task given back at once  |
| is cancelled by the agent (claim revoked)      | nothing: whoever revoked it wrote the end  |
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc

from federation.appspec import AppSpec
from federation.blobs import BlobStore, result_name
from federation.queue import Claim, Queue
from federation.task import TaskRecord, ulid_of
from regional.events import EventPublisher
from regional.feed import BlobCall
from regional.outcomes import Failure, GiveBack, Outcome, Outcomes, Result
from regional.replicas import Replica
from regional.replicaset import ReplicaSet
from regional.results import ResultSink, ResultTooLarge
from regional.rpc import replica_pb2 as pb
from regional.session import Run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """What every task run of an app shares."""

    queue: Queue
    blobs: BlobStore
    inline_limit: int
    outcomes: Outcomes
    replicas: ReplicaSet


def runs_alone(record: TaskRecord) -> bool:
    """The last attempt of a task that was run before (lost with its replica or its agent):
    it runs alone, so a task that kills its replica fails by itself at the end."""
    return record.attempts > 1 and record.attempts >= record.max_attempts


class TaskRun:
    def __init__(
        self, claim: Claim, replica: Replica, spec: AppSpec, ctx: RunContext, alone: bool = False
    ) -> None:
        self.claim = claim
        self.replica = replica
        self.spec = spec
        self.ctx = ctx
        record = claim.record
        name = result_name(ulid_of(record.id), record.attempts)
        self.sink = ResultSink(ctx.blobs, ctx.inline_limit, name, spec.scaling.max_payload_bytes)
        self.events: EventPublisher | None = None  # most tasks report none: no extra writes
        self.call: Run | BlobCall | None = None
        # A task that runs alone (``runs_alone``) waits for its turn on the replica reserved
        # for it before it takes a slot.
        self.alone = alone
        self.slot_held = not alone
        # Past the answer: a revoked claim no longer stops it (the fenced write decides).
        self.settling = False

    async def run(self) -> None:
        try:
            await self._turn()
            outcome = await self._ask()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                return  # we were told to stop: whoever cancelled wrote the final record
            # The call, not this task, was cancelled: the feeder cut it (a broken blob), or the
            # replica died and its channel closed under it (grpc.aio raises CancelledError
            # then, not an RpcError).
            blob = self.call.failure() if isinstance(self.call, BlobCall) else None
            outcome = blob or self._broke("channel closed")
        except grpc.aio.AioRpcError as e:
            outcome = self._broke(e.code().name)
        except ResultTooLarge as e:  # the call is cut below; the replica is not to blame
            outcome = Failure("result_too_large", str(e))
        finally:
            await self._end()
        self.settling = True
        await self.ctx.outcomes.settle(self.claim, outcome)

    async def _turn(self) -> None:
        """For a task that runs alone: wait until nothing else runs on its replica (if the
        replica goes meanwhile, on another; the task never ran there: nothing is charged)."""
        replicas = self.ctx.replicas
        while not self.slot_held:
            self.replica, self.slot_held = replicas.turn(self.replica)
            if not self.slot_held:
                replicas.turns.clear()  # no await since the look: no notice is missed
                await replicas.turns.wait()

    async def _ask(self) -> Outcome:
        """Run the task until the replica answers; free its slot then."""
        self.call = self._start()
        max_runtime = self.spec.scaling.max_runtime
        deadline = asyncio.timeout(max_runtime)
        try:
            async with deadline:
                answer = await self._answer(self.call)
        except TimeoutError:
            if not deadline.expired():
                raise
            return Failure("timeout", f"ran longer than max_runtime = {max_runtime} s")
        if answer is None:
            return self._broke("stream ended without an outcome")
        # The outcome is in: whatever the stream does next (a streaming call whose handler
        # failed before reading all its input may end INTERNAL) says nothing about the
        # replica's health. Events go before the outcome, so readers see them.
        if self.events is not None:
            await self.events.close()
        self._free()
        if answer.WhichOneof("kind") == "error":
            return Failure("handler_error", answer.error.message)
        await self.sink.add(answer.result.body)
        body, ref = await self.sink.finish()
        return Result(body, answer.result.content_type, ref)

    async def _answer(self, call: Run | BlobCall) -> pb.RunEvent | None:
        """The events until the outcome (a Result or an Error); None if the run ended first."""
        async for event in call:
            kind = event.WhichOneof("kind")
            if kind == "chunk":
                await self.sink.add(event.chunk)
            elif kind in ("progress", "log"):
                self._publish(event)
            else:
                answer: pb.RunEvent = event
                return answer
        return None

    def _start(self) -> Run | BlobCall:
        record, replica = self.claim.record, self.replica
        request = pb.RunRequest(
            task_id=record.id, function=record.function, content_type=record.content_type,
            payload=self.claim.payload, size=len(self.claim.payload),
        )  # fmt: skip
        if record.payload_ref is None:
            assert replica.session is not None
            return replica.session.start(request)
        assert replica.stub is not None
        return BlobCall(replica.stub, request, record.payload_ref, self.ctx.blobs)

    def _publish(self, event: pb.RunEvent) -> None:
        self.events = self.events or EventPublisher(self.ctx.queue, self.claim.record.id)
        if event.WhichOneof("kind") == "progress":
            self.events.progress(event.progress.fraction, event.progress.message)
        else:
            self.events.line(event.log.line)

    def _broke(self, how: str) -> GiveBack:
        """The call broke: the replica is dying or sick. Retire it and requeue the task at
        once, not after a lease timeout."""
        log.warning("replica %s lost task %s: %s", self.replica.id, self.claim.record.id, how)
        self.ctx.replicas.retire(self.replica)
        return GiveBack(f"replica {self.replica.id} died ({how})")

    def _free(self) -> None:
        """Give the slot back, and the replica's reservation of a task that ran alone (or was
        cancelled while it waited: then it held no slot)."""
        if self.slot_held or self.alone:
            self.ctx.replicas.free(self.replica, slot=self.slot_held, alone=self.alone)
            self.slot_held = self.alone = False

    async def _end(self) -> None:
        """Let go of the call and what it used. The slot is freed whatever happens on the way:
        a run stopped by a revoked claim stays marked as cancelling, so its last event write
        raises CancelledError, and a slot that leaked there stayed busy for good."""
        try:
            if isinstance(self.call, BlobCall):
                await self.call.close()
            elif self.call is not None:
                self.call.cancel()  # a no-op once the run ended; else it frees the replica's
            await self.sink.abort()
            if self.events is not None:
                await self.events.close()
        finally:
            self._free()
