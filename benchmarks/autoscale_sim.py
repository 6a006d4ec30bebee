"""Autoscaling policies on the same load traces, with a fake clock: Spillover's ``decide()`` (the
real function) beside the published formulas of Knative's KPA, Ray Serve's default policy and
KEDA's Redis list-length scaler. A discrete simulation, one step per second:

- tasks arrive (Poisson, the trace's rate), wait in one FIFO queue, and run ``--service`` seconds
  in a slot of a ready replica (``--concurrency`` slots each);
- a replica serves ``--cold-start`` seconds after it is asked for (model load); scale-in
  removes idle replicas only (a drain), never a running task;
- each policy sees what its real counterpart sees, at its real cadence.

Reports per trace and policy: p50/p99 queue wait, replica-seconds (cost), and how often the
scaling direction flipped.

    python -m benchmarks.autoscale_sim [--duration 1800] [--seed 7]
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.regional import pct
from federation.appspec import ScalingSection
from federation.autoscaler import Snapshot, State, decide

Trace = Callable[[float], float]  # second -> arrivals per second

TRACES: dict[str, Trace] = {
    "steady": lambda t: 4.0,
    "step": lambda t: 2.0 if t < 600 else 8.0,
    "spike": lambda t: 12.0 if 600 <= t < 660 else 2.0,
    "diurnal": lambda t: 4.5 + 3.5 * math.sin(2 * math.pi * t / 1800),
    "bursty": lambda t: 8.0 if t % 300 < 60 else 0.0,
}


@dataclass
class World:
    """What the policies observe, and what they cost."""

    concurrency: int
    service: float
    cold_start: float
    queue: deque[float] = field(default_factory=deque)  # arrival times
    running: list[float] = field(default_factory=list)  # finish times
    ready: int = 0
    starting: list[float] = field(default_factory=list)  # times they become ready
    waits: list[float] = field(default_factory=list)
    replica_seconds: float = 0.0
    started_last_tick: int = 0

    @property
    def replicas(self) -> int:
        return self.ready + len(self.starting)

    def scale_to(self, n: int, now: float) -> None:
        while self.replicas < n:
            self.starting.append(now + self.cold_start)
        while self.replicas > n and self.starting:  # not yet serving: cancel the newest
            self.starting.pop()
        idle = self.ready - math.ceil(len(self.running) / self.concurrency)
        self.ready -= max(0, min(self.replicas - n, idle))  # drain: idle replicas only

    def step(self, now: float, arrivals: int) -> None:
        self.queue.extend([now] * arrivals)
        self.ready += sum(1 for t in self.starting if t <= now)
        self.starting = [t for t in self.starting if t > now]
        self.running = [t for t in self.running if t > now]
        free = self.ready * self.concurrency - len(self.running)
        self.started_last_tick = 0
        while free > 0 and self.queue:
            self.waits.append(now - self.queue.popleft())
            self.running.append(now + self.service)
            free -= 1
            self.started_last_tick += 1
        self.replica_seconds += self.replicas


Policy = Callable[[World, float], int]  # -> desired replicas


def spillover(c: ScalingSection) -> Policy:
    state = State()

    def policy(w: World, now: float) -> int:
        nonlocal state
        s = Snapshot(
            replicas=w.replicas, starting=len(w.starting), busy_slots=len(w.running),
            queued=len(w.queue), oldest_wait=now - w.queue[0] if w.queue else 0.0,
            queued_home=len(w.queue),
        )  # fmt: skip
        d, state = decide(s, c, state, now)
        return d.desired

    return policy


def knative_kpa(c: ScalingSection) -> Policy:
    """KPA: in-flight requests (the activator counts queued ones) averaged over a 60 s stable and
    6 s panic window against target = containerConcurrency × 70 %; panic when the panic window
    wants ≥ 2× what is ready, never scaling down while panicking (for 60 s)."""
    target = c.replica_concurrency * 0.7
    seen: deque[tuple[float, float]] = deque()
    panic_until = -1.0
    desired = c.min_replicas

    def policy(w: World, now: float) -> int:
        nonlocal panic_until, desired
        seen.append((now, len(w.running) + len(w.queue)))
        while seen[0][0] <= now - 60:
            seen.popleft()
        stable = sum(v for _, v in seen) / len(seen)
        recent = [v for t, v in seen if t > now - 6]
        panic = sum(recent) / len(recent)
        want_stable, want_panic = math.ceil(stable / target), math.ceil(panic / target)
        if want_panic >= 2 * max(w.ready, 1) and want_panic > 0:
            panic_until = now + 60
        desired = max(desired, want_panic) if now < panic_until else want_stable
        return min(max(desired, c.min_replicas), c.max_replicas)

    return policy


def ray_serve(c: ScalingSection, target_ongoing: float = 2.0) -> Policy:
    """Ray Serve's defaults: ongoing requests per replica (queued included) averaged over a 30 s
    look-back, target_ongoing_requests 2; a change applies only after the decision has held
    for upscale_delay_s 30 / downscale_delay_s 600."""
    seen: deque[tuple[float, float]] = deque()
    held_since: float | None = None
    held_dir = 0
    current = c.min_replicas

    def policy(w: World, now: float) -> int:
        nonlocal held_since, held_dir, current
        seen.append((now, len(w.running) + len(w.queue)))
        while seen[0][0] <= now - 30:
            seen.popleft()
        avg = sum(v for _, v in seen) / len(seen)
        want = min(max(math.ceil(avg / target_ongoing), c.min_replicas), c.max_replicas)
        direction = (want > current) - (want < current)
        if direction != held_dir:
            held_dir, held_since = direction, now
        delay = 30 if direction > 0 else 600
        if direction and held_since is not None and now - held_since >= delay:
            current, held_since = want, now
        return current

    return policy


def keda_redis(c: ScalingSection, list_length: int = 5) -> Policy:
    """KEDA's Redis list scaler with defaults: poll LLEN every 30 s, target listLength 5 per
    replica; the HPA keeps the highest recommendation of the last 300 s (its scale-down
    stabilisation), and KEDA scales to zero after cooldownPeriod 300 s of an empty list. LLEN
    counts only waiting tasks: running ones are invisible to it."""
    recs: deque[tuple[float, int]] = deque()
    last_active = -math.inf
    current = c.min_replicas

    def policy(w: World, now: float) -> int:
        nonlocal last_active, current
        if now % 30:
            return current
        length = len(w.queue)
        if length:
            last_active = now
        recs.append((now, math.ceil(length / list_length)))
        while recs[0][0] <= now - 300:
            recs.popleft()
        want = max(r for _, r in recs)
        if want == 0 and now - last_active < 300:
            want = max(current, 1)  # active recently: KEDA keeps the deployment at ≥ 1
        current = min(max(want, c.min_replicas), c.max_replicas)
        return current

    return policy


def simulate(trace: Trace, policy: Policy, args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(args.seed)
    w = World(args.concurrency, args.service, args.cold_start)
    desired, moves = w.replicas, []
    for now in range(args.duration):
        lam = trace(now)
        # Poisson arrivals by inversion (no numpy needed)
        arrivals, p, u = 0, math.exp(-lam), rng.random()
        cdf = p
        while u > cdf and arrivals < 1000:
            arrivals += 1
            p *= lam / arrivals
            cdf += p
        w.step(float(now), arrivals)
        new = policy(w, float(now))
        if new != desired:
            moves.append(1 if new > desired else -1)
            desired = new
        w.scale_to(desired, float(now))
    flips = sum(1 for a, b in itertools.pairwise(moves) if a != b)
    waits = w.waits or [0.0]
    return {"p50_wait_s": pct(waits, 0.5), "p99_wait_s": pct(waits, 0.99),
            "replica_s": w.replica_seconds, "flips": flips, "unserved": len(w.queue)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=1800)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--service", type=float, default=2.0, help="seconds per task")
    ap.add_argument("--cold-start", type=float, default=20.0, help="seconds to load the model")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    c = ScalingSection(replica_concurrency=args.concurrency, min_replicas=1, max_replicas=40,
                       cooldown=60, queue_time_threshold=2.0)  # fmt: skip
    policies = {"spillover": spillover, "knative-kpa": knative_kpa,
                "ray-serve": ray_serve, "keda-redis": keda_redis}  # fmt: skip
    print("| trace | policy | p50 wait s | p99 wait s | replica-s | direction flips |")
    print("|---|---|---:|---:|---:|---:|")
    for name, trace in TRACES.items():
        for label, make in policies.items():
            r = simulate(trace, make(c), args)
            print(f"| {name} | {label} | {r['p50_wait_s']:.1f} | {r['p99_wait_s']:.1f} | "
                  f"{r['replica_s']:,.0f} | {r['flips']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
