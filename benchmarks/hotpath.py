"""``spillover bench hotpath``: issue 17's levers, before and after, in one run. The tree of
``BEFORE`` (main's last commit without them) and this tree are each measured by their own code,
in a child process of their own, one after the other and again, so both see the same machine.

A lever saves CPU in one process and not another, so each run reports the CPU split by process
(``profile.py``'s measure: the store, the agent, the replica, the submitting client) over the
throughput row's burst, the burst's rate, and the idle dispatch latency (submit → handler start,
straight to the queue, one task at a time)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks.report import Report

REPO = Path(__file__).resolve().parents[1]
BEFORE = "ed27f7d"  # main before the levers: one call per task to the replica, and so on
HEADING = f"The hot path before and after issue 17's levers (this tree against {BEFORE})"
FIGURES = (  # (key, what it is, unit)
    ("store", "CPU per no-op task: the store (etcd)", "ms"),
    ("agent", "CPU per no-op task: the agent", "ms"),
    ("host", "CPU per no-op task: the replica", "ms"),
    ("client", "CPU per no-op task: the submitting client", "ms"),
    ("rate", "throughput of the burst, no-op tasks, results fetched", "tasks/s"),
    ("dispatch", "dispatch p50 (submit → handler start, idle)", "ms"),
)

# Runs in the tree being measured, with that tree's code (only names both trees have).
CHILD = """
import asyncio, json, statistics, sys, time
from pathlib import Path
from benchmarks.profile import _measure, _spillover_pids
from benchmarks.report import SLOTS
from benchmarks.sides import Spillover

async def main(tmp, n):
    Path(tmp).mkdir(parents=True)
    sp = await Spillover(Path(tmp), SLOTS).start()
    try:
        await sp.burst(200)
        started = time.monotonic()
        out = await _measure(_spillover_pids(sp), sp.burst(n), n)
        out["rate"] = n / (time.monotonic() - started)
        lat = []
        for _ in range(200):
            t0 = time.time()
            lat.append((float((await sp.call("stamp", {}))["started"]) - t0) * 1000)
        out["dispatch"] = statistics.median(lat)
    finally:
        await sp.close()
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def hotpath(tmp: Path, report: Report, n: int = 2000, reps: int = 3) -> None:
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    with checkout(BEFORE) as before:
        for rep in range(reps):
            runs["before"].append(await _measure_tree(before, tmp / f"b{rep}", n))
            runs["after"].append(await _measure_tree(REPO, tmp / f"a{rep}", n))
    report.sections[HEADING] = table(runs)


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The tree of ``ref``, with its gRPC code generated as a build would; removed afterwards.
    Outside the benchmark's private temporary directory: replicas run as their app's user
    (the agent runs as root) and import the tree's code."""
    from hatch_build import generate

    tree = Path(tempfile.mkdtemp(prefix="spillover-before-"))
    try:
        tree.chmod(0o755)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        generate(tree)
        yield tree
    finally:
        shutil.rmtree(tree, ignore_errors=True)


async def _measure_tree(tree: Path, tmp: Path, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # agents and replicas inherit it
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(tmp), str(n),
        cwd=tree, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"measuring {tree} failed (exit {child.returncode})")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def table(runs: dict[str, list[dict[str, float]]]) -> list[str]:
    """Markdown: each figure's median before and after, the ratio and both spreads."""
    n = len(runs["after"])
    lines = [
        f"Medians of {n} runs a side, alternating; `spillover bench hotpath` measures both trees.",
        "",
        "| figure | unit | before | after | after ÷ before | spread (before; after) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for key, figure, unit in FIGURES:
        b = [r[key] for r in runs["before"]]
        a = [r[key] for r in runs["after"]]
        mb, ma = statistics.median(b), statistics.median(a)
        spread = f"{min(b):.2f}–{max(b):.2f}; {min(a):.2f}–{max(a):.2f}"
        lines.append(f"| {figure} | {unit} | {mb:.2f} | {ma:.2f} | {ma / mb:.2f} | {spread} |")
    server = ("store", "agent", "host")
    total_b = statistics.median(sum(r[k] for k in server) for r in runs["before"])
    total_a = statistics.median(sum(r[k] for k in server) for r in runs["after"])
    lines.append(
        f"| server CPU per no-op task (store + agent + replica) | ms | {total_b:.2f} | "
        f"{total_a:.2f} | {total_a / total_b:.2f} | |"
    )
    return lines
