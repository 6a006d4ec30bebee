"""The federated queue on real etcd: enqueue/s, claim/s, claim conflicts, enqueue→claim latency
and the full lifecycle (enqueue, claim, fenced complete, waiter woken), with 1 and 3 members.

    python -m benchmarks.queue [--members 1 3] [--json out.json]

Each figure is the median of ``--reps`` repetitions; latencies are p50/p99 of the pooled samples.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from federation.queue import Claimer, Queue
from federation.ready import ReadyView
from federation.task import TaskRecord, new_task_id
from federation.topology import Clusters, EtcdConfig
from federation.waiters import TaskWaiters, until_finished
from spillover.local.etcd import LocalEtcd

P = "us-east-1"


def record() -> TaskRecord:
    now = time.time()
    return TaskRecord(
        id=new_task_id(P), app="bench", function="noop", home_region=P,
        created_at=now, deadline=now + 3600,
    )  # fmt: skip


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


async def bounded(n: int, concurrency: int, fn: Callable[[], Awaitable[None]]) -> float:
    """Run ``fn`` n times, ``concurrency`` at a time; returns the elapsed seconds."""
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await fn()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


class Bench:
    def __init__(self, endpoints: list[str], root: str) -> None:
        self.clusters = Clusters(EtcdConfig(endpoints=tuple(endpoints), root=root))
        self.queue = Queue(self.clusters)

    async def enqueue_serial(self, n: int) -> dict[str, float]:
        lat: list[float] = []

        async def one() -> None:
            t = time.perf_counter()
            await self.queue.enqueue(record(), b"{}")
            lat.append(time.perf_counter() - t)

        elapsed = await bounded(n, 1, one)
        return {"enqueue_serial_per_s": n / elapsed, "enqueue_p50_ms": pct(lat, 0.5) * 1e3}

    async def enqueue_concurrent(self, n: int) -> dict[str, float]:
        elapsed = await bounded(n, 64, lambda: self._enqueue())
        return {"enqueue_64_per_s": n / elapsed}

    async def _enqueue(self) -> None:
        await self.queue.enqueue(record(), b"{}")

    async def claims(self, backlog: int) -> dict[str, float]:
        """One claimer draining a backlog in batches, as a region's agent does."""
        await bounded(backlog, 64, self._enqueue)
        claimer = Claimer("drain", P)
        view = ReadyView(self.queue, "bench", [P])
        follower = asyncio.create_task(view.run())
        await view.wait_synced()
        got = 0
        start = time.perf_counter()
        while got < backlog:
            got += len(await view.claim(claimer, 24))
            if not view.entries and got < backlog:
                view.changed.clear()
                await view.changed.wait()
        elapsed = time.perf_counter() - start
        follower.cancel()
        await claimer.close()
        return {"claims_per_s": backlog / elapsed}

    async def conflicts(self, backlog: int, claimers: int, sliced: bool) -> float:
        """Fraction of claim attempts lost to a peer, ``claimers`` racing over one backlog."""
        await bounded(backlog, 64, self._enqueue)
        attempted = won = 0

        async def run(rank: int) -> None:
            nonlocal attempted, won
            claimer = Claimer(f"race{rank}", P)
            view = ReadyView(self.queue, "bench", [P])
            follower = asyncio.create_task(view.run())
            await view.wait_synced()
            while view.entries:
                n = min(4, len(view.entries))
                got = await view.claim(
                    claimer, n,
                    rank=rank if sliced else 0, n_claimers=claimers if sliced else 1,
                )  # fmt: skip
                attempted += n
                won += len(got)
                for c in got:
                    await self.queue.complete(c, b"", "text/plain")
            follower.cancel()
            await claimer.close()

        await asyncio.gather(*(run(r) for r in range(claimers)))
        return 1 - won / attempted if attempted else 0.0

    async def claim_latency(self, n: int) -> dict[str, float]:
        """Enqueue one task at a time into an idle queue; time until an idle claimer holds it."""
        claimer = Claimer("idle", P)
        view = ReadyView(self.queue, "bench", [P])
        follower = asyncio.create_task(view.run())
        await view.wait_synced()
        lat: list[float] = []
        for _ in range(n):
            view.changed.clear()
            t = time.perf_counter()
            await self.queue.enqueue(record(), b"{}")
            got: list[object] = []
            while not got:
                await view.changed.wait()
                view.changed.clear()
                got = list(await view.claim(claimer, 1))
            lat.append(time.perf_counter() - t)
        follower.cancel()
        await claimer.close()
        return {
            "enqueue_to_claim_p50_ms": pct(lat, 0.5) * 1e3,
            "enqueue_to_claim_p99_ms": pct(lat, 0.99) * 1e3,
        }

    async def lifecycle(self, n: int) -> dict[str, float]:
        """Saturated: 64 clients submit and wait for the result; one agent-like claimer completes
        each task at once. Tasks/s through enqueue, claim, fenced complete and waiter wake-up."""
        claimer = Claimer("life", P)
        view = ReadyView(self.queue, "bench", [P])
        waiters = TaskWaiters(self.queue, [P])
        background = [asyncio.create_task(view.run()), asyncio.create_task(waiters.run())]
        await view.wait_synced()
        stop = asyncio.Event()

        async def agent() -> None:
            while not stop.is_set():
                view.changed.clear()
                claims = await view.claim(claimer, 24)
                await asyncio.gather(*(self.queue.complete(c, b"ok", "text/plain") for c in claims))
                if not claims:
                    await view.changed.wait()

        async def client() -> None:
            r = record()
            async with waiters.subscribe(r.id) as updates:  # as the edge does: subscribe, write
                await self.queue.enqueue(r, b"{}")
                done = await until_finished(updates, r, timeout=30)
            assert done.state.terminal

        background.append(asyncio.create_task(agent()))
        elapsed = await bounded(n, 64, client)
        stop.set()
        view.changed.set()
        for t in background:
            t.cancel()
        await claimer.close()
        return {"lifecycle_per_s": n / elapsed}

    async def close(self) -> None:
        await self.clusters.close()


