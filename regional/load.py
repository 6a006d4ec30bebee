"""An app's load in this agent, from one pure function (:func:`app_load`): the heartbeat reports
it and the autoscaler decides on it, so the two never disagree on what "queued" or "busy" means.
And the rate of started tasks, one window per app, read by both without resetting it."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from federation.autoscaler import Decision, Snapshot
from federation.heartbeat import AppLoad
from federation.placement import ClaimRules, ReadyEntry, claim_order
from federation.task import TaskRecord


@dataclass(frozen=True, slots=True)
class ReplicaCounts:
    """An app's replica set, counted at one moment."""

    processes: int  # replicas up, draining ones included
    live: int  # of those, not draining
    starting: int  # being started (model loading)
    ready: int  # ready and not draining: they take work
    desired: int
    slots: int  # replica_concurrency x ready
    busy_slots: int


@dataclass(frozen=True, slots=True)
class Load:
    app: str
    replicas: ReplicaCounts
    queued: int  # tasks this region may take now
    oldest_wait: float  # seconds the oldest of ``queued`` has waited; 0 when none
    requests_per_second: float  # tasks started per second, lately
    spilled_in: Mapping[str, float]  # of those, per other home region
    # What the autoscaler's federation rules need (federation/absorb.py). A region sizes for
    # its own backlog only: a down region's is adopted by one region, from ``orphans``.
    queued_home: int  # of ``queued``, homed here
    home_wait: float  # seconds the oldest of ``queued_home`` has waited
    queued_pinned: int  # of ``queued_home``, those no other region may run
    orphans: Mapping[str, int]  # of ``queued``, those homed in a down region, by region
    busy_by_home: Mapping[str, int]  # running tasks homed in other regions, by home region
    busy_pinned: int  # running tasks homed here that no other region may run

    def heartbeat(self, decision: Decision | None = None) -> AppLoad:
        """The app's part of the heartbeat; ``decision``: the autoscaler's last one, when this
        agent leads the region's (its reason, and the spare slots peers may count on)."""
        r = self.replicas
        return AppLoad(
            app=self.app, replicas=r.processes + r.starting, ready_replicas=r.ready,
            desired_replicas=r.desired, slots=r.slots, busy_slots=r.busy_slots,
            queue_depth=self.queued, oldest_wait_ms=round(self.oldest_wait * 1000, 1),
            requests_per_second=round(self.requests_per_second, 2),
            spilled_in={h: round(x, 2) for h, x in sorted(self.spilled_in.items()) if x > 0},
            queued_home=self.queued_home, busy_by_home=dict(sorted(self.busy_by_home.items())),
            scaling_reason=decision.reason if decision else None,
            spare_slots=decision.spare if decision else 0,
        )  # fmt: skip

    def snapshot(self) -> Snapshot:
        """What the autoscaler's policy sees of this agent's share of the app (the federation's
        part, ``region``, ``price`` and ``peers``, is the autoscaler's to add)."""
        r = self.replicas
        # Runs and slots are counted apart (a run frees its slot as its outcome comes in):
        # never more foreign or pinned runs than busy slots.
        foreign = min(sum(self.busy_by_home.values()), r.busy_slots)
        return Snapshot(
            replicas=r.live + r.starting, starting=r.starting, busy_slots=r.busy_slots,
            queued_home=self.queued_home, oldest_wait=self.home_wait,
            requests_per_second=self.requests_per_second, busy_foreign=foreign,
            busy_pinned=min(self.busy_pinned, r.busy_slots - foreign),
            queued_pinned=self.queued_pinned,
        )  # fmt: skip


def app_load(
    app: str,
    replicas: ReplicaCounts,
    entries: Iterable[ReadyEntry],
    running: Iterable[TaskRecord],
    rules: ClaimRules,
    now: float,
    requests_per_second: float,
    spilled_in: Mapping[str, float] | None = None,
) -> Load:
    """The app's load now: its replicas, the tasks they run (``running``: those holding a
    slot), and of the queue entries it follows those this region may take now (``rules``);
    ``spilled_in``: tasks started per second by other home region."""
    waiting = [e.record for e in claim_order(entries, rules, now)]
    home = [t for t in waiting if t.home_region == rules.region]
    running = list(running)
    return Load(
        app=app, replicas=replicas, queued=len(waiting),
        oldest_wait=max((now - t.created_at for t in waiting), default=0.0),
        requests_per_second=requests_per_second, spilled_in=dict(spilled_in or {}),
        queued_home=len(home), home_wait=max((now - t.created_at for t in home), default=0.0),
        queued_pinned=sum(rules.only_here(t) for t in home),
        orphans=Counter(t.home_region for t in waiting if t.home_region in rules.down_regions),
        busy_by_home=Counter(t.home_region for t in running if t.home_region != rules.region),
        busy_pinned=sum(t.home_region == rules.region and rules.only_here(t) for t in running),
    )  # fmt: skip


class Rate:
    """Events per second over the last ``window`` seconds, counted in ``buckets`` slices of it
    (knative's bucketing): memory stays bounded whatever the rate, and reading it resets
    nothing, so the heartbeat and the autoscaler share one. Worked example: 30 tasks started in
    the last second, window 1 s -> 30.0/s."""

    def __init__(self, window: float = 1.0, buckets: int = 10) -> None:
        self.window = window
        self.width = window / buckets
        self._counts: dict[int, int] = {}  # bucket index -> events

    def record(self, now: float, n: int = 1) -> None:
        bucket = math.floor(now / self.width)
        self._counts[bucket] = self._counts.get(bucket, 0) + n
        first = self._first(now)
        for old in [b for b in self._counts if b < first]:
            del self._counts[old]

    def per_second(self, now: float) -> float:
        first, last = self._first(now), math.floor(now / self.width)
        return sum(n for b, n in self._counts.items() if first <= b <= last) / self.window

    def _first(self, now: float) -> int:
        return math.floor((now - self.window) / self.width) + 1
