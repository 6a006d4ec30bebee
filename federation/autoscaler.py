"""The autoscaler's policy: one pure function every region's leader runs once a second per app.

``decide(snapshot, scaling, state, now) -> (decision, state)``: frozen inputs; what it needs
between ticks (a minute of per-second windows, the last scale-out, the tasks' service time) is
returned, never mutated, so every rule is tested with a fake clock. Every decision says why, in a
short reason from a fixed set (a region name at most), fit for a metric label.

Demand is measured in slots by Little's law rather than by counting the queue: a region needs
its busy slots, plus the slots its queue's *growth* would fill (growth × service time), plus what
drains the backlog within ``DRAIN`` seconds. Counting every queued task as a slot (knative's KPA)
keeps asking for replicas all through a 20 s cold start while the queue grows, and buys ones that
arrive after the backlog is gone. Worked example (replica_concurrency 4, scaling_target 70, so a
replica should carry 2.8 busy slots; tasks run 2 s): 9 busy, a queue growing 1 task/s and 10
queued want (9 + 1 × 2) / 2.8 + 10 × 2 / (10 × 4) = 3.93 + 0.5, so 5 replicas.

The federation's part (``peers``: the other regions that may run the app) is in
:mod:`federation.absorb`; with no peers a region decides alone. Peers only ever take unpinned
load: pinned load has windows of its own and is sized for here whatever they offer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from federation.absorb import Peer, adopted, carried_back, helpers, shed_to
from federation.appspec import ScalingSection
from federation.windows import Window

STABLE_WINDOW = 60.0  # at most, seconds averaged for ordinary decisions (knative's stable window)
PANIC_WINDOW = 6.0  # seconds averaged to see a jump (knative's panic window)
PANIC_RATIO = 2.0  # a jump: the panic window wants twice what is ready (knative's threshold)
TOLERANCE = 0.1  # a stable want within 10 % above the current count is noise (the HPA's)
DRAIN = 10.0  # seconds in which added replicas should drain a backlog


@dataclass(frozen=True)
class Snapshot:
    """One app in one region, now."""

    replicas: int  # live (starting or ready), not draining
    starting: int  # of ``replicas``, those still loading their model
    busy_slots: int  # running tasks, whoever's
    # Queued tasks homed here that it may take now: another region's backlog is that region's to
    # size for (a down region's, its one adopter's: ``peers``' overflow).
    queued_home: int
    oldest_wait: float  # seconds the oldest of ``queued_home`` has waited; 0 when none
    requests_per_second: float = 0.0  # tasks started per second, over the last tick
    cpu: float = 0.0  # utilisation of the ready replicas, 0..1, averaged
    memory: float = 0.0
    # The federation: empty ``peers`` decides alone.
    region: str = ""
    price: float = 0.0  # this region's GPU price per hour (the tie-break between regions)
    busy_foreign: int = 0  # of ``busy_slots``, tasks homed in other regions
    busy_pinned: int = 0  # of ``busy_slots``, tasks hard-pinned here (no peer may run them)
    queued_pinned: int = 0  # of ``queued_home``, likewise
    peers: tuple[Peer, ...] = ()


def _window() -> Window:
    return Window(STABLE_WINDOW)


@dataclass(frozen=True)
class State:
    own: Window = field(default_factory=_window)  # busy slots running this region's tasks
    queue: Window = field(default_factory=_window)  # queued tasks this region sizes for
    pinned: Window = field(default_factory=_window)  # of ``own``, pinned
    pinned_queue: Window = field(default_factory=_window)  # of ``queue``, pinned
    foreign: Window = field(default_factory=_window)  # busy slots running others' tasks
    started: Window = field(default_factory=_window)  # tasks started per second
    metric: Window = field(default_factory=_window)  # replicas wanted by a non-slot metric
    service: float | None = None  # seconds a task runs (Little's law), once seen
    desired: int | None = None  # None before the first decision
    changed_at: float = -math.inf  # the last scale-out


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str
    # Slots other regions may count on here (federation/absorb.py): ready slots that this
    # region's demand over the stable window leaves free, on replicas it means to keep.
    spare: int = 0


@dataclass(frozen=True)
class _Demand:
    """Replicas wanted (fractional) over the stable and the panic window, and the queue now;
    ``jump``: the panic window's want before peers took their part (a jump is a jump, peers
    only change how much of it is bought here)."""

    stable: float
    panic: float
    queue: int
    jump: float

    def less(self, replicas: float, floor: _Demand) -> _Demand:
        """Less what peers take, never below ``floor`` (what only this region may serve)."""
        return _Demand(max(floor.stable, self.stable - replicas),
                       max(floor.panic, self.panic - replicas), floor.queue,
                       max(floor.jump, self.jump))  # fmt: skip


def decide(s: Snapshot, c: ScalingSection, state: State, now: float) -> tuple[Decision, State]:
    current = state.desired if state.desired is not None else s.replicas
    queue = s.queued_home + adopted(s, current >= c.max_replicas)
    state = _recorded(state, s, c, queue, current, now)
    span = min(STABLE_WINDOW, max(PANIC_WINDOW, c.cooldown))  # a short cooldown: quick reactions
    desired, reason, keep = _decide(s, c, state, now, span, current, queue)
    changed_at = now if desired > current else state.changed_at
    state = replace(state, desired=desired, changed_at=changed_at)
    # Lendable: the slots of the ready replicas it keeps, less its demand averaged over the
    # window (a steady figure, so peers do not act on one second's noise) and its queue.
    used = state.own.average(now, span) + state.foreign.average(now, span) + queue
    spare = min(keep, s.replicas - s.starting) * c.replica_concurrency - math.ceil(used - 1e-9)
    return Decision(desired, reason, max(0, spare)), state


def _decide(
    s: Snapshot,
    c: ScalingSection,
    state: State,
    now: float,
    span: float,
    current: int,
    queue: int,
) -> tuple[int, str, int]:
    """Desired replicas, why, and how many of them it means to keep past a cooldown."""
    load = _demand(state, c, state.own, state.queue, queue, now, span)
    pinned = _demand(state, c, state.pinned, state.pinned_queue, s.queued_pinned, now, span)
    waited = bool(queue) and s.oldest_wait >= c.queue_time_threshold

    # Up, for this region's own load: others' tasks running here only hold replicas (below), a
    # region lends spare slots but never buys GPUs for another's backlog.
    up, reason = _up(s, c, current, load, waited)
    near = helpers(s, c)
    if up > current and not waited and any(p.spare or p.carrying for p in near):
        # Warm slots elsewhere first: the unpinned queue their spare slots will take (once it
        # has waited out spillover_after) is theirs to drain, and the load wants fewer replicas
        # here by what their slots take, spare ones and those already running this region's
        # tasks (the minute of load averaged here still holds what moved to them). Unless a
        # task here already waited too long for them: then they are not coming.
        spare = sum(p.spare for p in near)
        taken = min(spare, queue - s.queued_pinned)
        lent = (spare + sum(p.carrying for p in near)) / c.replica_concurrency
        left = _demand(state, c, state.own, state.queue, queue - taken, now, span)
        up, reason = _up(s, c, current, left.less(lent, pinned), waited)
        if up > current >= _up(s, c, current, left.less(lent, _Demand(0, 0, 0, 0)), waited)[0]:
            reason = "scale up: pinned"  # only pinned tasks, which no peer may run, ask for more
        if up <= current:
            via = max(near, key=lambda p: (p.spare + p.carrying, -p.rtt, p.name))
            return current, f"absorb via {via.name}", current
    if up > current:
        return up, reason, up

    # Down: the stable demand, others' running tasks included (and this region's tasks that a
    # dearer peer carries today), held for a cooldown after the last scale-out, then one replica
    # per tick. Lower still when a cheaper peer's spare slots can carry the unpinned part: the
    # replicas drain, and the tasks they would have taken spill to it.
    per_replica = c.replica_concurrency * c.scaling_target / 100
    held = state.foreign.average(now, span) / c.replica_concurrency  # at full use, not grown for
    need = load.stable + held + carried_back(s, c) / per_replica
    floor = math.ceil(s.busy_slots / c.replica_concurrency)  # what running tasks occupy
    down_to = alone = _bounded(max(_ceil(need), floor), c)
    cheaper = shed_to(s, c)
    if cheaper:
        shed = sum(p.spare for p in cheaper) / c.replica_concurrency
        here = max(_ceil(pinned.stable), math.ceil(s.busy_pinned / c.replica_concurrency))
        down_to = min(alone, _bounded(max(_ceil(need - shed), here), c))
    if down_to >= current:
        return current, "steady", current
    if now - state.changed_at < c.cooldown:
        return current, "hold: cooldown", down_to
    if down_to < alone:
        by = max(cheaper, key=lambda p: (p.spare, p.name))
        return current - 1, f"scale in: carried by {by.name}", down_to
    return current - 1, "scale in: lower demand", down_to


def _up(s: Snapshot, c: ScalingSection, current: int, d: _Demand, waited: bool) -> tuple[int, str]:
    """Replicas to scale up to (when more than ``current``), and why."""
    up, reason = _ceil(d.stable), "scale up: stable demand"
    if up > current and d.stable <= current * (1 + TOLERANCE):
        up = current  # noise
    ready = s.replicas - s.starting
    if _ceil(d.panic) > up and d.jump >= PANIC_RATIO * max(ready, 1):
        up, reason = _ceil(d.panic), "scale up: panic"
    if waited and current and not s.starting and current + 1 > up:
        up, reason = current + 1, "scale up: queue time"  # nothing on its way: one more now
    if d.queue and up == 0:
        up, reason = 1, "scale up: from zero"
    bounded = _bounded(up, c)
    if up <= current < bounded:  # only the bounds ask for more
        reason = "scale up: min_replicas" if current < c.min_replicas else "scale up: buffer"
    return bounded, reason


def _recorded(
    state: State, s: Snapshot, c: ScalingSection, queue: int, current: int, now: float
) -> State:
    own = state.own.record(now, s.busy_slots - s.busy_foreign)
    foreign = state.foreign.record(now, s.busy_foreign)
    started = state.started.record(now, s.requests_per_second)
    # Little's law on the running part: mean busy slots / mean starts per second = seconds a
    # task runs. Before anything ran it is unknown: see _demand.
    rate = started.average(now)
    service = (own.average(now) + foreign.average(now)) / rate if rate else state.service
    return replace(
        state, own=own, foreign=foreign, started=started, service=service,
        queue=state.queue.record(now, queue), pinned=state.pinned.record(now, s.busy_pinned),
        pinned_queue=state.pinned_queue.record(now, s.queued_pinned),
        metric=state.metric.record(now, _metric(s, c, current)),
    )  # fmt: skip


def _demand(
    state: State,
    c: ScalingSection,
    busy: Window,
    queued: Window,
    queue: int,
    now: float,
    span: float,
) -> _Demand:
    """What a load (its busy and queue windows, ``queue`` tasks now) asks of this region."""

    def want(over: float) -> float:
        per_replica = c.replica_concurrency * c.scaling_target / 100
        if c.scaling_metric != "concurrency_utilization":  # queued tasks count under any metric
            return state.metric.average(now, over) + queue / c.replica_concurrency
        load = busy.average(now, over)
        if state.service is None:  # nothing has run yet: every queued task is a slot (as KPA)
            return (load + queue) / per_replica
        growth = max(0.0, queued.slope(now, over)) * state.service
        drain = queue * state.service / (DRAIN * c.replica_concurrency)
        return (load + growth) / per_replica + drain

    panic = want(PANIC_WINDOW)
    return _Demand(want(span), panic, queue, panic)


def _metric(s: Snapshot, c: ScalingSection, current: int) -> float:
    target = c.scaling_target / 100
    if c.scaling_metric == "requests_per_second":
        return s.requests_per_second / c.scaling_target  # requests/s per replica (Cerebrium)
    if c.scaling_metric == "concurrency_utilization":
        return 0.0  # measured in slots instead (_demand)
    utilisation = s.cpu if c.scaling_metric == "cpu_utilization" else s.memory
    return max(current, 1) * utilisation / target  # the HPA's formula


def _bounded(n: int, c: ScalingSection) -> int:
    return min(max(n + c.scaling_buffer, c.min_replicas), c.max_replicas)


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)  # 3.0000000001 after float sums is 3
