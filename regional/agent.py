"""A region's agent: joins etcd with a session, runs each deployed app (``app.py``: a replica
set, a view of its queue, the claims its free slots can take), publishes the region's heartbeat,
and runs the reaper, webhooks, the blob sweeper and the autoscaler. One composition of the
federation core; the policy lives in ``federation``."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from federation import keys
from federation.apps import AppRegistry
from federation.appspec import AppSpec
from federation.blobs import BlobStore
from federation.blobs.sweep import run_sweeper
from federation.heartbeat import RegionHeartbeat
from federation.placement import ClaimRules
from federation.queue import Claimer, Queue
from federation.ready import ReadyView
from federation.topology import Clusters
from regional import heartbeat
from regional.app import AppRunner, Shared, claim_rules, partitions_of, pool_size, serves
from regional.autoscale import Autoscaler, RegionView, ScaledApp, run_autoscaler
from regional.blobs import serve_blobs
from regional.capacity import AsgCapacity, open_capacity
from regional.claims import Claims
from regional.config import RegionConfig
from regional.metrics import RegionMetrics
from regional.outcomes import Outcomes
from regional.replicas import Provider
from regional.upkeep import keep_up
from regional.webhooks import WebhookSender

log = logging.getLogger(__name__)


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
        self.regions: dict[str, RegionHeartbeat] = {}  # every live region's agents, merged
        self.blobs: BlobStore | None = None  # open while run() runs
        self.capacity: AsgCapacity | None = None  # the region's node group, if it scales nodes
        self.scaler: Autoscaler | None = None  # while autoscale is on
        running = lambda t: any(t in r.running for r in self.runners.values())  # noqa: E731
        self.claims = Claims(self.queue, self.claimer, running, self._cancel, clock)
        self.claims.follow(config.partitions)

    def rules(self, spec: AppSpec) -> ClaimRules:
        known = {p for r in self.runners.values() for p in r.view.partitions}
        return claim_rules(self.config.name, spec, known - self.regions.keys())

    async def run(self) -> None:
        async with (
            serve_blobs(self.config, self.clusters) as self.blobs,
            open_capacity(self.config.capacity) as self.capacity,
        ):
            await self._run()

    async def _run(self) -> None:
        c, blobs = self.config, self.blobs
        assert blobs is not None
        outcomes = Outcomes(self.queue, blobs, self.metrics, self.claimer)
        shared = Shared(c.name, self.queue, self.claimer, self.provider, blobs,
                        c.blobs.inline_limit, self.metrics, outcomes, self.rules,
                        self.clock)  # fmt: skip
        hooks = WebhookSender(self.queue, c.name, self.claimer, attempts=c.webhook_attempts,
                              backoff=c.webhook_backoff,
                              private_targets=c.webhook_private_targets)  # fmt: skip
        sweep = run_sweeper(blobs, self.clusters, lambda: self.claims.partitions,
                            c.blobs.sweep_interval, c.blobs.sweep_grace)  # fmt: skip
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._follow_apps(shared))
                tg.create_task(self._follow_regions())
                tg.create_task(self._heartbeat())
                keep_up(tg, self.queue, self.claimer, c.partitions, lambda: self.specs)
                tg.create_task(hooks.run())
                tg.create_task(sweep)
                if c.autoscale:
                    tg.create_task(self._autoscale())
                tg.create_task(self.claims.run())
        finally:
            for name in list(self.runners):
                await self.runners.pop(name).stop()
            await self.claimer.close()

    # -- apps ---------------------------------------------------------------------------------

    async def _follow_apps(self, shared: Shared) -> None:
        async for specs in self.apps.follow():
            self.specs = specs
            for name in list(self.runners):
                if name not in specs or not serves(self.config, specs[name]):
                    await self.runners.pop(name).stop()
            for name, spec in specs.items():
                if not serves(self.config, spec):
                    continue
                runner = self.runners.get(name)
                if runner is None:
                    self._start_app(spec, shared)
                elif runner.spec != spec:
                    runner.update(spec, pool_size(spec, self.config, runner.pool.desired))

    def _start_app(self, spec: AppSpec, shared: Shared) -> None:
        # The view holds only tasks this region may ever take: a backlog pinned elsewhere in a
        # partition it follows does not crowd its head.
        allows = ClaimRules(self.config.name, app_regions=spec.placement.regions).allows
        partitions = partitions_of(self.config, spec)
        self.claims.follow(partitions)  # before the app's first claim there
        view = ReadyView(self.queue, spec.name, partitions, allows=allows)
        runner = AppRunner(spec, view, pool_size(spec, self.config), shared)
        runner.start()
        self.runners[spec.name] = runner
        log.info("serving app %s (replicas: %d)", spec.name, runner.pool.desired)

    def _cancel(self, task_id: str) -> None:
        """A claim of ours went under the task: stop running it."""
        for runner in self.runners.values():
            runner.cancel(task_id)

    # -- heartbeat and autoscaler --------------------------------------------------------------

    async def _follow_regions(self) -> None:
        async for merged in heartbeat.regions(self.clusters.control, self.clusters.root):
            self.regions = merged

    def heartbeat(self) -> RegionHeartbeat:
        """The region as this agent sees it now."""
        now, c = self.clock(), self.config
        decided = self.scaler.decisions if self.scaler is not None else {}  # if it leads
        apps = sorted(self.runners.items())
        loads = tuple(r.load(now).heartbeat(decided.get(name)) for name, r in apps)
        return RegionHeartbeat(name=c.name, lat=c.lat, lon=c.lon, agent=self.claimer.id, at=now,
                               apps=loads, gpu_price=c.gpu_price)  # fmt: skip

    async def _heartbeat(self) -> None:
        key = keys.region(self.clusters.root, self.config.name, self.claimer.id)
        protect = None
        if (capacity := self.capacity) is not None:
            busy = lambda: any(r.pool.busy_slots for r in self.runners.values())  # noqa: E731
            protect = functools.partial(heartbeat.protect, capacity, busy)
        await heartbeat.publish(self.clusters.control, key, self.claimer, self.heartbeat,
                                self.metrics, self.config.heartbeat_interval, protect)  # fmt: skip

    async def _autoscale(self) -> None:
        c = self.config
        view = RegionView(c.name, c.gpu_price, self._scaled_apps, lambda: self.regions)
        self.scaler = Autoscaler(view, self._scale, self.capacity, self.metrics, self.clock)
        key = keys.leader(self.clusters.root, c.name)
        await run_autoscaler(self.scaler, self.clusters.control, self.claimer, key)

    def _scaled_apps(self, now: float) -> list[ScaledApp]:
        """The apps the autoscaler sizes (region.toml's pinned ones are not), as it sees them."""
        return [
            ScaledApp(name, r.spec.scaling, r.spec.placement.regions, r.load(now), r.pool.pids())
            for name, r in list(self.runners.items())
            if name not in self.config.replicas
        ]

    def _scale(self, app: str, replicas: int) -> None:
        runner = self.runners.get(app)
        if runner is not None:
            runner.pool.scale_to(replicas)
