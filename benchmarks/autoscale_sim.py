"""Autoscaling policies on the same load traces in one region, with a fake clock: Spillover's
``decide()`` (the real function) beside the published formulas of Knative's KPA, Ray Serve's
default policy and KEDA's Redis list-length scaler (``benchmarks/sim.py``: the world and the
policies). A discrete simulation, one step per second; tasks arrive (Poisson, the trace's rate),
run ``--service`` seconds in one of ``--concurrency`` slots, on replicas that take
``--cold-start`` seconds to load.

Reports per trace and policy: p50/p99 queue wait, replica-seconds (cost), and how often the
scaling direction flipped.

    python -m benchmarks.autoscale_sim [--duration 1800] [--seed 7]
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
from collections.abc import Callable

from benchmarks.regional import pct
from benchmarks.sim import Policy, World, keda_redis, knative_kpa, poisson, ray_serve, spillover
from federation.appspec import ScalingSection

Trace = Callable[[float], float]  # second -> arrivals per second

TRACES: dict[str, Trace] = {
    "steady": lambda t: 4.0,
    "step": lambda t: 2.0 if t < 600 else 8.0,
    "spike": lambda t: 12.0 if 600 <= t < 660 else 2.0,
    "diurnal": lambda t: 4.5 + 3.5 * math.sin(2 * math.pi * t / 1800),
    "bursty": lambda t: 8.0 if t % 300 < 60 else 0.0,
}


def simulate(trace: Trace, policy: Policy, args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(args.seed)
    w = World(args.concurrency, args.service, args.cold_start)
    desired, moves = w.replicas, []
    for now in range(args.duration):
        w.step(float(now), poisson(rng, trace(now)))
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
