"""The autoscaler's policy: one pure function every region's leader runs once a second.

``decide(snapshot, scaling, state, now) -> (decision, state)``: frozen inputs; the state it needs
between ticks (a minute of demand samples, when demand last dropped) is returned, never mutated,
so every rule is tested with a fake clock.

Worked example (the defaults: replica_concurrency 4, scaling_target 70): a replica should carry
4 × 70 % = 2.8 busy slots. 9 tasks running and 5 queued is a demand of 14 slots, so the region
wants ceil(14 / 2.8) = 5 replicas, plus ``scaling_buffer``, within min/max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from federation.appspec import ScalingSection

STABLE_WINDOW = 60.0  # at most, seconds averaged for ordinary decisions (Knative's stable window)
PANIC_WINDOW = 6.0  # seconds whose peak scales up at once (Knative's panic window)


@dataclass(frozen=True)
class Snapshot:
    """One app in one region, now. ``queued`` counts the tasks this region may take now (its
    own, and other regions' once they have waited spillover_after): queued work is demand."""

    replicas: int  # live (starting or ready), not draining
    starting: int  # of ``replicas``, those still loading their model
    busy_slots: int  # running tasks
    queued: int
    oldest_wait: float  # seconds the oldest of ``queued`` has waited; 0 when none
    # Of ``queued``, those homed here (or whose home region is down). Only these start a region
    # from zero: other regions' overflow is absorbed by warm capacity, not a cold start everywhere.
    queued_home: int = 0
    requests_per_second: float = 0.0  # tasks started per second, over the last tick
    cpu: float = 0.0  # utilisation of the ready replicas, 0..1, averaged
    memory: float = 0.0


@dataclass(frozen=True)
class State:
    samples: tuple[tuple[float, float], ...] = ()  # (time, wanted replicas), last STABLE_WINDOW
    desired: int | None = None  # None before the first decision
    changed_at: float = -math.inf  # when ``desired`` last changed
    lower_since: float | None = None  # since when the stable demand has wanted fewer


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str


def wanted(s: Snapshot, c: ScalingSection, current: int) -> float:
    """Replicas the metric asks for right now (fractional; the caller rounds up)."""
    if current == 0:
        s = replace(s, queued=s.queued_home)
    target = c.scaling_target / 100
    if c.scaling_metric == "concurrency_utilization":
        return (s.busy_slots + s.queued) / (c.replica_concurrency * target)
    if c.scaling_metric == "requests_per_second":
        # scaling_target is then requests per second per replica, as in Cerebrium; queued tasks
        # still count, as one replica's worth of concurrency each.
        return s.requests_per_second / c.scaling_target + s.queued / c.replica_concurrency
    utilisation = s.cpu if c.scaling_metric == "cpu_utilization" else s.memory
    # Kubernetes' HPA formula: scale the current count by how far utilisation is from target.
    return max(current, 1) * utilisation / target + s.queued / c.replica_concurrency


def decide(s: Snapshot, c: ScalingSection, state: State, now: float) -> tuple[Decision, State]:
    current = state.desired if state.desired is not None else s.replicas
    raw = wanted(s, c, current)
    # A short cooldown asks for quick reactions: the stable window is never longer than it.
    window = min(STABLE_WINDOW, max(PANIC_WINDOW, c.cooldown))
    samples = (*(x for x in state.samples if x[0] > now - window), (now, raw))
    stable = math.ceil(_mean(samples) - 1e-9)
    # Up fast: the panic window's peak, so a jump counts the second it shows (Knative averages
    # its panic window; a burst of long GPU tasks should not wait for the average to catch up).
    panic = math.ceil(max(v for t, v in samples if t > now - PANIC_WINDOW) - 1e-9)
    # Never below what running tasks occupy: scale-in drains, it does not kill.
    floor = math.ceil(s.busy_slots / c.replica_concurrency)
    target, reason = max(stable, floor), "stable demand"
    if panic > target:
        target, reason = panic, "demand jumped (panic window)"
    if s.queued and current and not s.starting and s.oldest_wait >= c.queue_time_threshold:
        # A task waited too long and no replica is on its way: capacity for everything now,
        # without the target's headroom (and at least one more replica).
        full = max(current + 1, math.ceil((s.busy_slots + s.queued) / c.replica_concurrency))
        if full > target:
            target, reason = full, f"a task waited {s.oldest_wait:.1f} s ≥ queue_time_threshold"
    if s.queued_home and target == 0:
        target, reason = 1, "scale from zero: a task is queued here"
    target = min(max(target + c.scaling_buffer, c.min_replicas), c.max_replicas)

    state = replace(state, samples=samples)
    if target > current:  # fast up
        return _change(state, target, now, reason)
    if target == current:
        return Decision(current, "steady"), replace(state, desired=current, lower_since=None)
    # Slow down: only after ``cooldown`` seconds of lower demand (and as long since the last
    # scale-out), then one replica per tick while demand stays lower, so an overshoot after a
    # burst (say 29 replicas for a backlog of 80) comes back in seconds, not 26 cooldowns.
    lower_since = state.lower_since if state.lower_since is not None else now
    state = replace(state, lower_since=lower_since, desired=current)
    quiet = min(now - lower_since, now - state.changed_at)
    if quiet < c.cooldown:
        return Decision(current, f"lower demand for {quiet:.0f} s < cooldown"), state
    return Decision(current - 1, "lower demand for a cooldown: one step in"), replace(
        state, desired=current - 1
    )


def _change(state: State, desired: int, now: float, reason: str) -> tuple[Decision, State]:
    """A scale-out: it also restarts the wait for lower demand."""
    return Decision(desired, reason), replace(
        state, desired=desired, changed_at=now, lower_since=None
    )


def _mean(samples: tuple[tuple[float, float], ...]) -> float:
    return sum(v for _, v in samples) / len(samples)
