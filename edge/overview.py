"""What the dashboard shows, as one JSON document: the health API's regions placed on the map,
the spillover flows between them, the edges, etcd, and recent scaling decisions.

Pure: heartbeats, health and ``now`` come in, a frozen model goes out; the edge's view keeps the
one piece of history (:class:`ScalingLog`) as it follows the heartbeats.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from edge.client import GeoDatabase
from edge.config import RegionPoint
from federation.health import EdgeHealth, EtcdHealth, FederationHealth, RegionHealth, Status
from federation.heartbeat import RegionHeartbeat
from federation.task import rfc3339

# Decisions kept for the dashboard: a few minutes of an autoscaler that moves every cooldown.
DECISIONS_KEPT = 50


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class Decision(_Frozen):
    """A change of an app's desired replicas in a region, as its heartbeats showed it."""

    at: str
    region: str
    app: str
    from_replicas: int = Field(alias="from")
    to_replicas: int = Field(alias="to")
    reason: str | None = None  # the autoscaler's, from the heartbeat (None: an agent without it)


class Flow(_Frozen):
    """Tasks per second homed in ``source`` that ``target`` started (all apps)."""

    source: str
    target: str
    rate: float


class RegionView(RegionHealth):
    lat: float | None = None  # None: a region neither configured here nor heartbeating
    lon: float | None = None


class Overview(_Frozen):
    at: str
    status: Status
    etcd: EtcdHealth
    regions: tuple[RegionView, ...]
    flows: tuple[Flow, ...]
    edges: tuple[EdgeHealth, ...]
    decisions: tuple[Decision, ...]  # newest first
    geoip: GeoDatabase | None


class ScalingLog:
    """Desired replicas per region and app, as followed in heartbeats; each change is a
    decision. The first sighting of an app in a region is not one (nothing to compare)."""

    def __init__(self, kept: int = DECISIONS_KEPT) -> None:
        self.desired: dict[tuple[str, str], int] = {}
        self.decisions: deque[Decision] = deque(maxlen=kept)

    def record(self, beats: Mapping[str, RegionHeartbeat], now: float) -> None:
        seen = {}
        for region, beat in sorted(beats.items()):
            for load in beat.apps:
                key = (region, load.app)
                seen[key] = load.desired_replicas
                before = self.desired.get(key)
                if before is not None and before != load.desired_replicas:
                    self.decisions.appendleft(
                        Decision(at=rfc3339(now), region=region, app=load.app,
                                 from_replicas=before, to_replicas=load.desired_replicas,
                                 reason=load.scaling_reason)
                    )  # fmt: skip
        # A region that went down keeps its last value: coming back at another size is a change.
        self.desired.update(seen)


def flows(beats: Iterable[RegionHeartbeat]) -> tuple[Flow, ...]:
    """The spillover flows, summed over apps, largest first."""
    total: dict[tuple[str, str], float] = {}
    for beat in beats:
        for load in beat.apps:
            for home, rate in load.spilled_in.items():
                total[(home, beat.name)] = total.get((home, beat.name), 0.0) + rate
    return tuple(
        Flow(source=s, target=t, rate=round(r, 2))
        for (s, t), r in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))
        if r > 0
    )


def overview(
    health: FederationHealth,
    points: Iterable[RegionPoint],
    beats: Mapping[str, RegionHeartbeat],
    decisions: Iterable[Decision],
    geoip: GeoDatabase | None,
    now: float,
) -> Overview:
    where = {b.name: (b.lat, b.lon) for b in beats.values()}
    where.update({p.name: (p.lat, p.lon) for p in points})  # the edge's config wins
    regions = tuple(
        RegionView(**r.model_dump(), lat=where.get(r.name, (None, None))[0],
                   lon=where.get(r.name, (None, None))[1])
        for r in health.regions
    )  # fmt: skip
    return Overview(
        at=rfc3339(now), status=health.status, etcd=health.etcd, regions=regions,
        flows=flows(beats.values()), edges=health.edges, decisions=tuple(decisions), geoip=geoip,
    )  # fmt: skip
