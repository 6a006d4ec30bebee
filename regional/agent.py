"""A region's agent: joins etcd with a session, runs a pool per deployed app, claims exactly as
many tasks as its ready replicas have free slots, publishes the region's heartbeat, and runs the
reaper. One composition of the federation core; the policy lives in ``federation``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from federation import keys
from federation.aio import cancel_and_wait
from federation.apps import AppRegistry
from federation.appspec import AppSpec
from federation.blobs import BlobStore
from federation.blobs.sweep import run_sweeper
from federation.errors import Unavailable
from federation.etcd import Snapshot, follow
from federation.heartbeat import AppLoad, RegionHeartbeat, merge, spilled_in
from federation.placement import ClaimRules, claim_order, next_eligible_at
from federation.queue import Claimer, Queue
from federation.ready import ReadyView
from federation.reaper import run_reaper
from federation.storage import Level, StorageGuard, StorageKeeper
from federation.topology import Clusters
from regional.autoscale import run_autoscaler
from regional.blobs import serve_blobs
from regional.capacity import AsgCapacity, open_capacity
from regional.config import RegionConfig
from regional.metrics import RegionMetrics
from regional.pool import Pool
from regional.replicas import Provider
from regional.webhooks import WebhookSender

log = logging.getLogger(__name__)


@dataclass
class AppRunner:
    spec: AppSpec
    pool: Pool
    view: ReadyView
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Agent:
    def __init__(
        self,
        config: RegionConfig,
        clusters: Clusters,
        provider: Provider,
        *,
        clock: Callable[[], float] = time.time,
        metrics: RegionMetrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or RegionMetrics(CollectorRegistry(), config.name)
        self.clusters = clusters
        self.provider = provider
        self.clock = clock
        self.queue = Queue(clusters, clock=clock)
        self.apps = AppRegistry(clusters.control, clusters.root)
        claimer_id = f"{config.name}-{os.uname().nodename}-{os.getpid()}"
        self.claimer = Claimer(claimer_id, config.name, ttl=config.lease_ttl)
        self.runners: dict[str, AppRunner] = {}
        self.specs: dict[str, AppSpec] = {}  # every deployed app
        self.live_regions: set[str] = set()
        self.regions: dict[str, RegionHeartbeat] = {}  # every region's agents, merged
        self._beaten: dict[str, tuple[float, int]] = {}  # app: (last beat, pool.started then)
        self._beaten_from: dict[str, dict[str, int]] = {}  # app: pool.started_from then
        self.blobs: BlobStore | None = None  # open while run() runs
        self.capacity: AsgCapacity | None = None  # the region's node group, if it scales nodes

    def partitions(self, spec: AppSpec) -> tuple[str, ...]:
        return tuple(sorted({*self.config.partitions, *spec.placement.regions}))

    def rules(self, spec: AppSpec) -> ClaimRules:
        """Regions without a heartbeat are down: their tasks may be taken at once."""
        known = {p for r in self.runners.values() for p in r.view.partitions}
        return ClaimRules(
            region=self.config.name,
            spillover_after=spec.placement.spillover_after,
            down_regions=frozenset(known - self.live_regions),
            app_regions=spec.placement.regions,
        )

    async def run(self) -> None:
        async with (
            serve_blobs(self.config, self.clusters) as self.blobs,
            open_capacity(self.config.capacity) as self.capacity,
        ):
            await self._run()

    def _blob_partitions(self) -> set[str]:
        """Partitions whose tasks this agent may have stored results for."""
        return {
            *self.config.partitions,
            *(p for r in self.runners.values() for p in r.view.partitions),
        }

    async def _run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._follow_apps())
                tg.create_task(self._follow_regions())
                tg.create_task(self._heartbeat())
                self._keep_storage(tg)
                c = self.config
                hooks = WebhookSender(
                    self.clusters, c.name, attempts=c.webhook_attempts,
                    backoff=c.webhook_backoff, private_targets=c.webhook_private_targets,
                )  # fmt: skip
                tg.create_task(hooks.run())
                assert self.blobs is not None
                tg.create_task(
                    run_sweeper(self.blobs, self.clusters, self._blob_partitions,
                                c.blobs.sweep_interval, c.blobs.sweep_grace)
                )  # fmt: skip
                if c.autoscale:
                    tg.create_task(run_autoscaler(self))
                for p in self.config.partitions:
                    tg.create_task(self._follow_own_claims(p))
        finally:
            for name in list(self.runners):
                await self._stop_app(name)
            await self.claimer.close()

    def _keep_storage(self, tg: asyncio.TaskGroup) -> None:
        """Watch each cluster's space; under pressure the reaper sweeps finished tasks early,
        and the elected keeper of each cluster compacts, defragments and disarms its alarm."""
        guard = StorageGuard(self.clusters)
        tg.create_task(guard.run())
        for name, etcd in self.clusters.named().items():
            keeper = StorageKeeper(guard, name, etcd, functools.partial(self.claimer.session, etcd))
            tg.create_task(keeper.run(self.claimer.id.encode()))

        def pressure(partition: str) -> bool:
            return guard.level_of(self.queue.etcd(partition)) is not Level.OK

        def graces() -> dict[str, float]:  # every deployed app's, served here or not
            return {n: s.scaling.response_grace_period for n, s in self.specs.items()}

        tg.create_task(
            run_reaper(self.queue, self.config.partitions, pressure=pressure, graces=graces)
        )

    # -- apps ---------------------------------------------------------------------------------

    async def _follow_apps(self) -> None:
        async for specs in self.apps.follow():
            self.specs = specs
            for name in list(self.runners):
                if name not in specs or self.config.name not in self._regions_of(specs[name]):
                    await self._stop_app(name)
            for name, spec in specs.items():
                if self.config.name not in self._regions_of(spec):
                    continue
                runner = self.runners.get(name)
                if runner is None:
                    self._start_app(spec)
                elif runner.spec != spec:
                    runner.spec = runner.pool.spec = spec  # scaling and limits apply at once
                    runner.pool.scale_to(self._desired(spec, runner.pool.desired))

    def _regions_of(self, spec: AppSpec) -> tuple[str, ...]:
        return spec.placement.regions or (self.config.name,)

    def _desired(self, spec: AppSpec, current: int | None = None) -> int:
        """A pool's size when it starts (``current`` None) or its spec changes: pinned; with
        the autoscaler sizing nodes, the node's share; else the current size within the spec's
        bounds, starting at min_replicas when the autoscaler moves it from there (with 0, the
        first task homed here starts one), or at least one, or nothing would ever run."""
        if spec.name in self.config.replicas:
            return self.config.replicas[spec.name]
        if self.config.capacity.provider != "local":
            return self.config.capacity.replicas_per_node
        s = spec.scaling
        if current is not None:
            return min(max(current, s.min_replicas), s.max_replicas)
        return s.min_replicas if self.config.autoscale else max(s.min_replicas, 1)

    def _start_app(self, spec: AppSpec) -> None:
        desired = self._desired(spec)
        assert self.blobs is not None
        pool = Pool(spec, self.config.name, self.queue, self.provider, desired, self.metrics,
                    self.blobs, self.config.blobs.inline_limit)  # fmt: skip
        # The view holds only tasks this region may ever take: a backlog pinned elsewhere in a
        # partition it follows does not crowd its head.
        allows = ClaimRules(self.config.name, app_regions=spec.placement.regions).allows
        view = ReadyView(self.queue, spec.name, self.partitions(spec), allows=allows)
        runner = AppRunner(spec, pool, view)
        loop = asyncio.get_running_loop()
        runner.tasks = [
            loop.create_task(pool.supervise(), name=f"supervise-{spec.name}"),
            loop.create_task(view.run(), name=f"view-{spec.name}"),
            loop.create_task(self._dispatch(runner), name=f"dispatch-{spec.name}"),
        ]
        self.runners[spec.name] = runner
        log.info("serving app %s (replicas: %d)", spec.name, pool.desired)

    async def _stop_app(self, name: str) -> None:
        runner = self.runners.pop(name)
        await cancel_and_wait(runner.tasks)
        await runner.pool.close()

    # -- claiming -----------------------------------------------------------------------------

    async def _dispatch(self, runner: AppRunner) -> None:
        """Claim as many tasks as there are free slots, never more; sleep until the queue
        changes, a slot frees, or a waiting task becomes eligible here (spillover)."""
        pool, view = runner.pool, runner.view
        await view.wait_synced()
        while True:
            view.changed.clear()
            pool.capacity.clear()
            rules = self.rules(runner.spec)
            free = pool.free_slots
            if free > 0 and view.entries:
                try:
                    claims = await view.claim(self.claimer, free, rules)
                except Unavailable as e:
                    log.warning("claim failed: %s", e)
                    await asyncio.sleep(0.5)
                    continue
                for c in claims:
                    pool.dispatch(c)
                if claims:
                    continue  # more may be claimable at once
            wake = next_eligible_at(view.entries.values(), rules, self.clock())
            timeout = None if wake is None else max(0.0, wake - self.clock()) + 0.001
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(timeout or 1.0, 1.0)):
                    # 1 s at most: a home region going down makes its tasks eligible at once.
                    await _first(view.changed.wait(), pool.capacity.wait())

    async def _follow_own_claims(self, partition: str) -> None:
        """A claim of ours deleted by someone else means the task was cancelled (or our lease
        lapsed): stop running it."""
        etcd = self.clusters.for_partition(partition)
        prefix = keys.claims_of(self.clusters.root, partition, self.claimer.id)
        async for item in etcd.list_watch(prefix):
            if isinstance(item, Snapshot) or item.kind != "delete":
                continue
            task_id = keys.task_id_of(item.kv.key)
            for runner in self.runners.values():
                runner.pool.cancel(task_id)

    # -- heartbeat ----------------------------------------------------------------------------

    async def _follow_regions(self) -> None:
        prefix = keys.regions(self.clusters.root)
        decode = lambda kv: RegionHeartbeat.model_validate_json(kv.value)  # noqa: E731
        async for beats in follow(self.clusters.control, prefix, decode):
            self.regions = merge(beats.values())
            self.live_regions = set(self.regions)

    def heartbeat(self) -> RegionHeartbeat:
        """The region as this agent sees it now. Each call starts a new window for the request
        rate (tasks started since the previous call)."""
        now = self.clock()
        loads = []
        for name, r in sorted(self.runners.items()):
            then, started = self._beaten.get(name, (now, r.pool.started))
            self._beaten[name] = (now, r.pool.started)
            rate = (r.pool.started - started) / (now - then) if now > then else 0.0
            before = self._beaten_from.get(name, r.pool.started_from)
            self._beaten_from[name] = dict(r.pool.started_from)
            waiting = claim_order(r.view.entries.values(), self.rules(r.spec), now)
            oldest = min((e.record.created_at for e in waiting), default=now)
            ready = r.pool.ready_replicas
            loads.append(
                AppLoad(
                    app=name,
                    replicas=len(r.pool.replicas) + r.pool.starting,
                    ready_replicas=len(ready),
                    desired_replicas=r.pool.desired,
                    slots=sum(x.capacity for x in ready),
                    busy_slots=r.pool.busy_slots,
                    queue_depth=len(waiting),
                    oldest_wait_ms=round((now - oldest) * 1000, 1),
                    requests_per_second=round(rate, 2),
                    spilled_in=spilled_in(
                        before, r.pool.started_from, self.config.name, now - then
                    ),
                )
            )
        c = self.config
        return RegionHeartbeat(
            name=c.name, lat=c.lat, lon=c.lon, agent=self.claimer.id, at=now, apps=tuple(loads)
        )

    async def _heartbeat(self) -> None:
        key = keys.region(self.clusters.root, self.config.name, self.claimer.id)
        while True:
            try:
                if self.capacity is not None:
                    await self._protect()
                session = await self.claimer.session(self.clusters.control)
                beat = self.heartbeat()
                self.metrics.load(beat.apps)
                value = beat.model_dump_json().encode()
                await self.clusters.control.put(key, value, lease=session.lease)
            except Unavailable as e:
                log.warning("heartbeat failed: %s", e)
            await asyncio.sleep(self.config.heartbeat_interval)

    async def _protect(self) -> None:
        """Busy nodes are protected from scale-in (AWS errors wait for the next beat)."""
        assert self.capacity is not None
        busy = any(r.pool.busy_slots for r in self.runners.values())
        try:
            await self.capacity.protect(busy)
        except Exception as e:
            log.warning("scale-in protection (%s): %s", busy, e)


async def _first(*aws: object) -> None:
    """Wait until the first of ``aws`` finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
