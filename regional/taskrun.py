"""One claimed task on one replica: the call (the payload inline, or streamed from its blob), the
events it reports on the way (progress and log lines to etcd, result chunks into the result
sink), and its outcome, written fenced by the claim (``outcomes.py``).

The replica's slot is freed the moment it answers, while the outcome is still being written:
the next claim and this settle overlap instead of taking turns. A task's last attempt, if it ran
before, first waits until nothing else runs on its replica (``replicaset.py``). How a call can
end:

| the call ...                                   | outcome                                    |
|------------------------------------------------|--------------------------------------------|
| ends with a result / an error                  | the result / ``handler_error``             |
| brings more than ``max_payload_bytes``         | ``result_too_large``; the call is cut      |
| passes ``max_runtime`` (DEADLINE_EXCEEDED)     | ``timeout``                                |
| is cut because the payload blob is broken      | ``payload_unavailable``; replica not blamed |
| breaks (any other status, channel closed)      | replica retired, task given back at once   |
| is cancelled by the agent (claim revoked)      | nothing: whoever revoked it wrote the end  |
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import grpc

from federation.aio import cancel_and_wait
from federation.appspec import AppSpec
from federation.blobs import BlobRef, BlobStore, BlobUnavailable, checked, result_name
from federation.queue import Claim, Queue
from federation.task import TaskRecord, ulid_of
from regional.events import EventPublisher
from regional.outcomes import Failure, GiveBack, Outcome, Outcomes, Result
from regional.replicas import Replica
from regional.replicaset import ReplicaSet
from regional.results import ResultSink, ResultTooLarge
from regional.rpc import replica_pb2 as pb

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


def rpc_outcome(code: grpc.StatusCode, max_runtime: float) -> Failure | None:
    """What a call that ended with ``code`` means for its task: a failure, or None when the
    replica broke (the task is given back, not failed)."""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Failure("timeout", f"ran longer than max_runtime = {max_runtime} s")
    return None


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
        self.call: Any = None
        self.feeding: asyncio.Task[None] | None = None
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
            outcome = self._payload_failure() or self._broke("channel closed")
        except grpc.aio.AioRpcError as e:
            max_runtime = self.spec.scaling.max_runtime
            outcome = rpc_outcome(e.code(), max_runtime) or self._broke(e.code().name)
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
        """Run the call until the replica answers; free its slot then."""
        self._start()
        async for event in self.call:
            kind = event.WhichOneof("kind")
            if kind == "chunk":
                await self.sink.add(event.chunk)
            elif kind in ("progress", "log"):
                self._publish(event)
            else:
                # The outcome is in: whatever the stream does next (a streaming call whose
                # handler failed before reading all its input may end INTERNAL) says nothing
                # about the replica's health. Events go before the outcome, so readers see them.
                if self.events is not None:
                    await self.events.close()
                self._free()
                if kind == "error":
                    return Failure("handler_error", event.error.message)
                await self.sink.add(event.result.body)
                body, ref = await self.sink.finish()
                return Result(body, event.result.content_type, ref)
        return self._broke("stream ended without an outcome")

    def _start(self) -> None:
        record, stub = self.claim.record, self.replica.stub
        assert stub is not None
        request = pb.RunRequest(
            task_id=record.id, function=record.function, content_type=record.content_type,
            payload=self.claim.payload, size=len(self.claim.payload),
        )  # fmt: skip
        timeout = self.spec.scaling.max_runtime
        if record.payload_ref is None:
            self.call = stub.Run(request, timeout=timeout)
        else:
            self.call = stub.RunStream(timeout=timeout)
            request.size = record.payload_ref.size
            self.feeding = asyncio.create_task(self._feed(request, record.payload_ref))

    async def _feed(self, request: pb.RunRequest, ref: BlobRef) -> None:
        """Stream a blob payload into the replica. On a broken or altered blob the call is
        cancelled and the task fails, instead of the replica being taken for dead."""
        try:
            await self.call.write(pb.RunInput(request=request))
            async for chunk in checked(ref, self.ctx.blobs.read(ref)):
                await self.call.write(pb.RunInput(chunk=chunk))
            await self.call.done_writing()
        except BlobUnavailable:
            self.call.cancel()
            raise

    def _publish(self, event: pb.RunEvent) -> None:
        self.events = self.events or EventPublisher(self.ctx.queue, self.claim.record.id)
        if event.WhichOneof("kind") == "progress":
            self.events.progress(event.progress.fraction, event.progress.message)
        else:
            self.events.line(event.log.line)

    def _payload_failure(self) -> Failure | None:
        """Why feeding a blob payload failed, if the blob (not the replica) was at fault."""
        f = self.feeding
        if f is None or not f.done() or f.cancelled():
            return None
        error = f.exception()
        if not isinstance(error, BlobUnavailable):
            return None
        return Failure("payload_unavailable", error.message)

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
            if self.call is not None:
                self.call.cancel()  # a no-op once the call ended; else it frees the replica's
            if self.feeding is not None:
                await cancel_and_wait([self.feeding])
                if not self.feeding.cancelled():
                    self.feeding.exception()  # seen (the call's own error said what happened)
            await self.sink.abort()
            if self.events is not None:
                await self.events.close()
        finally:
            self._free()
