"""What regions' agents and edges publish about themselves, under their leases: the health API
and the autoscaler read it. A region with no agent's key left (leases expired) is down."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field


class AppLoad(BaseModel):
    model_config = ConfigDict(frozen=True)

    app: str
    replicas: int  # running processes, starting ones included
    ready_replicas: int
    desired_replicas: int
    slots: int  # replica_concurrency x ready replicas
    busy_slots: int
    queue_depth: int  # queued tasks this region may take now
    oldest_wait_ms: float
    requests_per_second: float = 0.0  # tasks started since the agent's previous beat, per s
    # Of those, the ones homed in another region, per s by home region: the spillover flows.
    spilled_in: dict[str, float] = Field(default_factory=dict)
    # For the other regions' autoscalers (federation/absorb.py): of queue_depth, the tasks homed
    # here; of busy_slots, those running tasks homed in each other region.
    queued_home: int = 0
    busy_by_home: dict[str, int] = Field(default_factory=dict)
    # Why desired_replicas is what it is: the autoscaler's last reason (dashboard, health API);
    # and the slots other regions may count on here (its demand averaged, not one instant's).
    scaling_reason: str | None = None
    spare_slots: int = 0


class RegionHeartbeat(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    lat: float
    lon: float
    agent: str
    at: float  # epoch seconds
    apps: tuple[AppLoad, ...] = ()
    gpu_price: float = 0.0  # per GPU-hour: which region the federation's load flows to


class EdgeHeartbeat(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    region: str
    url: str
    at: float  # epoch seconds


def merge(beats: Iterable[RegionHeartbeat]) -> dict[str, RegionHeartbeat]:
    """One heartbeat per region from its agents' (one per node): capacity adds up; the queue is
    the region's, seen alike by every agent, so depth and oldest wait are the largest seen; the
    region's time is its freshest agent's."""
    by_region: dict[str, list[RegionHeartbeat]] = {}
    for b in beats:
        by_region.setdefault(b.name, []).append(b)
    return {name: _merged(sorted(bs, key=lambda b: b.agent)) for name, bs in by_region.items()}


def _merged(beats: list[RegionHeartbeat]) -> RegionHeartbeat:
    if len(beats) == 1:
        return beats[0]
    loads: dict[str, list[AppLoad]] = {}
    for b in beats:
        for a in b.apps:
            loads.setdefault(a.app, []).append(a)
    apps = tuple(
        AppLoad(
            app=app,
            replicas=sum(a.replicas for a in ls),
            ready_replicas=sum(a.ready_replicas for a in ls),
            desired_replicas=sum(a.desired_replicas for a in ls),
            slots=sum(a.slots for a in ls),
            busy_slots=sum(a.busy_slots for a in ls),
            queue_depth=max(a.queue_depth for a in ls),
            oldest_wait_ms=max(a.oldest_wait_ms for a in ls),
            requests_per_second=sum(a.requests_per_second for a in ls),
            spilled_in=_summed(a.spilled_in for a in ls),
            queued_home=max(a.queued_home for a in ls),
            busy_by_home={k: round(v) for k, v in _summed(a.busy_by_home for a in ls).items()},
            # Only the region's autoscaler leader decides: its agent's reason is the region's.
            scaling_reason=next((a.scaling_reason for a in ls if a.scaling_reason), None),
            spare_slots=sum(a.spare_slots for a in ls),
        )
        for app, ls in sorted(loads.items())
    )
    first = beats[0]
    return first.model_copy(
        update={"agent": ",".join(b.agent for b in beats), "at": max(b.at for b in beats),
                "apps": apps}
    )  # fmt: skip


def _summed(rates: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for r in rates:
        for home, rate in r.items():
            total[home] = round(total.get(home, 0.0) + rate, 2)
    return dict(sorted(total.items()))
