"""The federation in the autoscaler: what other regions' heartbeats say about their warm slots,
and the rules :func:`federation.autoscaler.decide` applies with it. Pure.

Every region decides alone, from the same heartbeats, so the rules are built to agree without
talking:

- **Absorb before buying.** Unpinned load goes to warm slots elsewhere (within the app's
  ``latency_budget`` of round trip) before a region adds replicas; a peer's spare slots are split
  alike among the regions it already runs tasks for and the asker, so two regions do not both
  count on the same ones for long.
- **Only the home region buys for its backlog.** A region lends spare slots to others' tasks and
  keeps the replicas they run on, but never grows for them; a down region's backlog (or what one
  at ``max_replicas`` cannot serve) has one adopter, the first region up in (price, name) order.
- **Load flows one way.** A region scales in below its own demand only onto a *cheaper* peer's
  spare slots, and holds replicas for its tasks that a dearer peer carries: with a strict order
  between any two regions, two cannot each hand their load to the other and both end at zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from federation.appspec import ScalingSection
from federation.geo import rtt_estimate
from federation.heartbeat import AppLoad, RegionHeartbeat

if TYPE_CHECKING:
    from federation.autoscaler import Snapshot


@dataclass(frozen=True)
class Peer:
    """Another region that may run the app, as its last heartbeat showed it."""

    name: str
    rtt: float  # seconds, round trip from the deciding region
    price: float  # its GPU price per hour
    spare: int = 0  # warm slots the deciding region may count on (its share of the free ones)
    carrying: int = 0  # its busy slots that run tasks homed in the deciding region
    # Its tasks it cannot serve: a down region's whole queue; for one stuck at the app's
    # max_replicas, its queue beyond its free slots.
    overflow: int = 0
    up: bool = True  # False: no heartbeat, or not running the app
    at_max: bool = False  # at the app's max_replicas: it cannot adopt an overflow


def helpers(s: Snapshot, c: ScalingSection) -> tuple[Peer, ...]:
    """Peers whose warm slots may take this region's unpinned tasks."""
    return tuple(p for p in s.peers if p.up and p.rtt <= c.latency_budget)


def shed_to(s: Snapshot, c: ScalingSection) -> tuple[Peer, ...]:
    """Helpers cheaper than this region (name breaks ties) with spare slots: the only ones it
    may scale in onto."""
    return tuple(p for p in helpers(s, c) if p.spare and (p.price, p.name) < (s.price, s.region))


def carried_back(s: Snapshot, c: ScalingSection) -> int:
    """Busy slots elsewhere running this region's tasks that it should take back as its demand
    falls: all but those on the cheaper peers it may scale in onto."""
    cheaper = {p.name for p in helpers(s, c) if (p.price, p.name) < (s.price, s.region)}
    return sum(p.carrying for p in s.peers if p.name not in cheaper)


def adopted(s: Snapshot, at_max: bool) -> int:
    """The overflows this region sizes for beside its own backlog: each has one adopter, the
    first region up and below its max in (price, name) order, so exactly one grows for it."""
    total = 0
    for orphan in s.peers:
        if orphan.overflow:
            able = [(p.price, p.name) for p in s.peers if p.up and not p.at_max and p != orphan]
            if not at_max:
                able.append((s.price, s.region))
            if able and min(able) == (s.price, s.region):
                total += orphan.overflow
    return total


def peers(
    beats: Mapping[str, RegionHeartbeat],
    region: str,
    app: str,
    regions: tuple[str, ...],
    scaling: ScalingSection,
    rtt: Mapping[str, float] | None = None,
    orphans: Mapping[str, int] | None = None,
) -> tuple[Peer, ...]:
    """The federation as ``region`` sees it for ``app``, from the merged heartbeats: every other
    region of the app's ``regions`` (empty: all that heartbeat). ``rtt``: seconds of round trip
    to each, when measured; else estimated from the heartbeats' coordinates. A region of the app
    with no heartbeat is down; ``orphans`` are the tasks queued in its partition that this region
    may take."""
    names = set(regions) or set(beats)
    names |= set(orphans or {})
    loads = {name: _load(beats.get(name), app) for name in names}
    rtt = rtt if rtt is not None else _estimated(beats, region)
    out = []
    for name in sorted(names - {region}):
        load, beat = loads[name], beats.get(name)
        if beat is None or load is None:  # down, or without the app: it serves none of it
            out.append(Peer(name, rtt.get(name, float("inf")), beat.gpu_price if beat else 0.0,
                            up=False, overflow=(orphans or {}).get(name, 0)))  # fmt: skip
            continue
        # Beyond its max, with every replica serving and tasks waiting past the threshold: a
        # backlog that is only waiting for replicas on their way is no one else's to buy for.
        at_max = load.desired_replicas >= scaling.max_replicas
        stuck = at_max and load.ready_replicas >= load.replicas
        stuck = stuck and load.oldest_wait_ms >= scaling.queue_time_threshold * 1000
        room = load.slots - load.busy_slots
        # Its spare slots, shared alike by the regions it already runs tasks for and this one.
        sharing = {home for home, busy in load.busy_by_home.items() if busy} | {region}
        out.append(Peer(
            name, rtt.get(name, float("inf")), beat.gpu_price,
            spare=load.spare_slots // len(sharing), carrying=load.busy_by_home.get(region, 0),
            overflow=max(0, load.queued_home - room) if stuck else 0, at_max=at_max,
        ))  # fmt: skip
    return tuple(out)


def _estimated(beats: Mapping[str, RegionHeartbeat], region: str) -> dict[str, float]:
    here = beats.get(region)
    if here is None:
        return {}
    return {n: rtt_estimate((here.lat, here.lon), (b.lat, b.lon)) for n, b in beats.items()}


def _load(beat: RegionHeartbeat | None, app: str) -> AppLoad | None:
    return next((a for a in beat.apps if a.app == app), None) if beat else None
