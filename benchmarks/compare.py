"""Spillover beside Celery 5 + Redis, the same workload on the same machine in the same run.
Worker concurrency is equal on both sides (4 slots: one replica of replica_concurrency 4 against
a prefork worker of 4 processes); each side runs its defaults unless a row says otherwise.

    spillover bench all | dispatch | throughput | durable | hol | spillover | loss | memory
                        | scaleup | payload | overload | backlog | client | profile | hotpath
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.backpressure import backlog, overload
from benchmarks.client import client
from benchmarks.hotpath import hotpath
from benchmarks.payload import payload
from benchmarks.profile import profile
from benchmarks.regional import pct
from benchmarks.report import SLOTS, Report, Row
from benchmarks.sides import (
    Celery,
    Spillover,
    cpu_seconds,
    edge_process,
    rss_mib,
    run_log,
    tree,
)

# -- 1. dispatch -----------------------------------------------------------------------------


async def dispatch(tmp: Path, report: Report, n: int = 200, reps: int = 2) -> None:
    p50 = report.row("dispatch p50 (submit → handler start, idle)", "ms")
    p99 = report.row("dispatch p99", "ms")
    http50 = report.row("dispatch p50 through the HTTP edge (Spillover) / apply_async", "ms")
    http99 = report.row("dispatch p99 through the HTTP edge (Spillover) / apply_async", "ms")
    for rep in range(reps):
        sp = await Spillover(tmp / f"d{rep}", SLOTS).start()
        try:
            lat = []
            for _ in range(n):
                t0 = time.time()
                lat.append((float((await sp.call("stamp", {}))["started"]) - t0) * 1000)
            http = await _edge_dispatch(sp, tmp / f"d{rep}", n)
        finally:
            await sp.close()
        ce = Celery(tmp / f"dc{rep}", SLOTS).start()
        try:
            clat = await asyncio.to_thread(_celery_dispatch, ce, n)
        finally:
            ce.close()
        p50.add(pct(lat, 0.5), pct(clat, 0.5))
        p99.add(pct(lat, 0.99), pct(clat, 0.99))
        http50.add(pct(http, 0.5), pct(clat, 0.5))
        http99.add(pct(http, 0.99), pct(clat, 0.99))


def _celery_dispatch(ce: Celery, n: int) -> list[float]:
    lat = []
    for _ in range(n):
        t0 = time.time()
        started = ce.app.send_task("stamp").get(timeout=30)["started"]
        lat.append((started - t0) * 1000)
    return lat


async def _edge_dispatch(sp: Spillover, tmp: Path, n: int) -> list[float]:
    import aiohttp

    lat = []
    async with edge_process(sp, tmp) as base, aiohttp.ClientSession() as http:
        for _ in range(n + 10):
            t0 = time.time()
            async with http.post(f"{base}/v1/apps/bench/stamp", data=b"{}") as r:
                body = await r.json()
            lat.append((body["started"] - t0) * 1000)
    return lat[10:]


# -- 2. throughput ---------------------------------------------------------------------------


async def throughput(tmp: Path, report: Report, n: int = 1000, reps: int = 2) -> None:
    # 16 slots as well: more tasks end at once, so their settles share txns (group commit).
    for label, seconds, slots in (("no-op", 0.0, SLOTS), ("10 ms", 0.01, SLOTS),
                                  ("no-op (16 slots a side)", 0.0, 16)):  # fmt: skip
        rate = report.row(f"throughput, {label} tasks, results fetched", "tasks/s", better="higher")
        cpu = report.row(f"server CPU per {label} task", "ms")
        if label == "no-op":
            cpu.note = ("both sides submit from the benchmark's process: Spillover straight to "
                        "the queue (no edge), Celery by send_task; the edge's cost is in the "
                        "HTTP dispatch rows")  # fmt: skip
        for rep in range(reps):
            await _bursts(tmp / f"t{seconds}{slots}{rep}", rate, cpu, n, seconds, slots)


async def durable(tmp: Path, report: Report, n: int = 1000, reps: int = 2) -> None:
    """No-op throughput against a Celery that keeps what it acknowledged through a crash too:
    Redis fsyncs every write (broker and results) before answering, as etcd does each commit."""
    celery = "Celery durable (Redis appendfsync always)"
    rate = report.row(
        f"throughput, no-op tasks, results fetched, {celery}",
        "tasks/s",
        better="higher",
        note="Redis --appendonly yes --appendfsync always; Celery defaults otherwise (early ack)",
    )
    cpu = report.row(f"server CPU per no-op task, {celery}", "ms")
    for rep in range(reps):
        await _bursts(tmp / str(rep), rate, cpu, n, 0.0, SLOTS, durable=True)


async def _bursts(
    tmp: Path, rate: Row, cpu: Row, n: int, seconds: float, slots: int, durable: bool = False
) -> None:
    """One burst on each side, ``slots`` a side: tasks/s and server CPU per task."""
    sp = await Spillover(tmp / "s", slots).start()
    try:
        s_rate, s_cpu = await _spillover_burst(sp, n, seconds)
    finally:
        await sp.close()
    ce = Celery(tmp / "c", slots, durable=durable).start()
    try:
        c_rate, c_cpu = await asyncio.to_thread(_celery_burst, ce, n, seconds)
    finally:
        ce.close()
    rate.add(s_rate, c_rate)
    cpu.add(s_cpu, c_cpu)


async def _spillover_burst(sp: Spillover, n: int, seconds: float) -> tuple[float, float]:
    pids = sp.server_pids()
    cpu0, t0 = cpu_seconds(pids), time.perf_counter()
    await sp.burst(n, seconds)
    elapsed = time.perf_counter() - t0
    return n / elapsed, (cpu_seconds(pids) - cpu0) / n * 1000


def _celery_burst(ce: Celery, n: int, seconds: float) -> tuple[float, float]:
    pids = ce.server_pids()
    cpu0, t0 = cpu_seconds(pids), time.perf_counter()
    ce.burst(n, seconds)
    elapsed = time.perf_counter() - t0
    return n / elapsed, (cpu_seconds(pids) - cpu0) / n * 1000


# -- 3. head-of-line -------------------------------------------------------------------------

LONG, SHORT, N_SHORT = 10.0, 0.05, 30


def _mix() -> list[float]:
    """Two long tasks among thirty short ones: two of the four slots stay free throughout."""
    half = [SHORT] * (N_SHORT // 2)
    return [LONG, *half, LONG, *half]


async def hol(tmp: Path, report: Report, reps: int = 2) -> None:
    row = report.row(
        f"p99 wait of {SHORT * 1000:.0f} ms tasks among {LONG:.0f} s ones",
        "s",
        note="Celery: defaults (prefetch 4); tuned = prefetch 1 + acks_late",
    )
    tuned = report.row("the same, Celery tuned (prefetch 1, acks_late)", "s")
    # Celery as it is run on GPUs: a worker process per GPU, each with its own prefetch.
    single = report.row(
        "the same, 4 single-slot replicas / 4 Celery workers × -c 1",
        "s",
        note="Spillover: 4 replicas of replica_concurrency 1; Celery: 4 workers, -c 1 each, "
        "defaults (prefetch 4)",
    )
    settings: tuple[tuple[str, dict[str, Any]], ...] = (
        ("Celery (defaults)", {"concurrency": SLOTS}),
        (
            "Celery (prefetch 1, acks_late)",
            {"concurrency": SLOTS, "prefetch": 1, "acks_late": True},
        ),
        ("Celery (4 workers × -c 1)", {"concurrency": 1, "workers": SLOTS}),
    )
    for rep in range(reps):
        # the plot shows the last repetition
        report.waits["Spillover"] = await _spillover_mix(Spillover(tmp / f"h{rep}", SLOTS))
        report.waits["Spillover (4 replicas × 1 slot)"] = await _spillover_mix(
            Spillover(tmp / f"h1{rep}", 1, replicas=SLOTS)
        )
        for i, (label, kw) in enumerate(settings):
            ce = Celery(tmp / f"hc{rep}{i}", **kw).start()
            try:
                report.waits[label] = await asyncio.to_thread(_celery_mix, ce)
            finally:
                ce.close()
        p99 = {label: pct(waits, 0.99) for label, waits in report.waits.items()}
        row.add(p99["Spillover"], p99["Celery (defaults)"])
        tuned.add(p99["Spillover"], p99["Celery (prefetch 1, acks_late)"])
        single.add(p99["Spillover (4 replicas × 1 slot)"], p99["Celery (4 workers × -c 1)"])


async def _spillover_mix(sp: Spillover) -> list[float]:
    """The short tasks' waits in the mix, submitted at once."""
    await sp.start()
    try:
        records = []
        for i, s in enumerate(_mix()):
            t0 = time.time()  # before the submit, as Celery's side takes it before send_task
            records.append((s, t0, await sp.submit("work", {"key": str(i), "seconds": s})))
        waits = []
        for s, t0, r in records:
            res = await sp.result(r, timeout=120)
            if s == SHORT:
                waits.append(res["started"] - t0)
        return waits
    finally:
        await sp.close()


