"""One app's replicas in one region: keep the desired number running, hand each claimed task to
a replica with a free slot, and drain replicas chosen for scale-in.

The pool never holds more claimed, unstarted tasks than its ready replicas have free slots (no
prefetch), so a short task is never parked behind a long one while a slot anywhere is free. A slot
frees as soon as the replica answers, while the outcome is still being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any

import grpc
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from federation.aio import cancel_and_wait
from federation.appspec import AppSpec
from federation.blobs import BlobRef, BlobStore, BlobUnavailable, checked, result_name
from federation.errors import NotClaimer, Unavailable
from federation.queue import Claim, Queue
from federation.task import TaskError, ulid_of
from regional.events import EventPublisher
from regional.metrics import RegionMetrics
from regional.replicas import Provider, Replica
from regional.results import ResultSink
from regional.rpc import replica_pb2 as pb

log = logging.getLogger(__name__)


class Pool:
    def __init__(
        self,
        spec: AppSpec,
        region: str,
        queue: Queue,
        provider: Provider,
        desired: int,
        metrics: RegionMetrics,
        blobs: BlobStore,
        inline_limit: int,
    ) -> None:
        self.spec = spec
        self.blobs = blobs
        self.inline_limit = inline_limit
        self.metrics = metrics
        self.region = region
        self.queue = queue
        self.provider = provider
        self.desired = desired
        self.replicas: list[Replica] = []
        self.starting = 0
        self.running: dict[str, tuple[asyncio.Task[None], Replica]] = {}
        self.changed = asyncio.Event()  # for the supervisor: a replica came, went or drained
        self.capacity = asyncio.Event()  # for the dispatcher: a slot may have freed
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping: set[str] = set()  # replicas a stop was sent to
        self.started = 0  # tasks dispatched, ever: the autoscaler's request rate
        self.started_from: Counter[str] = Counter()  # the same, by home partition

    # -- capacity ----------------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        return sum(r.free for r in self.replicas)

    @property
    def ready_replicas(self) -> list[Replica]:
        return [r for r in self.replicas if r.ready and not r.draining]

    @property
    def busy_slots(self) -> int:
        return sum(r.busy for r in self.replicas)

    def _spawn(self, coro: object, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _notify(self) -> None:
        self.changed.set()
        self.capacity.set()

    # -- supervision -------------------------------------------------------------------------

    async def supervise(self) -> None:
        """Forever: replace exited replicas, start or drain towards ``desired``, stop drained."""
        while True:
            for r in [r for r in self.replicas if r.exited.is_set()]:
                self.replicas.remove(r)
                self._stopping.discard(r.id)
                self._notify()
            live = [r for r in self.replicas if not r.draining]
            for _ in range(self.desired - len(live) - self.starting):
                self.starting += 1
                self._spawn(self._start_one(), f"start-{self.spec.name}")
            surplus = len(live) + self.starting - self.desired
            # Drain the least busy first: they finish soonest. Never kill a running task.
            for r in sorted(live, key=lambda r: r.busy)[: max(0, surplus)]:
                r.draining = True
            for r in self.replicas:
                if r.draining and r.busy == 0 and r.id not in self._stopping:
                    self._stopping.add(r.id)
                    self._spawn(self.provider.stop(r), f"stop-{r.id}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self.changed.wait()

    async def _start_one(self) -> None:
        try:
            replica = await self.provider.start(self.spec, self.region)
        except Exception as e:
            log.warning("starting a replica of %s failed: %s", self.spec.name, e)
            await asyncio.sleep(1)  # do not spin on a handler that cannot load
            return
        finally:
            self.starting -= 1
            self._notify()
        self.replicas.append(replica)
        self._spawn(self._on_exit(replica), f"exit-{replica.id}")

    async def _on_exit(self, replica: Replica) -> None:
        await replica.exited.wait()
        self._notify()

    def _retire(self, replica: Replica) -> None:
        """A call to it broke: it is dying or sick. Drain it now (before its exit is noticed, so
        no task is sent to it) and let the supervisor replace it."""
        replica.draining = True
        self._notify()

    def scale_to(self, n: int) -> None:
        self.desired = n
        self._notify()

    # -- running tasks -----------------------------------------------------------------------

    def dispatch(self, claim: Claim) -> None:
        """Hand a claimed task to the replica with the most free slots."""
        replica = max(self.replicas, key=lambda r: r.free, default=None)
        if replica is None or replica.free <= 0:
            # The replica we counted on died while the claim was in flight.
            self._spawn(self._give_back(claim, "no replica free any more"), "give-back")
            return
        replica.busy += 1
        self.started += 1
        self.started_from[claim.record.partition] += 1
        self.metrics.started(claim.record)
        task = self._spawn(self._run(claim, replica), f"task-{claim.record.id}")
        self.running[claim.record.id] = (task, replica)

    def cancel(self, task_id: str) -> None:
        """The task's claim was deleted (cancelled by a client, or our lease lapsed): stop it."""
        entry = self.running.get(task_id)
        if entry is not None:
            entry[0].cancel()

    async def _run(self, claim: Claim, replica: Replica) -> None:
        record = claim.record
        events: EventPublisher | None = None  # most tasks report none: no extra etcd writes
        sink = ResultSink(self.blobs, self.inline_limit, result_name(ulid_of(record.id),
                                                                     record.attempts))  # fmt: skip
        feeding: asyncio.Task[None] | None = None
        call: Any = None
        slot_held = True
        try:
            assert replica.stub is not None
            request = pb.RunRequest(
                task_id=record.id, function=record.function, content_type=record.content_type,
                payload=claim.payload, size=len(claim.payload),
            )  # fmt: skip
            timeout = self.spec.scaling.max_runtime
            if record.payload_ref is None:
                call = replica.stub.Run(request, timeout=timeout)
            else:
                call = replica.stub.RunStream(timeout=timeout)
                request.size = record.payload_ref.size
                feeding = asyncio.create_task(self._feed(call, request, record.payload_ref))
            async for event in call:
                kind = event.WhichOneof("kind")
                if kind == "chunk":
                    await sink.add(event.chunk)
                    continue
                if kind in ("progress", "log"):
                    events = events or EventPublisher(self.queue, record.id)
                    if kind == "progress":
                        events.progress(event.progress.fraction, event.progress.message)
                    else:
                        events.line(event.log.line)
                    continue
                if events is not None:
                    await events.close()
                # The replica is done with it: its slot takes the next task while this one's
                # outcome is written (claim and settle overlap instead of taking turns).
                replica.busy -= 1
                slot_held = False
                self._notify()
                if kind == "result":
                    await sink.add(event.result.body)
                    body, ref = await sink.finish()
                    self.running.pop(record.id, None)
                    try:
                        done = await self.queue.complete(
                            claim, body, event.result.content_type, ref
                        )
                    except BaseException:
                        if ref is not None:  # fenced off (or unknown): not the result that counts
                            await self.blobs.delete(ref.name)
                        raise
                    self.metrics.finished(done)
                elif kind == "error":
                    self.running.pop(record.id, None)
                    failure = TaskError(code="handler_error", message=event.error.message)
                    self.metrics.finished(await self.queue.fail(claim, failure))
                # The outcome is in: whatever the stream does next (a streaming call whose
                # handler failed before reading all its input may end INTERNAL) says nothing
                # about the replica's health.
                break
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                return  # we were told to stop: whoever cancelled wrote the final record
            if (bad := _payload_error(feeding)) is not None:
                await self._payload_failed(claim, bad)
                return
            # The call, not this task, was cancelled: the replica died and its channel closed
            # under the call (grpc.aio raises CancelledError then, not an RpcError).
            self._retire(replica)
            await self._give_back(claim, f"replica {replica.id} died (channel closed)")
        except grpc.aio.AioRpcError as e:
            await self._after_rpc_error(claim, replica, e)
        except NotClaimer:
            log.info("task %s: claim lost before its result was written", record.id)
        except Unavailable as e:
            # etcd down: our lease will lapse and the reaper requeues the task elsewhere.
            log.warning("task %s: could not write its outcome: %s", record.id, e)
        finally:
            if call is not None:
                call.cancel()  # a no-op once the call ended; else it frees the replica's side
            if feeding is not None:
                await cancel_and_wait([feeding])
                if not feeding.cancelled():
                    feeding.exception()  # seen (the call's own error said what happened)
            await sink.abort()
            if events is not None:
                await events.close()
            self.running.pop(record.id, None)
            if slot_held:
                replica.busy -= 1
                self._notify()

    async def _feed(self, call: Any, request: pb.RunRequest, ref: BlobRef) -> None:
        """Stream a blob payload into the replica. On a broken or altered blob the call is
        cancelled and ``_run`` fails the task (below), instead of taking the replica for dead."""
        try:
            await call.write(pb.RunInput(request=request))
            async for chunk in checked(ref, self.blobs.read(ref)):
                await call.write(pb.RunInput(chunk=chunk))
            await call.done_writing()
        except BlobUnavailable:
            call.cancel()
            raise

    async def _payload_failed(self, claim: Claim, error: BlobUnavailable) -> None:
        with contextlib.suppress(NotClaimer, Unavailable):
            failure = TaskError(code="payload_unavailable", message=error.message)
            self.metrics.finished(await self.queue.fail(claim, failure))

    async def _after_rpc_error(
        self, claim: Claim, replica: Replica, e: grpc.aio.AioRpcError
    ) -> None:
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            limit = self.spec.scaling.max_runtime
            message = f"ran longer than max_runtime = {limit} s"
            with contextlib.suppress(NotClaimer, Unavailable):
                failure = TaskError(code="timeout", message=message)
                self.metrics.finished(await self.queue.fail(claim, failure))
        else:
            # The stream broke: the replica died. Requeue at once, not after a lease timeout.
            log.warning("replica %s lost task %s: %s", replica.id, claim.record.id, e.code())
            self._retire(replica)
            await self._give_back(claim, f"replica {replica.id} died ({e.code().name})")

    async def _give_back(self, claim: Claim, reason: str) -> None:
        """Requeue a task whose replica died. Retried: while our lease lives, nobody else would
        requeue it, so a release lost to a short etcd outage would strand the task."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Unavailable),
            wait=wait_exponential(multiplier=0.1, max=2),
            stop=stop_after_delay(30),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self.queue.release(claim, reason)
        except NotClaimer:
            pass  # already cancelled, or our lease lapsed and the reaper requeued it
        except Unavailable as e:
            log.warning("task %s: could not requeue it: %s", claim.record.id, e)

    async def close(self) -> None:
        await cancel_and_wait(list(self._tasks))
        await asyncio.gather(
            *(self.provider.stop(r) for r in self.replicas), return_exceptions=True
        )


def _payload_error(feeding: asyncio.Task[None] | None) -> BlobUnavailable | None:
    """Why feeding a blob payload failed, if the blob (not the replica) was at fault."""
    if feeding is None or not feeding.done() or feeding.cancelled():
        return None
    error = feeding.exception()
    return error if isinstance(error, BlobUnavailable) else None
