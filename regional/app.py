"""One app in this agent: its replica set, its view of the app's queue entries, and the tasks it
runs. The dispatcher claims exactly as many tasks as the ready replicas have free slots, never
more (no prefetch), so a short task never waits behind a long one while a slot anywhere is free;
the rest stays in etcd, where any region can take it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from federation.aio import cancel_and_wait
from federation.appspec import AppSpec
from federation.blobs import BlobStore
from federation.claims import held
from federation.errors import Unavailable
from federation.placement import ClaimRules, next_eligible_at
from federation.queue import Claim, Claimer, Queue
from federation.ready import ReadyView
from federation.retry import retried
from regional.config import RegionConfig
from regional.load import Load, Rate, app_load
from regional.metrics import RegionMetrics
from regional.outcomes import GiveBack, Outcomes
from regional.replicas import Provider
from regional.replicaset import ReplicaSet
from regional.taskrun import RunContext, TaskRun, runs_alone

log = logging.getLogger(__name__)


def claim_rules(region: str, spec: AppSpec, down: set[str]) -> ClaimRules:
    """What of the app's tasks this region may take now. Regions without a heartbeat are
    ``down``: their tasks may be taken at once."""
    return ClaimRules(
        region=region,
        spillover_after=spec.placement.spillover_after,
        down_regions=frozenset(down),
        app_regions=spec.placement.regions,
    )


def serves(config: RegionConfig, spec: AppSpec) -> bool:
    """Whether this region runs the app: it is placed here, or placed nowhere in particular."""
    return config.name in (spec.placement.regions or (config.name,))


def partitions_of(config: RegionConfig, spec: AppSpec) -> tuple[str, ...]:
    """The partitions whose tasks of the app this region follows: its own, its peers', and
    those of the regions the app is placed in."""
    return tuple(sorted({*config.partitions, *spec.placement.regions}))


def pool_size(spec: AppSpec, config: RegionConfig, current: int | None = None) -> int:
    """An app's replicas when it starts (``current`` None) or its spec changes: pinned; with
    the autoscaler sizing nodes, the node's share; else the current size within the spec's
    bounds, starting at min_replicas when the autoscaler moves it from there (with 0, the first
    task homed here starts one), or at least one, or nothing would ever run."""
    if spec.name in config.replicas:
        return config.replicas[spec.name]
    if config.capacity.provider != "local":
        return config.capacity.replicas_per_node
    s = spec.scaling
    if current is not None:
        return min(max(current, s.min_replicas), s.max_replicas)
    return s.min_replicas if config.autoscale else max(s.min_replicas, 1)


@dataclass(frozen=True)
class Shared:
    """What every app of the agent shares."""

    region: str
    queue: Queue
    claimer: Claimer
    provider: Provider
    blobs: BlobStore
    inline_limit: int
    metrics: RegionMetrics
    outcomes: Outcomes
    rules: Callable[[AppSpec], ClaimRules]  # which tasks this region may take now
    clock: Callable[[], float]


class AppRunner:
    def __init__(self, spec: AppSpec, view: ReadyView, desired: int, shared: Shared) -> None:
        self.spec = spec
        self.view = view
        self.shared = shared
        self.pool = ReplicaSet(spec, shared.region, shared.provider, desired, shared.metrics)
        self.running: dict[str, tuple[TaskRun, asyncio.Task[None]]] = {}
        self.rate = Rate()  # tasks started per second: the heartbeat's and the autoscaler's
        self.spilled: dict[str, Rate] = {}  # of those, by other home region (spillover flows)
        self._ctx = RunContext(shared.queue, shared.blobs, shared.inline_limit,
                               shared.outcomes, self.pool)  # fmt: skip
        self._loops: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()  # task runs and give-backs

    def start(self) -> None:
        loop, name = asyncio.get_running_loop(), self.spec.name
        self._loops = [
            loop.create_task(self.pool.supervise(), name=f"supervise-{name}"),
            loop.create_task(self.view.run(), name=f"view-{name}"),
            loop.create_task(self._dispatch(), name=f"dispatch-{name}"),
        ]

    def update(self, spec: AppSpec, desired: int) -> None:
        """A new spec: scaling and limits apply at once (runs already started keep theirs)."""
        self.spec = self.pool.spec = spec
        self.pool.scale_to(desired)

    async def stop(self) -> None:
        await cancel_and_wait(self._loops)
        await cancel_and_wait(list(self._tasks))
        await self.pool.close()

    def load(self, now: float) -> Load:
        rules = self.shared.rules(self.spec)
        spilled = {home: r.per_second(now) for home, r in self.spilled.items()}
        running = [run.claim.record for run, _ in self.running.values() if run.slot_held]
        return app_load(self.spec.name, self.pool.counts(), self.view.entries.values(), running,
                        rules, now, self.rate.per_second(now), spilled)  # fmt: skip

    # -- claiming and running ------------------------------------------------------------------

    async def _dispatch(self) -> None:
        """Claim as many tasks as there are free slots, never more; sleep until the queue
        changes, a slot frees, or a waiting task becomes eligible here (spillover)."""
        await self.view.wait_synced()
        while True:
            self.view.changed.clear()
            self.pool.capacity.clear()
            rules = self.shared.rules(self.spec)
            free = self.pool.free_slots
            if free > 0 and self.view.entries:
                claimer = self.shared.claimer
                claims = await retried(self.view.claim, claimer, free, rules)
                for c in claims:
                    self.dispatch(c)
                if claims:
                    continue  # more may be claimable at once
            await self._idle(rules)

    async def _idle(self, rules: ClaimRules) -> None:
        clock = self.shared.clock
        wake = next_eligible_at(self.view.entries.values(), rules, clock())
        timeout = None if wake is None else max(0.0, wake - clock()) + 0.001
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(timeout or 1.0, 1.0)):
                # 1 s at most: a home region going down makes its tasks eligible at once.
                await _first(self.view.changed.wait(), self.pool.capacity.wait())

    def dispatch(self, claim: Claim) -> None:
        """Hand a claimed task to a replica (``replicaset.place``; one that runs alone waits
        for one to itself)."""
        alone = runs_alone(claim.record)
        replica = self.pool.acquire(alone)
        if replica is None:  # the replica we counted on died while the claim was in flight
            gone = GiveBack("no replica free any more", ran=False)
            self._spawn(self.shared.outcomes.settle(claim, gone))
            return
        record, now = claim.record, self.shared.clock()
        self.rate.record(now)
        if record.home_region != self.shared.region:
            self.spilled.setdefault(record.home_region, Rate()).record(now)
        self.shared.metrics.started(record)
        run = TaskRun(claim, replica, self.spec, self._ctx, alone)
        task = self._spawn(run.run())
        self.running[record.id] = (run, task)
        task.add_done_callback(lambda _: self._ended(record.id, run))

    def cancel(self, task_id: str) -> None:
        """A claim of the task went (a client cancelled it, or our lease lapsed): stop its run,
        unless its outcome is already being written (the fence decides then)."""
        entry = self.running.get(task_id)
        if entry is not None and not entry[0].settling:
            self._spawn(self._revoke(*entry))

    async def _revoke(self, run: TaskRun, task: asyncio.Task[None]) -> None:
        """Stop the run if its own claim went. The delete of an earlier claim of the task (given
        back, claimed again by us under the same key) may come late: then the run's claim is
        live, and stopped, nothing would ever settle it."""
        try:
            if await held(self.shared.queue, run.claim):
                return
        except Unavailable:
            return  # cannot tell: it runs on; if revoked, the fence keeps its result out
        if not run.settling:
            task.cancel()

    def _ended(self, task_id: str, run: TaskRun) -> None:
        if task_id in self.running and self.running[task_id][0] is run:  # not a later attempt
            del self.running[task_id]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def _first(*aws: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``aws`` finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
