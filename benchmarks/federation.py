"""Enqueue latency at an edge in us-east-1 when every region's partition lives in its own etcd
cluster, against one shared cluster, with an emulated 80 ms WAN (a TCP proxy adding 40 ms each
way; this kernel has no netem) between regions. Medians of ``--reps`` runs.

- **per-region clusters**: the us-east-1 partition (and the control keyspace) in a local
  cluster; eu-west-1's and ap-south-1's behind the WAN. A task homed in us-east-1 is one local
  round trip.
- **one shared cluster**: all partitions in one cluster that, for this edge, is behind the WAN
  (wherever a shared cluster stands, two of three regions are far from it; a cluster spread over
  regions is worse still, since every write also waits for a cross-region quorum).

    python -m benchmarks.federation [--tasks 300] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import uvloop

from benchmarks.regional import pct
from federation.queue import Queue
from federation.task import TaskRecord, new_task_id
from federation.topology import Clusters, EtcdConfig
from spillover.local.etcd import LocalEtcd
from tests.tcp_proxy import TcpProxy

ONE_WAY = 0.040


async def enqueue_latency(config: EtcdConfig, n: int) -> tuple[float, float]:
    clusters = Clusters(config)
    queue = Queue(clusters)
    times = []
    try:
        for _ in range(n + 10):
            now = time.time()
            r = TaskRecord(id=new_task_id("us-east-1"), app="bench", function="f",
                           home_region="us-east-1", created_at=now, deadline=now + 600)  # fmt: skip
            started = time.perf_counter()
            await queue.enqueue(r, b"{}")
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await clusters.close()
    times = times[10:]  # connection set-up and warm-up
    return pct(times, 0.5), pct(times, 0.99)


async def run(tmp: Path, n: int, reps: int) -> dict[str, float]:
    with LocalEtcd(tmp / "us") as us, LocalEtcd(tmp / "eu") as eu, LocalEtcd(tmp / "ap") as ap:

        async def far(c: LocalEtcd) -> TcpProxy:
            return await TcpProxy(("127.0.0.1", c.members[0].client_port), ONE_WAY).start()

        eu_wan, ap_wan, shared_wan = await far(eu), await far(ap), await far(us)
        per_region = EtcdConfig(
            endpoints=tuple(us.endpoints),
            partitions={"eu-west-1": (eu_wan.endpoint,), "ap-south-1": (ap_wan.endpoint,)},
        )
        shared = EtcdConfig(endpoints=(shared_wan.endpoint,), root="/shared")
        out: dict[str, list[float]] = {}
        for _ in range(reps):
            for label, config in (("per_region", per_region), ("shared", shared)):
                p50, p99 = await enqueue_latency(config, n)
                out.setdefault(f"{label}_p50_ms", []).append(p50)
                out.setdefault(f"{label}_p99_ms", []).append(p99)
        for proxy in (eu_wan, ap_wan, shared_wan):
            await proxy.close()
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        results = uvloop.run(run(Path(d), args.tasks, args.reps))
    for k, v in results.items():
        print(f"| {k} | {v:,.1f} |")


if __name__ == "__main__":
    main()
