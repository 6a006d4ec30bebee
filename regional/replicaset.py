"""One app's replicas in one region: start them, notice exits and replace them, drain the ones
chosen for scale-in and stop them once idle, towards ``desired``; and hand out their slots.

A slot is taken for each task sent to a replica (``acquire``) and given back as soon as the
replica answers (``free``), while the outcome is still being written. Which replicas to start,
drain and stop is a pure function of the set (:func:`plan`), and so is where a task goes
(:func:`place`).

A task's last attempt, if it ran before, runs alone on its replica (``reserve``, then ``turn``).
A task that kills its replica takes the tasks beside it down, each charged an attempt: beside a
poison task at each of its attempts, innocent tasks used up their attempts and failed
``replica_lost`` with it. Run alone at the end, the culprit fails by itself. The replica it waits
on takes no new claims and drains to it; if the replica goes first, the wait moves (uncharged:
the task never ran there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from federation.aio import cancel_and_wait
from federation.appspec import AppSpec
from regional.load import ReplicaCounts
from regional.metrics import RegionMetrics
from regional.replicas import Provider, Replica

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    start: int  # replicas to start
    drain: tuple[Replica, ...]  # to take no new work from now on
    stop: tuple[Replica, ...]  # drained and idle: to stop now


def plan(
    replicas: Sequence[Replica], starting: int, desired: int, stopping: Collection[str]
) -> Plan:
    """Towards ``desired`` live (not draining) replicas, counting those being started. Drain
    the least busy first (they finish soonest); never stop one that runs a task."""
    live = [r for r in replicas if not r.draining]
    start = max(0, desired - len(live) - starting)
    surplus = len(live) + starting - desired
    # A replica a task waits on to run alone last: its wait would only move.
    drain = tuple(sorted(live, key=lambda r: (r.reserved > 0, r.busy))[: max(0, surplus)])
    stop = tuple(
        r for r in replicas if (r.draining or r in drain) and r.busy == 0 and r.id not in stopping
    )
    return Plan(start, drain, stop)


def place(replicas: Sequence[Replica]) -> Replica | None:
    """Where a claimed task goes: the replica with the most free slots; one that drains to a
    task waiting to run alone only if no other has room (that drain must end: under a steady
    load the waiting task would be starved by the tasks placed beside it)."""
    best = max(replicas, key=lambda r: (r.free > 0 and not r.reserved, r.free), default=None)
    return best if best is not None and best.free > 0 else None


def quietest(replicas: Sequence[Replica]) -> Replica | None:
    """Where a task waits to run alone: the live replica that drains to it soonest (the fewest
    tasks waiting there, then running)."""
    live = [r for r in replicas if r.ready and not r.draining]
    return min(live, key=lambda r: (r.reserved, r.busy), default=None)


def alone_turn(replica: Replica, replicas: Sequence[Replica]) -> Literal["run", "wait"] | Replica:
    """For a task waiting on ``replica`` to run alone: "run" once nothing runs there, "wait"
    while something does; if the replica went (exited, drained), the one to wait on instead,
    or "wait" until there is one."""
    if replica.ready and not replica.draining:
        return "run" if replica.busy == 0 else "wait"
    return quietest(replicas) or "wait"


class ReplicaSet:
    def __init__(
        self,
        spec: AppSpec,
        region: str,
        provider: Provider,
        desired: int,
        metrics: RegionMetrics | None = None,
    ) -> None:
        self.spec = spec
        self.region = region
        self.provider = provider
        self.desired = desired
        self.metrics = metrics
        self.replicas: list[Replica] = []
        self.starting = 0
        self.changed = asyncio.Event()  # for the supervisor: a replica came, went or drained
        self.capacity = asyncio.Event()  # for the dispatcher: a slot may have freed
        self.turns = asyncio.Event()  # the same, for tasks waiting to run alone
        self._stopping: set[str] = set()  # replicas a stop was sent to
        self._broken: set[str] = set()  # replicas retired for a broken call
        self._tasks: set[asyncio.Task[None]] = set()

    # -- slots ---------------------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        """Slots to claim for: a replica a task waits on to run alone is left out (it drains)."""
        return sum(r.free for r in self.replicas if not r.reserved)

    @property
    def busy_slots(self) -> int:
        return sum(r.busy for r in self.replicas)

    @property
    def ready_replicas(self) -> list[Replica]:
        return [r for r in self.replicas if r.ready and not r.draining]

    def counts(self) -> ReplicaCounts:
        ready = self.ready_replicas
        return ReplicaCounts(
            processes=len(self.replicas), live=sum(not r.draining for r in self.replicas),
            starting=self.starting, ready=len(ready), desired=self.desired,
            slots=sum(r.capacity for r in ready), busy_slots=self.busy_slots,
        )  # fmt: skip

    def pids(self) -> tuple[int, ...]:
        """The ready replicas' processes (local ones): for the cpu and memory metrics."""
        return tuple(r.process.pid for r in self.ready_replicas if r.process is not None)

    def acquire(self, alone: bool = False) -> Replica | None:
        """A slot where :func:`place` says, or for a task to run alone a replica to wait on
        (:meth:`turn` takes its slot); None if none is left (one died while we claimed)."""
        replica = (quietest if alone else place)(self.replicas)
        if replica is not None:
            replica.reserved += alone
            replica.busy += not alone
        return replica

    def turn(self, replica: Replica) -> tuple[Replica, bool]:
        """For a task waiting on ``replica`` to run alone (:func:`alone_turn`): where it waits
        now (moved if that one went) and whether its turn came (then its slot is taken)."""
        step = alone_turn(replica, self.replicas)
        if isinstance(step, Replica):
            replica.reserved, step.reserved = replica.reserved - 1, step.reserved + 1
            return self.turn(step)
        replica.busy += step == "run"
        return replica, step == "run"

    def free(self, replica: Replica, slot: bool = True, alone: bool = False) -> None:
        """Give back a slot, and (``alone``) the wait of a task that ran alone or gave up."""
        replica.busy -= slot
        replica.reserved -= alone
        self._notify()

    def retire(self, replica: Replica) -> None:
        """A call to it broke: it is dying or sick. Drain it now (before its exit is noticed,
        so no task is sent to it) and let the supervisor replace it."""
        replica.draining = True
        self._broken.add(replica.id)
        self._notify()

    def scale_to(self, n: int) -> None:
        self.desired = n
        self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.capacity.set()
        self.turns.set()

    # -- supervision ---------------------------------------------------------------------------

    async def supervise(self) -> None:
        """Forever: replace exited replicas, start or drain towards ``desired``, stop drained."""
        while True:
            for r in [r for r in self.replicas if r.exited.is_set()]:
                self._gone(r)
            todo = plan(self.replicas, self.starting, self.desired, self._stopping)
            for _ in range(todo.start):
                self.starting += 1
                self._spawn(self._start_one(), f"start-{self.spec.name}")
            for r in todo.drain:
                r.draining = True
            for r in todo.stop:
                self._stopping.add(r.id)
                self._spawn(self.provider.stop(r), f"stop-{r.id}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self.changed.wait()

    def _gone(self, replica: Replica) -> None:
        """An exited replica leaves the set. It died unasked if no stop was sent to it, or if
        a call broke first (the stop that follows a retirement is not why it went)."""
        self.replicas.remove(replica)
        unasked = replica.id in self._broken or replica.id not in self._stopping
        if unasked and self.metrics is not None:
            self.metrics.replica_exits.labels(self.spec.name, self.region).inc()
        self._stopping.discard(replica.id)
        self._broken.discard(replica.id)
        self._notify()

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

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await cancel_and_wait(list(self._tasks))
        await asyncio.gather(
            *(self.provider.stop(r) for r in self.replicas), return_exceptions=True
        )
