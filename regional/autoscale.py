"""The region's autoscaling loop: the elected leader ticks once a second, reads each app's load
through a narrow, read-only view of its agent (the numbers the heartbeat reports too,
``load.py``) and the other regions' heartbeats (their warm spare slots: ``federation/absorb.py``),
runs the shared policy (:func:`federation.autoscaler.decide`) and sets pool sizes; each
decision's reason goes into the heartbeat and ``spillover_autoscaler_decisions_total``.
Scale-in goes through the replica set's drain, so no running task is killed. With
``[capacity] provider = "aws-asg"`` it sizes the region's node group instead
(``regional/capacity.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping

from federation.absorb import peers
from federation.aio import cancel_and_wait
from federation.appspec import ScalingSection
from federation.autoscaler import Decision, Snapshot, State, decide
from federation.election import campaign, resign
from federation.errors import Unavailable
from federation.etcd import Etcd
from federation.heartbeat import RegionHeartbeat
from federation.queue import Claimer
from federation.retry import retried
from federation.session import Session
from regional.capacity import AsgCapacity, Group
from regional.load import Load
from regional.metrics import RegionMetrics
from regional.usage import Usage

log = logging.getLogger(__name__)
TICK = 1.0


@dataclasses.dataclass(frozen=True)
class ScaledApp:
    """One app as the autoscaler reads it."""

    name: str
    scaling: ScalingSection
    regions: tuple[str, ...]  # the app's [placement] regions; empty: every region
    load: Load
    pids: tuple[int, ...]  # the ready replicas' processes: cpu and memory metrics


@dataclasses.dataclass(frozen=True)
class RegionView:
    """What the autoscaler may read of its agent: the region, its GPU price, the apps it sizes
    (pinned ones are not) and every live region's heartbeat (its own included), each merged
    over the region's agents."""

    name: str
    price: float
    apps: Callable[[float], list[ScaledApp]]
    regions: Callable[[], Mapping[str, RegionHeartbeat]]


@dataclasses.dataclass(frozen=True)
class Fleet:
    replicas: int  # running and starting
    starting: int
    busy_slots: int
    busy_foreign: int  # of those, tasks homed in other regions
    requests_per_second: float


def region_fleet(beat: RegionHeartbeat | None, app: str, per_node: int, group: Group) -> Fleet:
    """The region's replicas when the autoscaler sizes nodes: the group's desired nodes (the
    ones still booting count as starting), busy slots and request rate from every node's
    heartbeat."""
    load = next((a for a in beat.apps if a.app == app), None) if beat else None
    replicas = group.desired * per_node
    if load is None:
        return Fleet(replicas, replicas, 0, 0, 0.0)
    starting = max(0, replicas - load.ready_replicas)
    foreign = min(sum(load.busy_by_home.values()), load.busy_slots)
    return Fleet(replicas, starting, load.busy_slots, foreign, load.requests_per_second)


def snapshot(
    app: ScaledApp, view: RegionView, beats: Mapping[str, RegionHeartbeat], fleet: Fleet | None
) -> Snapshot:
    """The app as the policy sees it: this agent's replicas (with ``fleet``, the region's), and
    the federation as the heartbeats show it: every other region that may run the app, its warm
    spare slots and round trip, and the backlog of those that are down (``orphans``)."""
    others = peers(beats, view.name, app.name, app.regions, app.scaling,
                   orphans=app.load.orphans)  # fmt: skip
    s = dataclasses.replace(app.load.snapshot(), region=view.name, price=view.price, peers=others)
    if fleet is None:
        return s
    pinned = min(s.busy_pinned, fleet.busy_slots - fleet.busy_foreign)  # the agent's own
    return dataclasses.replace(s, replicas=fleet.replicas, starting=fleet.starting,
                               busy_slots=fleet.busy_slots, busy_foreign=fleet.busy_foreign,
                               busy_pinned=pinned,
                               requests_per_second=fleet.requests_per_second)  # fmt: skip


