"""The autoscaler's loop on a fake view of its agent and the other regions' heartbeats (no etcd,
a fake clock): what it hands the policy, and what it publishes of the decision."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from federation.aio import cancel_and_wait
from federation.appspec import ScalingSection
from federation.heartbeat import AppLoad, RegionHeartbeat
from federation.placement import ClaimRules, ReadyEntry
from regional.autoscale import Autoscaler, RegionView, ScaledApp
from regional.load import ReplicaCounts, app_load
from regional.metrics import RegionMetrics
from regional.usage import Usage
from tests.factories import task
from tests.waiting import until

US, EU, AP = "us-east-1", "eu-west-1", "ap-south-1"
WHERE = {US: (39.0, -77.5), EU: (53.3, -6.3), AP: (19.1, 72.9)}  # 76 ms and 180 ms from us
NOW = 1000.0
SCALING = ScalingSection(replica_concurrency=2, min_replicas=1, max_replicas=4, cooldown=6)


def beat(name: str, **load: int) -> RegionHeartbeat:
    apps = ()
    if load:  # a region that serves the app: warm, idle, its spare slots offered
        apps = (AppLoad(app="worker", replicas=2, ready_replicas=2, desired_replicas=2,
                        slots=4, busy_slots=0, queue_depth=0, oldest_wait_ms=0.0,
                        **load),)  # fmt: skip
    lat, lon = WHERE[name]
    return RegionHeartbeat(name=name, lat=lat, lon=lon, agent=name, at=NOW, apps=apps)


def burst() -> ScaledApp:
    """us-east-1 at 2 replicas of 2 slots, all busy, and 4 more of its tasks queued."""
    counts = ReplicaCounts(processes=2, live=2, starting=0, ready=2, desired=2, slots=4,
                           busy_slots=4)  # fmt: skip
    queued = [task(US, app="worker", now=NOW - 0.2) for _ in range(4)]
    entries = [ReadyEntry(t.id.encode(), 1, t) for t in queued]
    running = [task(US, app="worker", now=NOW - 1) for _ in range(4)]
    load = app_load("worker", counts, entries, running, ClaimRules(US), NOW, 4.0)
    return ScaledApp("worker", SCALING, (), load, ())


def scaler(beats: dict[str, RegionHeartbeat]) -> tuple[Autoscaler, list[tuple[str, int]]]:
    scaled: list[tuple[str, int]] = []
    view = RegionView(US, 4.0, lambda now: [burst()], lambda: beats)
    metrics = RegionMetrics(CollectorRegistry(), US)
    return Autoscaler(view, lambda a, n: scaled.append((a, n)), None, metrics, lambda: NOW), scaled


def decisions(s: Autoscaler, reason: str) -> float | None:
    labels = {"app": "worker", "region": US, "reason": reason}
    return s.metrics.registry.get_sample_value("spillover_autoscaler_decisions_total", labels)


async def test_a_burst_goes_to_a_warm_peer_within_the_budget_rather_than_new_replicas() -> None:
    s, scaled = scaler({US: beat(US), EU: beat(EU, spare_slots=4), AP: beat(AP, spare_slots=8)})
    await s.tick(NOW, {}, Usage())
    assert scaled == []  # no replica bought: eu-west-1's 4 warm slots take the 4 queued
    assert (s.decisions["worker"].desired, s.decisions["worker"].reason) == (
        2, "absorb via eu-west-1"
    )  # fmt: skip
    assert decisions(s, "absorb via eu-west-1") == 1.0


async def test_without_a_warm_peer_within_the_budget_it_scales_up() -> None:
    """ap-south-1's spare slots are 180 ms away (beyond 0.15 s); eu-west-1 has none."""
    s, scaled = scaler({US: beat(US), EU: beat(EU, spare_slots=0), AP: beat(AP, spare_slots=8)})
    await s.tick(NOW, {}, Usage())
    assert scaled == [("worker", 4)]
    assert s.decisions["worker"].reason.startswith("scale up")
    assert decisions(s, s.decisions["worker"].reason) == 1.0


async def test_a_region_that_stops_leading_publishes_no_decision() -> None:
    s, _ = scaler({US: beat(US)})
    ticking = asyncio.create_task(s.tick_forever())
    await until(lambda: bool(s.decisions))
    await cancel_and_wait([ticking])  # the lease lapsed: run_autoscaler cancels the loop
    assert s.decisions == {}
