"""The federation health API's answer, computed from what regions and edges publish in etcd —
no fan-out calls to regions, so any edge answers it with the same data.

Pure: every input is a value and ``now`` is passed in, so the rules are tested with a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from federation.heartbeat import AppLoad, EdgeHeartbeat, RegionHeartbeat
from federation.task import rfc3339

Status = Literal["ok", "degraded", "down"]

# A heartbeat this old, while its lease still lives, means the agent is stuck: degraded. (A dead
# agent's key vanishes with its lease, and the region is down.)
STALE_AFTER = 10.0


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class EtcdHealth(_Frozen):
    healthy: bool
    members: int = 0
    leader: str | None = None


class RegionHealth(_Frozen):
    name: str
    status: Status
    last_heartbeat: str | None
    apps: tuple[AppLoad, ...] = ()


class EdgeHealth(_Frozen):
    id: str
    region: str
    last_heartbeat: str | None


class FederationHealth(_Frozen):
    status: Status
    etcd: EtcdHealth
    regions: tuple[RegionHealth, ...]
    edges: tuple[EdgeHealth, ...]
    reasons: tuple[str, ...] = ()  # why it is not ok, beyond what regions say (etcd space)


def saturated(load: AppLoad) -> bool:
    """Every ready slot busy (or none ready) while tasks it may take wait."""
    return load.queue_depth > 0 and load.busy_slots >= load.slots


def region_health(name: str, beat: RegionHeartbeat | None, now: float) -> RegionHealth:
    if beat is None:
        return RegionHealth(name=name, status="down", last_heartbeat=None)
    stale = now - beat.at > STALE_AFTER
    status: Status = "degraded" if stale or any(saturated(a) for a in beat.apps) else "ok"
    return RegionHealth(name=name, status=status, last_heartbeat=rfc3339(beat.at), apps=beat.apps)


def federation_health(
    regions: Iterable[str],
    heartbeats: Mapping[str, RegionHeartbeat],
    edges: Iterable[EdgeHeartbeat],
    etcd: EtcdHealth,
    now: float,
    reasons: Iterable[str] = (),
) -> FederationHealth:
    """``regions`` are the ones the federation is configured with; a region that heartbeats but
    is not configured is listed too (an operator added it and has not told this edge yet)."""
    names = sorted({*regions, *heartbeats})
    health = tuple(region_health(n, heartbeats.get(n), now) for n in names)
    states = {r.status for r in health}
    reasons = tuple(reasons)
    status: Status
    if not etcd.healthy or states <= {"down"}:
        status = "down"
    elif states == {"ok"} and not reasons:
        status = "ok"
    else:
        status = "degraded"
    listed = tuple(
        EdgeHealth(id=e.id, region=e.region, last_heartbeat=rfc3339(e.at))
        for e in sorted(edges, key=lambda e: e.id)
    )
    return FederationHealth(status=status, etcd=etcd, regions=health, edges=listed,
                            reasons=reasons)  # fmt: skip


def visible(health: FederationHealth, may_use: Callable[[str], bool]) -> FederationHealth:
    """The health as a key may see it: only the apps it is granted (tenants do not see each
    other's load or app names); regions, edges and etcd are everyone's."""
    regions = tuple(
        r.model_copy(update={"apps": tuple(a for a in r.apps if may_use(a.app))})
        for r in health.regions
    )
    return health.model_copy(update={"regions": regions})
