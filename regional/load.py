"""An app's load in this agent, from one pure function (:func:`app_load`): the heartbeat reports
it and the autoscaler decides on it, so the two never disagree on what "queued" or "busy" means.
And the rate of started tasks, one window per app, read by both without resetting it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from federation.autoscaler import Snapshot
from federation.heartbeat import AppLoad
from federation.placement import ClaimRules, ReadyEntry, claim_order


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
    queued_home: int  # of those, homed here (or whose home region is down)
    oldest_wait: float  # seconds the oldest of ``queued`` has waited; 0 when none
    requests_per_second: float  # tasks started per second, lately
    spilled_in: Mapping[str, float] = field(default_factory=dict)  # of those, per other home

    def heartbeat(self) -> AppLoad:
        r = self.replicas
        return AppLoad(
            app=self.app, replicas=r.processes + r.starting, ready_replicas=r.ready,
            desired_replicas=r.desired, slots=r.slots, busy_slots=r.busy_slots,
            queue_depth=self.queued, oldest_wait_ms=round(self.oldest_wait * 1000, 1),
            requests_per_second=round(self.requests_per_second, 2),
            spilled_in={h: round(x, 2) for h, x in sorted(self.spilled_in.items()) if x > 0},
        )  # fmt: skip

    def snapshot(self) -> Snapshot:
        """What the autoscaler's policy sees of this agent's share of the app."""
        r = self.replicas
        return Snapshot(
            replicas=r.live + r.starting, starting=r.starting, busy_slots=r.busy_slots,
            queued=self.queued, oldest_wait=self.oldest_wait, queued_home=self.queued_home,
            requests_per_second=self.requests_per_second,
        )  # fmt: skip


def app_load(
    app: str,
    replicas: ReplicaCounts,
    entries: Iterable[ReadyEntry],
    rules: ClaimRules,
    now: float,
    requests_per_second: float,
    spilled_in: Mapping[str, float] | None = None,
) -> Load:
    """The app's load now: its replicas, and of the queue entries it follows those this region
    may take now (``rules``); ``spilled_in``: tasks started per second by other home region."""
    waiting = claim_order(entries, rules, now)
    home = {rules.region, *rules.down_regions}
    return Load(
        app=app, replicas=replicas, queued=len(waiting),
        queued_home=sum(e.record.partition in home for e in waiting),
        oldest_wait=max((now - e.record.created_at for e in waiting), default=0.0),
        requests_per_second=requests_per_second, spilled_in=dict(spilled_in or {}),
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