def _celery_mix(ce: Celery) -> list[float]:
    sent = []
    for i, s in enumerate(_mix()):
        sent.append((s, time.time(), ce.app.send_task("work", args=(str(i), s))))
    return [r.get(timeout=120)["started"] - t0 for s, t0, r in sent if s == SHORT]


# -- 4. worker loss --------------------------------------------------------------------------


async def loss(tmp: Path, report: Report, n: int = 40, run: float = 1.0) -> None:
    lost = report.row(
        f"tasks lost when the worker is SIGKILLed mid-run ({n} × {run:.0f} s)",
        "tasks",
        note="within 60 s",
    )
    twice = report.row("tasks run to completion twice", "tasks")
    with run_log() as log:
        sp = await Spillover(tmp / "l", SLOTS).start(runs_log=log)
        try:
            records = [await sp.submit("work", {"key": str(i), "seconds": run}) for i in range(n)]
            await asyncio.sleep(2.5)
            assert sp.agent is not None
            os.kill(sp.agent.pid, signal.SIGKILL)  # the agent; its replicas die with it
            sp.agent.wait()
            sp.start_agent()
            done = await asyncio.gather(*(sp.result(r, timeout=60) for r in records))
            s_lost = sum(d is None for d in done)
        finally:
            await sp.close()
        s_twice = _twice(log)
    notes = []
    c_lost = c_twice = 0.0
    settings: tuple[tuple[str, dict[str, Any]], ...] = (
        ("defaults", {}), ("acks_late", {"acks_late": True}),
    )  # fmt: skip
    for label, kw in settings:
        clog = tmp / f"runs-c-{label}.log"
        ce = Celery(tmp / f"lc{label}", SLOTS, **kw).start(runs_log=clog)
        try:
            got = await asyncio.to_thread(_celery_loss, ce, n, run)
        finally:
            ce.close()
        notes.append(f"Celery {label}: {n - got} lost, {_twice(clog)} twice")
        if label == "defaults":
            c_lost, c_twice = n - got, _twice(clog)
    lost.add(s_lost, c_lost)
    twice.add(s_twice, c_twice)
    lost.note += "; " + "; ".join(notes) + " (Redis visibility_timeout 3600 s)"


