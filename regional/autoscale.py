"""The region's autoscaling loop: the elected leader ticks once a second, builds each app's
snapshot from the agent's live view (its pools and its mirror of the queue in etcd), runs the
shared policy (:func:`federation.autoscaler.decide`) and sets pool sizes. Scale-in goes through
the pool's drain, so no running task is killed. With ``[capacity] provider = "aws-asg"`` it
sizes the region's node group instead (``regional/capacity.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING

from federation import keys
from federation.aio import cancel_and_wait
from federation.autoscaler import Snapshot, State, decide
from federation.election import campaign, resign
from federation.errors import Unavailable
from federation.placement import claim_order
from regional.capacity import Group
from regional.usage import Usage

if TYPE_CHECKING:
    from regional.agent import Agent, AppRunner

log = logging.getLogger(__name__)
TICK = 1.0


def snapshot(
    agent: Agent, runner: AppRunner, started: int, now: float, fleet: Fleet | None = None
) -> Snapshot:
    """The app as the policy sees it: this agent's pool, or with ``fleet`` the region's nodes."""
    rules = agent.rules(runner.spec)
    waiting = claim_order(runner.view.entries.values(), rules, now)
    home = {agent.config.name, *rules.down_regions}
    pool = runner.pool
    replicas = sum(not r.draining for r in pool.replicas) + pool.starting
    fleet = fleet or Fleet(replicas, pool.starting, pool.busy_slots, started / TICK)
    return Snapshot(
        replicas=fleet.replicas,
        starting=fleet.starting,
        busy_slots=fleet.busy_slots,
        queued=len(waiting),
        oldest_wait=max((now - e.record.created_at for e in waiting), default=0.0),
        queued_home=sum(e.record.partition in home for e in waiting),
        requests_per_second=fleet.requests_per_second,
    )


@dataclasses.dataclass(frozen=True)
class Fleet:
    replicas: int  # running and starting
    starting: int
    busy_slots: int
    requests_per_second: float


def region_fleet(agent: Agent, app: str, group: Group) -> Fleet:
    """The region's replicas when the autoscaler sizes nodes: the group's desired nodes (the
    ones still booting count as starting), busy slots and request rate from every node's
    heartbeat."""
    beat = agent.regions.get(agent.config.name)
    load = next((a for a in beat.apps if a.app == app), None) if beat else None
    assert agent.capacity is not None
    replicas = group.desired * agent.capacity.per_node
    if load is None:
        return Fleet(replicas, replicas, 0, 0.0)
    starting = max(0, replicas - load.ready_replicas)
    return Fleet(replicas, starting, load.busy_slots, load.requests_per_second)


async def run_autoscaler(agent: Agent) -> None:
    """Campaign for the region's leadership; while leader, tick. Lost the lease: stop deciding
    at once and campaign again."""
    control, me = agent.clusters.control, agent.claimer.id.encode()
    key = keys.leader(agent.clusters.root, agent.config.name)
    try:
        while True:
            try:
                session = await agent.claimer.session(control)
                await campaign(control, key, me, session)
            except Unavailable as e:
                log.warning("autoscaler election: %s", e)
                await asyncio.sleep(1)
                continue
            log.info("leading %s's autoscaler", agent.config.name)
            lost = asyncio.create_task(session.lost.wait())
            ticking = asyncio.create_task(_tick_forever(agent))
            try:
                await asyncio.wait([ticking, lost], return_when=asyncio.FIRST_COMPLETED)
                if ticking.done():
                    ticking.result()  # a bug in the loop: fail the agent loudly
                log.warning("lost the lead of %s's autoscaler (lease lapsed)", agent.config.name)
            finally:
                await cancel_and_wait([ticking, lost])
    finally:
        with contextlib.suppress(Unavailable):
            await resign(control, key, me)


async def _tick_forever(agent: Agent) -> None:
    states: dict[str, State] = {}
    started: dict[str, int] = {}
    usage = Usage()
    while True:
        now = agent.clock()
        group = await _group(agent)
        if agent.capacity is not None and group is None:
            await asyncio.sleep(TICK)  # AWS could not be asked: decide nothing on stale numbers
            continue
        wanted = []
        for name, runner in list(agent.runners.items()):
            if name in agent.config.replicas:
                continue  # pinned by region.toml: not scaled
            fleet = region_fleet(agent, name, group) if group else None
            s = snapshot(agent, runner, runner.pool.started - started.get(name, 0), now, fleet)
            started[name] = runner.pool.started
            pids = [r.process.pid for r in runner.pool.ready_replicas if r.process is not None]
            if runner.spec.scaling.scaling_metric in ("cpu_utilization", "memory_utilization"):
                cpu, memory = usage.sample(pids)
                s = dataclasses.replace(s, cpu=cpu, memory=memory)
            decision, states[name] = decide(s, runner.spec.scaling, states.get(name, State()), now)
            agent.metrics.desired.labels(name, agent.config.name).set(decision.desired)
            wanted.append(decision.desired)
            if group is None and decision.desired != runner.pool.desired:
                log.info("%s: %d -> %d replicas (%s)", name, runner.pool.desired,
                         decision.desired, decision.reason)  # fmt: skip
                runner.pool.scale_to(decision.desired)
        if group is not None and wanted and agent.capacity is not None:
            try:  # nodes serve every app: as many as the most demanding one needs
                await agent.capacity.scale_to(max(wanted), group)
            except Exception as e:
                log.warning("setting %s's capacity: %s", agent.capacity.group, e)
        for gone in set(states) - set(agent.runners):
            del states[gone]
        await asyncio.sleep(TICK)


async def _group(agent: Agent) -> Group | None:
    """The node group, when the autoscaler sizes one and AWS answers."""
    if agent.capacity is None:
        return None
    try:
        return await agent.capacity.describe()
    except Exception as e:
        log.warning("describing %s: %s", agent.capacity.group, e)
        return None
