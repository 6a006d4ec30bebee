"""Regional pools: dispatch latency (enqueue → handler start, through the agent's claim and the
gRPC hop), the demo replica's cold start, and its RSS at replica_concurrency 1 vs 8 under load.

    python -m benchmarks.regional [--tasks 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from federation.aio import cancel_and_wait
from federation.apps import AppRegistry
from federation.appspec import parse_spec
from federation.queue import Queue
from federation.task import TaskRecord, new_task_id
from federation.topology import Clusters, EtcdConfig
from federation.waiters import TaskWaiters, until_finished
from regional.agent import Agent
from regional.config import RegionConfig
from regional.replicas import LocalProcessProvider
from spillover.local.etcd import LocalEtcd

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-1"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def spec(name: str, handler: str, concurrency: int) -> Any:
    return parse_spec(
        {
            "app": {"name": name, "handler": handler},
            "scaling": {"replica_concurrency": concurrency, "min_replicas": 1},
            "placement": {"regions": [REGION]},
        }
    )


class Rig:
    def __init__(self, endpoints: list[str], blobs: Path) -> None:
        self.etcd = EtcdConfig(endpoints=tuple(endpoints), root="/bench")
        self.clusters = Clusters(self.etcd)
        self.queue = Queue(self.clusters)
        self.waiters = TaskWaiters(self.queue, [REGION])
        self.apps = AppRegistry(self.clusters.control, self.etcd.root)
        config = RegionConfig(name=REGION, lat=39.0, lon=-77.5, etcd=self.etcd, app_root=REPO,
                              blobs={"dir": str(blobs)})  # fmt: skip
        self.agent = Agent(config, Clusters(self.etcd), LocalProcessProvider(REPO))
        self.bg = [asyncio.create_task(self.waiters.run()), asyncio.create_task(self.agent.run())]

    async def serving(self, app: str) -> None:
        agent = self.bg[1]
        while app not in self.agent.runners or not self.agent.runners[app].pool.ready_replicas:
            if agent.done():
                agent.result()  # raises what stopped the agent
                raise RuntimeError("the agent stopped")
            await asyncio.sleep(0.01)

    async def call(self, app: str, function: str, body: bytes) -> tuple[TaskRecord, bytes, float]:
        now = time.time()
        r = TaskRecord(
            id=new_task_id(REGION), app=app, function=function, home_region=REGION,
            created_at=now, deadline=now + 600, content_type="application/json",
        )  # fmt: skip
        async with self.waiters.subscribe(r.id) as updates:
            await self.queue.enqueue(r, body)
            done = await until_finished(updates, r, 60)
        return done, await self.queue.result(done), now

    async def close(self) -> None:
        await cancel_and_wait(self.bg)
        await self.agent.clusters.close()
        await self.clusters.close()


async def dispatch_latency(rig: Rig, n: int) -> dict[str, float]:
    await rig.apps.put(spec("probe", "benchmarks.probe:Probe", 4))
    await rig.serving("probe")
    lat = []
    for _ in range(n):
        _, body, submitted = await rig.call("probe", "stamp", b"{}")
        lat.append((json.loads(body)["started"] - submitted) * 1000)
    return {"dispatch_p50_ms": pct(lat, 0.5), "dispatch_p99_ms": pct(lat, 0.99)}


async def cold_start(reps: int) -> float:
    provider = LocalProcessProvider(REPO)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        replica = await provider.start(spec("demo", "spillover.demo.app:Model", 1), REGION)
        times.append(time.perf_counter() - started)
        await provider.stop(replica)
    return statistics.median(times)


async def rss_under_load(rig: Rig, concurrency: int, seconds: float) -> float:
    """Peak RSS of one demo replica while ``concurrency`` clients keep it full of predicts."""
    name = f"demo{concurrency}"
    await rig.apps.put(spec(name, "spillover.demo.app:Model", concurrency))
    await rig.serving(name)
    replica = rig.agent.runners[name].pool.replicas[0]
    assert replica.process is not None
    body = json.dumps({"inputs": [[0.1 * i] * 16 for i in range(256)]}).encode()
    stop = time.monotonic() + seconds
    peak = 0.0

    async def client() -> None:
        while time.monotonic() < stop:
            done, _, _ = await rig.call(name, "predict", body)
            assert done.state.value == "succeeded", done.error

    async def sample() -> None:
        nonlocal peak
        while time.monotonic() < stop:
            peak = max(peak, rss_mib(replica.process.pid))  # type: ignore[union-attr]
            await asyncio.sleep(0.05)

    await asyncio.gather(sample(), *(client() for _ in range(concurrency)))
    await rig.apps.delete(name)
    return peak


async def run(endpoints: list[str], blobs: Path, tasks: int) -> dict[str, float]:
    rig = Rig(endpoints, blobs)
    try:
        out = await dispatch_latency(rig, tasks)
        print("dispatch latency measured", file=sys.stderr)
        out["demo_cold_start_s"] = await cold_start(3)
        print("cold start measured", file=sys.stderr)
        out["rss_c1_mib"] = await rss_under_load(rig, 1, 4)
        out["rss_c8_mib"] = await rss_under_load(rig, 8, 4)
        out["rss_ratio_c8_over_c1"] = out["rss_c8_mib"] / out["rss_c1_mib"]
        return out
    finally:
        await rig.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, LocalEtcd(Path(d)) as etcd:
        results = uvloop.run(run(etcd.endpoints, Path(d) / "blobs", args.tasks))
    for k, v in results.items():
        print(f"| {k} | {v:,.2f} |")


if __name__ == "__main__":
    main()