async def one_run(endpoints: list[str], rep: int, scale: float) -> dict[str, float]:
    out: dict[str, float] = {}

    def n(k: int) -> int:
        return max(50, int(k * scale))

    steps: list[tuple[str, Callable[[Bench], Awaitable[dict[str, float]]]]] = [
        ("serial", lambda b: b.enqueue_serial(n(500))),
        ("concurrent", lambda b: b.enqueue_concurrent(n(3000))),
        ("latency", lambda b: b.claim_latency(n(300))),
        ("claims", lambda b: b.claims(n(3000))),
        ("lifecycle", lambda b: b.lifecycle(n(3000))),
    ]
    for name, step in steps:
        bench = Bench(endpoints, f"/bench{rep}{name}")
        out.update(await step(bench))
        await bench.close()
    for claimers in (4,):
        for sliced in (False, True):
            bench = Bench(endpoints, f"/bench{rep}race{claimers}{sliced}")
            key = f"conflicts_{claimers}_claimers_{'sliced' if sliced else 'racing'}_pct"
            out[key] = 100 * await bench.conflicts(n(1000), claimers, sliced)
            await bench.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every task count")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    for members in args.members:
        with tempfile.TemporaryDirectory() as d, LocalEtcd(Path(d), members=members) as etcd:
            runs = [
                uvloop.run(one_run(etcd.endpoints, rep, args.scale)) for rep in range(args.reps)
            ]
        results[f"{members} member(s)"] = {k: [r[k] for r in runs] for k in runs[0]}
    names = list(next(iter(results.values())))
    cols = list(results)
    print("| figure | " + " | ".join(f"{c} median (min–max)" for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name in names:
        cells = []
        for c in cols:
            xs = results[c][name]
            cells.append(f"{statistics.median(xs):,.1f} ({min(xs):,.1f}–{max(xs):,.1f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