def _celery_loss(ce: Celery, n: int, run: float) -> int:
    sent = [ce.app.send_task("work", args=(str(i), run)) for i in range(n)]
    time.sleep(2.5)
    ce.kill_worker()
    ce.start_worker()
    got = 0
    deadline = time.monotonic() + 60
    for r in sent:
        try:
            r.get(timeout=max(0.1, deadline - time.monotonic()))
            got += 1
        except Exception:
            pass
    return got


def _twice(log: Path) -> int:
    if not log.exists():
        return 0
    keys = [k for k in log.read_text().split() if k]
    return len(keys) - len(set(keys))


# -- 5. memory -------------------------------------------------------------------------------


async def memory(tmp: Path, report: Report, seconds: float = 4.0, reps: int = 2) -> None:
    row = report.row(
        f"RSS serving the torch demo model at concurrency {SLOTS}",
        "MiB",
        note="Spillover: one replica; Celery: prefork worker, all processes",
    )
    single = report.row("RSS at concurrency 4 ÷ RSS at concurrency 1", "×")
    for rep in range(reps):
        peaks = {slots: await _replica_peak(tmp / f"m{rep}{slots}", slots, seconds)
                 for slots in (1, SLOTS)}  # fmt: skip
        ce = Celery(tmp / f"mc{rep}", SLOTS, model=True).start()
        try:
            assert ce.worker is not None
            celery_peak = await _peak(
                functools.partial(asyncio.to_thread, _celery_round, ce), ce.worker.pid, 1, seconds
            )
        finally:
            ce.close()
        row.add(peaks[SLOTS], celery_peak)
        single.add(peaks[SLOTS] / peaks[1])


BODY = {"inputs": [[0.1 * i] * 16 for i in range(64)]}


def _celery_round(ce: Celery) -> None:
    """One task per worker process, all at once, from one thread (Celery's result consumer is
    not thread-safe: concurrent ``get()`` calls from several threads hang)."""
    sent = [ce.app.send_task("predict", args=(BODY["inputs"],)) for _ in range(SLOTS)]
    for r in sent:
        r.get(timeout=60)


async def _replica_peak(tmp: Path, slots: int, seconds: float) -> float:
    """Peak RSS of the replica processes (not the agent) under ``slots`` busy clients."""
    sp = await Spillover(tmp, slots).start(handler="spillover.demo.app:Model")
    try:
        call = functools.partial(sp.call, "predict", BODY)
        return await _peak(call, sp.agent.pid, slots, seconds, exclude=sp.agent.pid)
    finally:
        await sp.close()


