"""Overload and deep backlogs: what a queue in front of GPUs does when more comes than it can run.

- ``overload``: async submits at 3× capacity for 60 s. Spillover through its HTTP edge, with
  ``[queue] max_depth``; Celery + Redis takes everything. Accepted-submit latency, the share
  refused, acknowledged tasks lost, etcd's peak db size against its quota, and how long until the
  system is healthy again once the load stops: its backlog drained (Spillover: the health API
  says ``ok`` with no queue, a heartbeat apart; Celery: every result is in).
- ``backlog``: dispatch latency of a served app while another app (no replica serves it) has 0,
  100k or 1M tasks queued, with the agent's RSS and etcd's db size (Spillover only: a Celery
  broker does not keep a backlog's tasks in the worker).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.regional import pct
from benchmarks.report import SLOTS, Report
from benchmarks.sides import REGION, Celery, Spillover, edge_process, rss_mib
from federation import keys
from federation.etcd import put
from federation.queue import encode, ns
from federation.task import TaskRecord, new_task_id

RUN = 0.1  # each task holds a slot this long: 4 slots take 40 tasks/s
CAPACITY = SLOTS / RUN
MAX_DEPTH = 200  # 5 s of work queued at most


async def overload(
    tmp: Path, report: Report, seconds: float = 60.0, factor: float = 3.0, reps: int = 1
) -> None:
    rate = CAPACITY * factor
    p99 = report.row(f"overload {factor:.0f}× capacity for {seconds:.0f} s: p99 of accepted "
                     "submits", "ms")  # fmt: skip
    refused = report.row(
        "overload: share of submits refused (429)", "%", better="higher",
        note=f"Spillover [queue] max_depth = {MAX_DEPTH}; Celery accepts all",
    )  # fmt: skip
    lost = report.row("overload: acknowledged tasks lost", "tasks")
    db = report.row("overload: etcd db peak, % of its quota (target ≤ 50)", "%")
    healthy = report.row("overload: seconds to healthy after the load stops (target ≤ 10)", "s",
                         note="Spillover: health API ok; Celery: backlog drained")  # fmt: skip
    for rep in range(reps):
        quota = 256 << 20
        sp = Spillover(tmp / f"o{rep}", SLOTS, queue={"max_depth": MAX_DEPTH}, quota_bytes=quota)
        await sp.start()
        try:
            s = await _spillover_overload(sp, tmp / f"o{rep}", rate, seconds)
        finally:
            await sp.close()
        ce = Celery(tmp / f"oc{rep}", SLOTS).start()
        try:
            c = await asyncio.to_thread(_celery_overload, ce, rate, seconds)
        finally:
            ce.close()
        p99.add(s["p99"], c["p99"])
        refused.add(s["refused"], 0.0)
        lost.add(s["lost"], c["lost"])
        db.add(s["db"])
        healthy.add(s["healthy"], c["healthy"])


async def _spillover_overload(
    sp: Spillover, tmp: Path, rate: float, seconds: float
) -> dict[str, float]:
    import aiohttp

    accepted: list[str] = []
    latencies: list[float] = []
    codes: dict[int, int] = {}
    peak = 0
    async with edge_process(sp, tmp / "edge") as base, aiohttp.ClientSession() as http:

        async def submit(i: int) -> None:
            t0 = time.perf_counter()
            body = {"key": str(i), "seconds": RUN}
            async with http.post(f"{base}/v1/apps/bench/work?async=1", json=body) as r:
                codes[r.status] = codes.get(r.status, 0) + 1
                if r.status == 202:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    accepted.append((await r.json())["id"])

        async def sample() -> None:
            nonlocal peak
            while True:
                size, _, _ = await sp.clusters.control.space()
                peak = max(peak, size)
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        await _paced(submit, rate, seconds)
        stopped = time.monotonic()
        await _until_ok(http, base)
        healthy = time.monotonic() - stopped
        sampler.cancel()
        finished = await asyncio.gather(*(sp.waiters.wait(t, 120) for t in accepted))
    total = sum(codes.values())
    return {
        "p99": pct(latencies, 0.99),
        "refused": 100 * codes.get(429, 0) / total,
        "lost": float(sum(not r.state.terminal for r in finished)),
        "db": 100 * peak / sp.config.quota_bytes,
        "healthy": healthy,
    }


async def _paced(submit: Any, rate: float, seconds: float) -> None:
    """``submit(i)`` at ``rate`` per second for ``seconds``, each on time whatever the others
    take (an open loop: overload does not slow its own arrivals)."""
    start, pending, i = time.monotonic(), set(), 0
    while (due := start + i / rate) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        task = asyncio.create_task(submit(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
        i += 1
    await asyncio.gather(*pending)


async def _until_ok(http: Any, base: str, timeout: float = 300.0) -> None:
    """Until the health API says ``ok`` and no region has a queue: the backlog is drained."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with http.get(f"{base}/v1/federation/health") as r:
            health = await r.json()
        queued = sum(a["queue_depth"] for region in health["regions"] for a in region["apps"])
        if health["status"] == "ok" and queued == 0:
            return
        await asyncio.sleep(0.25)
    raise TimeoutError("the federation did not become healthy again")


