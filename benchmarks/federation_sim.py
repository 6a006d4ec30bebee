"""Three regions with their own load, priced and far apart, under four ways of scaling them, on a
one-second fake clock (the world and the policies of ``benchmarks/sim.py``):

- **keda-redis**: a queue and a KEDA-scaled pool per region (the Celery setup): no region takes
  another's tasks;
- **knative-kpa**: a KPA-scaled service per region, likewise alone;
- **spillover, per region**: one federated queue (a region takes another's unpinned task once
  it has waited ``spillover_after``, nearest region first, paying the round trip), each region
  scaled by ``decide()`` on its own load alone;
- **spillover, federation-aware**: the same, ``decide()`` also seeing the other regions as their
  heartbeats of one second before show them (``federation.absorb.peers``).

Scenarios: follow-the-sun (a day; each region's diurnal peak 8 h after the previous one's), bursty
(bursts of one region at a time) and skewed (one busy region, two quiet ones). One task in ten is
pinned to its home region. Reports per scenario and policy GPU-hours (and as a share of KEDA's and
KPA's), their cost at each region's price, p50/p99 wait (queue wait; for a task run in another
region also its wait for spillover_after and the claim's round trip) and the share of tasks run
away from home; then the same per policy over all scenarios (their worst p50/p99).

    python -m benchmarks.federation_sim [--seed 7] [--day 86400]
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable, Mapping

from benchmarks.autoscale_sim import Trace
from benchmarks.regional import pct
from benchmarks.sim import Policy, Queued, World, keda_redis, knative_kpa, poisson, snapshot
from benchmarks.sim import spillover as spillover_alone
from federation.absorb import peers
from federation.appspec import ScalingSection
from federation.autoscaler import Decision, State, decide
from federation.geo import rtt_estimate
from federation.heartbeat import AppLoad, RegionHeartbeat
from spillover.local.configs import DEFAULT_REGIONS, parse_region

PRICES = {"us-east-1": 4.00, "eu-west-1": 4.40, "ap-south-1": 3.60}  # $/GPU-hour, illustrative
# Where `spillover up` puts them; round trips estimated from there (federation/geo.py): 76 ms
# us-east-1 ↔ eu-west-1 (public tables measure ≈ 80), 106 ms eu-west-1 ↔ ap-south-1, 180 ms
# us-east-1 ↔ ap-south-1: beyond the default latency_budget of 150 ms.
WHERE = {r.name: (r.lat, r.lon) for r in map(parse_region, DEFAULT_REGIONS)}
PINNED = 0.1  # share of tasks pinned to their home region
SPILLOVER_AFTER = 0.5
APP = "demo"


def rtt(a: str, b: str) -> float:
    return rtt_estimate(WHERE[a], WHERE[b])


def sun(peak_hour: float, day: float) -> Trace:
    """A working day's load: 0.3 tasks/s at night, 6 at the peak."""
    return lambda t: 0.3 + 5.7 * ((1 + math.cos(2 * math.pi * (t / day - peak_hour / 24))) / 2) ** 2


def bursts(offset: float) -> Trace:
    """1 task/s, and 10 for a minute every ten minutes from ``offset``."""
    return lambda t: 10.0 if (t - offset) % 600 < 60 else 1.0


def scenarios(day: int) -> dict[str, tuple[int, dict[str, Trace]]]:
    return {
        "follow-the-sun": (day, {"us-east-1": sun(19, day), "eu-west-1": sun(11, day),
                                 "ap-south-1": sun(3, day)}),
        "bursty": (7200, {"us-east-1": bursts(0), "eu-west-1": bursts(200),
                          "ap-south-1": bursts(400)}),
        "skewed": (7200, {"us-east-1": lambda t: 6.0, "eu-west-1": lambda t: 1.0,
                          "ap-south-1": lambda t: 0.3}),
    }  # fmt: skip


RegionPolicy = Callable[[World, float, Mapping[str, RegionHeartbeat]], Decision]
Make = Callable[[ScalingSection, str], RegionPolicy]


def alone(make: Callable[[ScalingSection], Policy]) -> Make:
    """A policy that sees its own region only."""

    def region_policy(c: ScalingSection, region: str) -> RegionPolicy:
        policy = make(c)
        return lambda w, now, beats: Decision(policy(w, now), "")

    return region_policy


def federation_aware(c: ScalingSection, region: str) -> RegionPolicy:
    state = State()

    def policy(w: World, now: float, beats: Mapping[str, RegionHeartbeat]) -> Decision:
        nonlocal state
        view = peers(beats, region, APP, (), c)  # round trips from the heartbeats' coordinates
        d, state = decide(snapshot(w, now, region, PRICES[region], view), c, state, now)
        return d

    return policy


POLICIES: dict[str, tuple[Make, bool]] = {  # name: (policy per region, one federated queue)
    "keda-redis": (alone(keda_redis), False),
    "knative-kpa": (alone(knative_kpa), False),
    "spillover, per region": (alone(spillover_alone), True),
    "spillover, federation-aware": (federation_aware, True),
}