async def _peak(
    call: Callable[[], Awaitable[Any]],
    root: int,
    clients: int,
    seconds: float,
    exclude: int | None = None,
) -> float:
    stop = time.monotonic() + seconds
    peak = 0.0

    async def client() -> None:
        while time.monotonic() < stop:
            await call()

    async def sample() -> None:
        nonlocal peak
        while time.monotonic() < stop:
            pids = [p for p in tree(root) if p != exclude]
            peak = max(peak, rss_mib(pids))
            await asyncio.sleep(0.05)

    await asyncio.gather(sample(), *(client() for _ in range(clients)))
    return peak


# -- 4. spillover -----------------------------------------------------------------------------

REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")


def _skewed(n: int) -> list[str]:
    """Homes of ``n`` arrivals, 70/20/10 over the three regions, interleaved."""
    weights = (7, 2, 1)
    pattern = [r for r, w in zip(REGIONS, weights, strict=True) for _ in range(w)]
    return [pattern[i % len(pattern)] for i in range(n)]


async def spillover(
    tmp: Path, report: Report, n: int = 60, run: float = 1.0, reps: int = 2
) -> None:
    """Three regions of 2 slots each; 60 one-second tasks arriving 70/20/10. Ideal makespan =
    total work / total capacity = 60 × 1 s / 6 = 10 s."""
    ideal = n * run / (2 * len(REGIONS))
    span = report.row(
        "skewed 3-region makespan ÷ ideal (70/20/10, equal capacity)",
        "×",
        note=f"ideal {ideal:.0f} s; Celery: one queue per region, a worker each",
    )
    wait = report.row("skewed 3-region p99 wait", "s")
    for rep in range(reps):
        sp = await Spillover(tmp / f"sp{rep}", 2, regions=REGIONS).start()
        try:
            t0 = time.time()
            sent = [
                (await sp.submit("work", {"key": str(i), "seconds": run}, home=home), time.time())
                for i, home in enumerate(_skewed(n))
            ]
            done = [(await sp.result(r, timeout=120), at) for r, at in sent]
            finished = time.time()
            s_waits = [d["started"] - at for d, at in done]
        finally:
            await sp.close()
        ce = Celery(tmp / f"sc{rep}", 2, workers=0).start()
        try:
            for region in REGIONS:
                ce.start_worker(queue=region)
            c_span, c_waits = await asyncio.to_thread(_celery_skew, ce, n, run)
        finally:
            ce.close()
        span.add((finished - t0) / ideal, c_span / ideal)
        wait.add(pct(s_waits, 0.99), pct(c_waits, 0.99))


def _celery_skew(ce: Celery, n: int, run: float) -> tuple[float, list[float]]:
    t0 = time.time()
    sent = [
        (ce.app.send_task("work", args=(str(i), run), queue=home), time.time())
        for i, home in enumerate(_skewed(n))
    ]
    waits = [r.get(timeout=300)["started"] - at for r, at in sent]
    return time.time() - t0, waits


# -- 7. scale-up -----------------------------------------------------------------------------


async def scaleup(tmp: Path, report: Report, reps: int = 3) -> None:
    row = report.row(
        "scale-up: backlog appears → a second replica serving",
        "s",
        note="Celery: what KEDA's Redis scaler defaults imply (pollingInterval 30 s: "
        "0–30 s, 15 s on average, before any pod starts), not a measurement",
    )
    for rep in range(reps):
        sp = Spillover(tmp / f"s{rep}", 1, max_replicas=3, cooldown=60)
        await sp.start(autoscale=True)
        try:
            t0 = time.monotonic()
            for i in range(8):
                await sp.submit("work", {"key": str(i), "seconds": 2.0})
            await sp.serving(2, timeout=60)
            row.add(time.monotonic() - t0, 15.0)
        finally:
            await sp.close()


BENCHES: dict[str, Callable[[Path, Report], Awaitable[None]]] = {
    "dispatch": dispatch,
    "throughput": throughput,
    "durable": durable,
    "hol": hol,
    "spillover": spillover,
    "loss": loss,
    "memory": memory,
    "scaleup": scaleup,
    "payload": payload,
    "overload": overload,
    "backlog": backlog,
    "client": client,
    "profile": profile,
    "hotpath": hotpath,
}
SPILLOVER_ONLY = frozenset({"client"})  # no Celery side: nothing to install for them


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def as_json(report: Report) -> str:
    return json.dumps([r.__dict__ for r in report.rows], indent=1)
