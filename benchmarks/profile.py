"""``spillover bench profile``: where a no-op task's CPU goes, process by process, on both sides
(4 slots each, the throughput row's burst), and the agent's hottest frames from py-spy.

The split says which process to make cheaper: the store (etcd; Redis), the host that runs the
work (agent and replica; Celery's prefork worker), and the submitting client (in this process:
Spillover's queue client and its waiters; Celery's ``send_task`` and result fetches)."""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

from benchmarks.report import SLOTS, Report
from benchmarks.sides import Celery, Spillover, cpu_seconds, tree

PY_SPY = Path(sys.executable).parent / "py-spy"
TOP = 12  # frames listed
# Frames every sample of the agent's main thread has: the interpreter's entry and the loop's.
ENTRY = (
    "<frozen runpy>",
    "asyncio/runners.py",
    "uvloop/__init__.py",
    "regional/main.py",
    "Thread._bootstrap",
)


async def profile(tmp: Path, report: Report, n: int = 2000, reps: int = 2) -> None:
    store = report.row("CPU per no-op task: the store (etcd / Redis)", "ms")
    host = report.row("CPU per no-op task: the worker host (agent + replica / prefork)", "ms")
    agent = report.row("↳ of which the agent (Spillover)", "ms")
    client = report.row("CPU per no-op task: the submitting client", "ms")
    for rep in range(reps):
        sp = await Spillover(tmp / f"p{rep}", SLOTS).start()
        try:
            await sp.burst(200)  # warm: connections, the replica's first calls
            s = await _measure(_spillover_pids(sp), sp.burst(n), n)
        finally:
            await sp.close()
        ce = Celery(tmp / f"pc{rep}", SLOTS).start()
        try:
            assert ce.redis is not None
            cpids = {"store": [ce.redis.pid], "host": [p for w in ce.workers for p in tree(w.pid)]}
            await asyncio.to_thread(ce.burst, 200)  # warm, as Spillover's side
            c = await _measure(cpids, asyncio.to_thread(ce.burst, n), n)
        finally:
            ce.close()
        store.add(s["store"], c["store"])
        host.add(s["host"] + s["agent"], c["host"])
        agent.add(s["agent"])
        client.add(s["client"], c["client"])
    # The sampler takes CPU of its own: its run is an extra one, not among the figures above.
    report.sections["The agent's hottest frames (py-spy, a run of its own)"] = await _frames(
        tmp / "spy", n
    )


async def _frames(tmp: Path, n: int) -> list[str]:
    if not PY_SPY.exists():
        return [f"Not sampled: py-spy is not installed ({PY_SPY}; it is in the bench extra)."]
    sp = await Spillover(tmp, SLOTS).start()
    out = tmp / "agent.txt"
    try:
        await sp.burst(200)
        cmd = [str(PY_SPY), "record", "--pid", str(_spillover_pids(sp)["agent"][0]), "--format",
               "raw", "--rate", "250", "--nonblocking", "--function", "-o", str(out)]  # fmt: skip
        spy = await asyncio.create_subprocess_exec(
            *cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            await sp.burst(n)
        finally:
            if spy.returncode is None:
                spy.send_signal(signal.SIGINT)
            _, err = await spy.communicate()
    finally:
        await sp.close()
    if not out.exists():
        return [f"py-spy wrote no profile: {err.decode(errors='replace').strip()[-300:]}"]
    return top_frames(out.read_text(), TOP)


def _spillover_pids(sp: Spillover) -> dict[str, list[int]]:
    etcd = [m.process.pid for m in sp.etcd.members if m.process is not None]
    a = sp.agent.pid
    return {"store": etcd, "agent": [a], "host": [p for p in tree(a) if p != a]}


async def _measure(
    pids: dict[str, list[int]], burst: Awaitable[object], n: int
) -> dict[str, float]:
    """CPU ms per task of each group of processes, and of this process (the client)."""
    before = {k: cpu_seconds(v) for k, v in pids.items()}
    me = time.process_time()
    await burst  # a coroutine: it starts running here
    out = {k: (cpu_seconds(v) - before[k]) / n * 1000 for k, v in pids.items()}
    out["client"] = (time.process_time() - me) / n * 1000
    return out


def top_frames(collapsed: str, top: int) -> list[str]:
    """The frames with the most samples (inclusive), from py-spy's raw collapsed stacks
    (``frame;frame;... count`` per line), as Markdown table rows; the entry frames are left
    out. A frame's share includes what it calls."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            inclusive[frame] += int(count)
    rows = ["| share of the agent's samples | frame |", "|---:|---|"]
    for frame, c in inclusive.most_common():
        if any(e in frame for e in ENTRY):
            continue
        rows.append(f"| {c / total:.0%} | `{frame}` |")
        if len(rows) == top + 2:
            break
    return rows