def heartbeat(w: World, d: Decision, now: float) -> RegionHeartbeat:
    by_home: dict[str, int] = {}
    for _, home, _ in w.running:
        if home != w.name:
            by_home[home] = by_home.get(home, 0) + 1
    load = AppLoad(
        app=APP, replicas=w.replicas, ready_replicas=w.ready, desired_replicas=d.desired,
        slots=w.ready * w.concurrency, busy_slots=len(w.running), queue_depth=len(w.queue),
        oldest_wait_ms=(now - w.queue[0].at) * 1000 if w.queue else 0.0,
        queued_home=len(w.queue), busy_by_home=by_home, scaling_reason=d.reason,
        spare_slots=d.spare,
    )  # fmt: skip
    lat, lon = WHERE[w.name]
    return RegionHeartbeat(name=w.name, lat=lat, lon=lon, agent="sim", at=now, apps=(load,),
                           gpu_price=PRICES[w.name])  # fmt: skip


def spill(worlds: dict[str, World], now: float) -> None:
    """Slots left free this second take other regions' unpinned tasks as they become eligible
    (after ``spillover_after``, which may fall before the next second: a task of this second is
    claimed half a second in), the oldest first, by the region nearest their home."""
    waiting = sorted(
        (t.at, home) for home, w in worlds.items() for t in w.queue
        if not t.pinned and t.at + SPILLOVER_AFTER < now + 1
    )  # fmt: skip
    for at, home in waiting:
        takers = [w for name, w in worlds.items() if name != home and w.free > 0]
        if not takers:
            return
        taker = min(takers, key=lambda w: (rtt(home, w.name), w.name))
        queue = worlds[home].queue
        task = next(t for t in queue if t.at == at and not t.pinned)
        queue.remove(task)
        claimed = max(now, at + SPILLOVER_AFTER)
        taker.run(task, worlds[home], now, claimed - now + rtt(home, taker.name))


def simulate(duration: int, traces: dict[str, Trace], make: Make, federated: bool,
             c: ScalingSection, args: argparse.Namespace) -> dict[str, float]:  # fmt: skip
    rng = random.Random(args.seed)
    worlds = {r: World(args.concurrency, args.service, args.cold_start, name=r) for r in traces}
    policies = {r: make(c, r) for r in traces}
    decided = dict.fromkeys(traces, Decision(0, ""))
    beats: dict[str, RegionHeartbeat] = {}
    for second in range(duration):
        now = float(second)
        for r, w in worlds.items():
            arrivals = poisson(rng, traces[r](now))
            w.queue.extend(Queued(now, rng.random() < PINNED) for _ in range(arrivals))
            w.advance(now)
            for _ in range(min(w.free, len(w.queue))):
                w.run(w.queue.popleft(), w, now)
        if federated:
            spill(worlds, now)
        for r, w in worlds.items():
            w.replica_seconds += len(w.pool)
            decided[r] = policies[r](w, now, beats)
            w.scale_to(decided[r].desired, now)
        beats = {r: heartbeat(w, decided[r], now) for r, w in worlds.items()} if federated else {}
    waits = [x for w in worlds.values() for x in w.waits] or [0.0]
    served = sum(len(w.waits) for w in worlds.values())
    return {
        "gpu_h": sum(w.replica_seconds for w in worlds.values()) / 3600,
        "cost": sum(w.replica_seconds * PRICES[r] for r, w in worlds.items()) / 3600,
        "p50": pct(waits, 0.5), "p99": pct(waits, 0.99),
        "remote": sum(w.remote for w in worlds.values()) / max(served, 1),
        "served": served, "unserved": sum(len(w.queue) for w in worlds.values()),
    }  # fmt: skip


def table(results: Mapping[str, Mapping[str, float]]) -> list[str]:
    keda, kpa = results["keda-redis"]["gpu_h"], results["knative-kpa"]["gpu_h"]
    lines = [
        "| policy | GPU-hours | × KEDA | × KPA | cost $ | p50 wait s | p99 wait s | run remotely |"
        " left queued |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} | {r['gpu_h']:,.1f} | {r['gpu_h'] / keda:.2f} | {r['gpu_h'] / kpa:.2f} | "
            f"{r['cost']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {100 * r['remote']:.1f} % | "
            f"{r['unserved']:.0f} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--day", type=int, default=86400, help="seconds in follow-the-sun's day")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--service", type=float, default=2.0, help="seconds per task")
    ap.add_argument("--cold-start", type=float, default=20.0, help="seconds to load the model")
    args = ap.parse_args()
    c = ScalingSection(replica_concurrency=args.concurrency, min_replicas=0, max_replicas=40,
                       cooldown=60, queue_time_threshold=2.0)  # fmt: skip
    totals: dict[str, list[dict[str, float]]] = {p: [] for p in POLICIES}
    for name, (duration, traces) in scenarios(args.day).items():
        results = {}
        for label, (make, federated) in POLICIES.items():
            results[label] = simulate(duration, traces, make, federated, c, args)
            totals[label].append(results[label])
        print(f"\n{name} ({duration / 3600:.0f} h)\n", *table(results), sep="\n", flush=True)
    summed = {label: _summed(rs) for label, rs in totals.items()}
    print("\nall scenarios (GPU-hours and cost summed; the worst p50/p99)\n", *table(summed),
          sep="\n")  # fmt: skip


def _summed(rs: list[dict[str, float]]) -> dict[str, float]:
    served = sum(r["served"] for r in rs)
    return {"gpu_h": sum(r["gpu_h"] for r in rs), "cost": sum(r["cost"] for r in rs),
            "p50": max(r["p50"] for r in rs), "p99": max(r["p99"] for r in rs),
            "remote": sum(r["remote"] * r["served"] for r in rs) / max(served, 1),
            "served": served, "unserved": sum(r["unserved"] for r in rs)}  # fmt: skip


if __name__ == "__main__":
    main()