def _celery_overload(ce: Celery, rate: float, seconds: float) -> dict[str, float]:
    sent, latencies = [], []
    start, i = time.monotonic(), 0
    while (due := start + i / rate) < start + seconds:
        time.sleep(max(0.0, due - time.monotonic()))
        t0 = time.perf_counter()
        sent.append(ce.app.send_task("work", args=(str(i), RUN)))
        latencies.append((time.perf_counter() - t0) * 1000)
        i += 1
    stopped = time.monotonic()
    got = 0
    for r in sent:
        try:
            r.get(timeout=600)
            got += 1
        except Exception:
            pass
    return {"p99": pct(latencies, 0.99), "lost": float(len(sent) - got),
            "healthy": time.monotonic() - stopped}  # fmt: skip


# -- backlog -----------------------------------------------------------------------------------

DEPTHS = (0, 100_000, 1_000_000)


async def backlog(tmp: Path, report: Report, n: int = 200) -> None:
    note = ("the backlog is another app's (`parked`, no replica), loaded straight into etcd in "
            "batched txns; dispatch is the served app's, submit → handler start")  # fmt: skip
    rows = {
        depth: (
            report.row(f"backlog {depth:,}: dispatch p50 (target ≤ 1.5 × idle)", "ms",
                       note=note if depth == 0 else ""),
            report.row(f"backlog {depth:,}: agent RSS (target ≤ 200)", "MiB"),
            report.row(f"backlog {depth:,}: etcd db size", "MiB"),
        )
        for depth in DEPTHS
    }  # fmt: skip
    for depth in DEPTHS:
        sp = Spillover(tmp / f"b{depth}", SLOTS, quota_bytes=8 << 30)
        await sp.start()
        try:
            loaded = await _load(sp, depth)
            await asyncio.sleep(5)  # the agent's view and reaper settle on the backlog
            lat = []
            for _ in range(n):
                t0 = time.time()
                lat.append((float((await sp.call("stamp", {}))["started"]) - t0) * 1000)
            size, _, _ = await sp.clusters.control.space()
            dispatch, rss, db = rows[depth]
            dispatch.add(statistics.median(lat))
            rss.add(rss_mib([sp.agent.pid]))
            db.add(size / 2**20)
            print(f"backlog {depth}: loaded in {loaded:.0f} s, p50 {statistics.median(lat):.2f} "
                  f"ms, agent {rss_mib([sp.agent.pid]):.0f} MiB", flush=True)  # fmt: skip
        finally:
            await sp.close()


async def _load(sp: Spillover, depth: int, per_txn: int = 40, writers: int = 4) -> float:
    """``depth`` queued tasks of ``parked``: record, queue entry and body per task, as an
    enqueue writes them, 40 tasks per txn from 4 writers."""
    etcd, root, t0 = sp.clusters.control, "/bench", time.monotonic()
    body = json.dumps({"key": "", "seconds": 0}).encode()

    async def writer(start: int, stop: int) -> None:
        for first in range(start, stop, per_txn):
            ops = []
            now = time.time()
            for _ in range(first, min(first + per_txn, stop)):
                r = TaskRecord(
                    id=new_task_id(REGION), app="parked", function="work",
                    home_region=REGION, created_at=now, deadline=now + 86_400,
                )  # fmt: skip
                value = encode(r)
                ops += [
                    put(keys.task(root, REGION, r.id), value),
                    put(keys.ready(root, REGION, r.app, r.priority, ns(r.created_at), r.id), value),
                    put(keys.payload(root, REGION, r.id), body),
                ]
            await etcd.txn([], ops)

    share = -(-depth // writers)
    await asyncio.gather(*(writer(w * share, min(depth, (w + 1) * share)) for w in range(writers)))
    return time.monotonic() - t0
