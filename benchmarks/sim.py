"""The machinery both autoscaling simulations share (``benchmarks.autoscale_sim`` for one region,
``benchmarks.federation_sim`` for three): a region's replicas and queue on a one-second fake
clock, Poisson arrivals, and the policies — Spillover's real ``decide()`` beside the published
formulas of Knative's KPA, Ray Serve's default policy and KEDA's Redis list-length scaler, each
seeing what its real counterpart sees, at its real cadence.

- tasks arrive, wait in their home region's FIFO queue, and run ``service`` seconds in a slot of a
  ready replica (``concurrency`` slots each);
- a replica serves ``cold_start`` seconds after it is asked for (model load), and costs from the
  moment it is asked for until it is gone; scale-in drains (a running task is never killed).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from federation.absorb import Peer
from federation.appspec import ScalingSection
from federation.autoscaler import Snapshot, State, decide


@dataclass(frozen=True)
class Queued:
    at: float  # arrival
    pinned: bool = False  # may run in its home region only


Running = tuple[float, str, bool]  # (finish time, home region, pinned)


@dataclass
class Replica:
    ready_at: float
    tasks: list[Running] = field(default_factory=list)
    draining: bool = False


@dataclass
class World:
    """One region: its replicas, and the queue of the tasks homed in it. Replicas behave as the
    agent's pool does (``regional/pool.py``): a task goes to the ready replica with the most free
    slots; scale-in drains the least busy (no new tasks; gone when its last one ends)."""

    concurrency: int
    service: float
    cold_start: float
    name: str = "here"
    queue: deque[Queued] = field(default_factory=deque)
    pool: list[Replica] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # of tasks homed here, wherever they ran
    remote: int = 0  # of those, how many ran in another region
    replica_seconds: float = 0.0  # every replica asked for and not yet gone, draining included
    started_last_tick: int = 0
    now: float = 0.0

    @property
    def serving(self) -> list[Replica]:
        return [r for r in self.pool if not r.draining and r.ready_at <= self.now]

    @property
    def ready(self) -> int:
        return len(self.serving)

    @property
    def starting(self) -> list[Replica]:
        return [r for r in self.pool if r.ready_at > self.now]

    @property
    def replicas(self) -> int:  # as the policies see them: live, not draining
        return sum(not r.draining for r in self.pool)

    @property
    def running(self) -> list[Running]:
        return [t for r in self.pool for t in r.tasks]

    @property
    def free(self) -> int:
        return sum(self.concurrency - len(r.tasks) for r in self.serving)

    def busy_for(self, home: str) -> int:
        return sum(1 for _, h, _ in self.running if h == home)

    def scale_to(self, n: int, now: float) -> None:
        live = [r for r in self.pool if not r.draining]
        for _ in range(n - len(live)):
            self.pool.append(Replica(now + self.cold_start))
        surplus = len(live) - n
        for r in sorted((r for r in live if r.ready_at > now), key=lambda r: -r.ready_at):
            if surplus <= 0:
                break
            self.pool.remove(r)  # not yet serving: cancel the newest first
            surplus -= 1
        for r in sorted((r for r in live if r.ready_at <= now), key=lambda r: len(r.tasks)):
            if surplus <= 0:
                break
            r.draining, surplus = True, surplus - 1
        self.pool = [r for r in self.pool if not (r.draining and not r.tasks)]

    def advance(self, now: float) -> None:
        """A new second: tasks that finished leave, drained replicas go, loaded ones serve."""
        self.now = now
        for r in self.pool:
            r.tasks = [t for t in r.tasks if t[0] > now]
        self.pool = [r for r in self.pool if not (r.draining and not r.tasks)]
        self.started_last_tick = 0

    def run(self, task: Queued, home: World, now: float, extra: float = 0.0) -> None:
        """Start ``task`` (homed in ``home``) here; ``extra`` seconds of wait beyond this second
        (a task claimed across regions waits out spillover_after and the claim's round trip)."""
        home.waits.append(now - task.at + extra)
        home.remote += home is not self
        replica = max(self.serving, key=lambda r: self.concurrency - len(r.tasks))
        replica.tasks.append((now + self.service, home.name, task.pinned))
        self.started_last_tick += 1

    def step(self, now: float, arrivals: int) -> None:
        """One second alone: arrivals, then the queue served in order into free slots."""
        self.queue.extend([Queued(now)] * arrivals)
        self.advance(now)
        for _ in range(min(self.free, len(self.queue))):
            self.run(self.queue.popleft(), self, now)
        self.replica_seconds += len(self.pool)


def poisson(rng: random.Random, lam: float) -> int:
    """Arrivals in one second at ``lam`` per second, by inversion (no numpy needed)."""
    arrivals, p, u = 0, math.exp(-lam), rng.random()
    cdf = p
    while u > cdf and arrivals < 1000:
        arrivals += 1
        p *= lam / arrivals
        cdf += p
    return arrivals


def snapshot(w: World, now: float, region: str = "", price: float = 0.0,
             peers: tuple[Peer, ...] = ()) -> Snapshot:  # fmt: skip
    """What a region's agent hands ``decide()``."""
    return Snapshot(
        replicas=w.replicas, starting=len(w.starting), busy_slots=len(w.running),
        queued_home=len(w.queue), oldest_wait=now - w.queue[0].at if w.queue else 0.0,
        requests_per_second=w.started_last_tick, region=region,
        price=price, busy_foreign=len(w.running) - w.busy_for(w.name),
        busy_pinned=sum(p for _, _, p in w.running), queued_pinned=sum(t.pinned for t in w.queue),
        peers=peers,
    )  # fmt: skip


Policy = Callable[[World, float], int]  # -> desired replicas


def spillover(c: ScalingSection) -> Policy:
    """Spillover's ``decide()``, the region alone."""
    state = State()

    def policy(w: World, now: float) -> int:
        nonlocal state
        d, state = decide(snapshot(w, now), c, state, now)
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
