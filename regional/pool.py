"""One app's replicas in one region: keep the desired number running, hand each claimed task to
a replica with a free slot, and drain replicas chosen for scale-in.

The pool never holds more claimed tasks than its ready replicas have free slots (no prefetch), so
a short task is never parked behind a long one while a slot anywhere is free.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from federation.aio import cancel_and_wait
from federation.appspec import AppSpec
from federation.errors import NotClaimer, Unavailable
from federation.queue import Claim, Queue
from federation.task import TaskError
from regional.events import EventPublisher
from regional.metrics import RegionMetrics
from regional.replicas import Provider, Replica
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
    ) -> None:
        self.spec = spec
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
        try:
            assert replica.stub is not None
            request = pb.RunRequest(
                task_id=record.id, function=record.function,
                payload=claim.payload, content_type=record.content_type,
            )  # fmt: skip
            call = replica.stub.Run(request, timeout=self.spec.scaling.max_runtime)
            async for event in call:
                kind = event.WhichOneof("kind")
                if kind in ("progress", "log"):
                    events = events or EventPublisher(self.queue, record.id)
                    if kind == "progress":
                        events.progress(event.progress.fraction, event.progress.message)
                    else:
                        events.line(event.log.line)
                    continue
                if events is not None:
                    await events.close()
                if kind == "result":
                    self.running.pop(record.id, None)
                    result = event.result
                    done = await self.queue.complete(claim, result.body, result.content_type)
                    self.metrics.finished(done)
                elif kind == "error":
                    self.running.pop(record.id, None)
                    failure = TaskError(code="handler_error", message=event.error.message)
                    self.metrics.finished(await self.queue.fail(claim, failure))
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                return  # we were told to stop: whoever cancelled wrote the final record
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
            if events is not None:
                await events.close()
            self.running.pop(record.id, None)
            replica.busy -= 1
            self._notify()

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