class Autoscaler:
    def __init__(
        self,
        view: RegionView,
        scale: Callable[[str, int], None],
        capacity: AsgCapacity | None,
        metrics: RegionMetrics,
        clock: Callable[[], float],
    ) -> None:
        self.view = view
        self.scale = scale  # sets an app's pool size: the one thing it does to the agent
        self.capacity = capacity
        self.metrics = metrics
        self.clock = clock
        # Each app's last decision while this agent leads: the heartbeat publishes its reason
        # and its spare slots (only the leader's, or peers would count a region's slots twice).
        self.decisions: dict[str, Decision] = {}

    async def tick_forever(self) -> None:
        states: dict[str, State] = {}  # a new leader starts afresh
        usage = Usage()
        try:
            while True:
                await self.tick(self.clock(), states, usage)
                await asyncio.sleep(TICK)
        finally:
            self.decisions.clear()  # no longer deciding: nothing of ours to publish

    async def tick(self, now: float, states: dict[str, State], usage: Usage) -> None:
        group = await self._group()
        if self.capacity is not None and group is None:
            return  # AWS could not be asked: decide nothing on stale numbers
        apps, beats, region = self.view.apps(now), self.view.regions(), self.view.name
        wanted = []
        for app in apps:
            s = snapshot(app, self.view, beats, self._fleet(beats, app.name, group))
            if app.scaling.scaling_metric in ("cpu_utilization", "memory_utilization"):
                cpu, memory = usage.sample(list(app.pids))
                s = dataclasses.replace(s, cpu=cpu, memory=memory)
            decision, states[app.name] = decide(s, app.scaling, states.get(app.name, State()), now)
            self.decisions[app.name] = decision
            self.metrics.desired.labels(app.name, region).set(decision.desired)
            self.metrics.decisions.labels(app.name, region, decision.reason).inc()
            wanted.append(decision.desired)
            current = app.load.replicas.desired
            if group is None and decision.desired != current:
                log.info("%s: %d -> %d replicas (%s)", app.name, current, decision.desired,
                         decision.reason)  # fmt: skip
                self.scale(app.name, decision.desired)
        if group is not None and wanted and self.capacity is not None:
            try:  # nodes serve every app: as many as the most demanding one needs
                await self.capacity.scale_to(max(wanted), group)
            except Exception as e:
                log.warning("setting %s's capacity: %s", self.capacity.group, e)
        for gone in set(states) - {a.name for a in apps}:
            del states[gone]
            self.decisions.pop(gone, None)

    def _fleet(
        self, beats: Mapping[str, RegionHeartbeat], app: str, group: Group | None
    ) -> Fleet | None:
        if group is None or self.capacity is None:
            return None
        return region_fleet(beats.get(self.view.name), app, self.capacity.per_node, group)

    async def _group(self) -> Group | None:
        """The node group, when the autoscaler sizes one and AWS answers."""
        if self.capacity is None:
            return None
        try:
            return await self.capacity.describe()
        except Exception as e:
            log.warning("describing %s: %s", self.capacity.group, e)
            return None


async def run_autoscaler(scaler: Autoscaler, control: Etcd, claimer: Claimer, key: bytes) -> None:
    """Campaign for the region's leadership (``key``); while leader, tick. Lost the lease: stop
    deciding at once and campaign again."""
    me, region = claimer.id.encode(), scaler.view.name
    try:
        while True:
            session = await retried(_campaign, control, key, me, claimer)
            log.info("leading %s's autoscaler", region)
            lost = asyncio.create_task(session.lost.wait())
            ticking = asyncio.create_task(scaler.tick_forever())
            try:
                await asyncio.wait([ticking, lost], return_when=asyncio.FIRST_COMPLETED)
                if ticking.done():
                    ticking.result()  # a bug in the loop: fail the agent loudly
                log.warning("lost the lead of %s's autoscaler (lease lapsed)", region)
            finally:
                await cancel_and_wait([ticking, lost])
    finally:
        with contextlib.suppress(Unavailable):
            await resign(control, key, me)


async def _campaign(control: Etcd, key: bytes, me: bytes, claimer: Claimer) -> Session:
    session = await claimer.session(control)
    await campaign(control, key, me, session)
    return session
