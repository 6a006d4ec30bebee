"""``spillover bench [all | dispatch throughput durable hol loss memory ...]``: Spillover beside
Celery + Redis in one run, written to ``docs/benchmarks.md`` with a plot of short-task waits.
Installs what the Celery side needs (the ``bench`` extra, Debian's redis-server) when missing.

Run from the repository root (the benchmark handlers and the demo app are imported from it)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop

if TYPE_CHECKING:
    from benchmarks.report import Report

REPO = Path(__file__).resolve().parents[1]
FAILED = "Benchmarks that failed in this run (their rows are missing or partial)"


def install() -> None:
    spy = Path(sys.executable).parent / "py-spy"
    if (
        any(importlib.util.find_spec(m) is None for m in ("celery", "matplotlib"))
        or not spy.exists()
    ):
        print("installing the bench extra (celery[redis], matplotlib, py-spy)", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-e", f"{REPO}[bench]"], check=True
        )
    if shutil.which("redis-server") is None:
        print("installing Debian's redis-server", file=sys.stderr)
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env
        )


def _version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def machine() -> str:
    """CPUs, memory, kernel, Python and etcd: what every page of measurements starts with."""
    cpu = next(
        (line.split(":", 1)[1].strip()
         for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "?",
    )  # fmt: skip
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return (
        f"{os.cpu_count()} × {cpu}, {mem:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {_version(['etcd', '--version'])}, "
        f"{tmp_filesystem()}"
    )


def tmp_filesystem() -> str:
    """Where etcd's and Redis's files go in a run: on tmpfs no fsync reaches a disk, and the
    figures of durable writes mean little."""
    tmp = os.path.realpath(tempfile.gettempdir())
    mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    under = [(m, fs) for m, fs in mounts if tmp == m or tmp.startswith(m.rstrip("/") + "/")]
    fs = max(under, key=lambda x: len(x[0]))[1] if under else "?"
    warning = " (memory: no fsync reaches a disk)" if fs == "tmpfs" else ""
    return f"data files in {tmp} on {fs}{warning}"


def celery_side() -> str:
    try:
        celery = f"Celery {importlib.metadata.version('celery')}"
    except importlib.metadata.PackageNotFoundError:
        celery = "Celery not installed"
    return f"{_version(['redis-server', '--version'])}, {celery}"


def fmt(x: float | None, unit: str) -> str:
    if x is None:
        return "—"
    return f"{x:,.2f}" if unit in ("ms", "s", "×") else f"{x:,.0f}"


def render(report: Report, seconds: float, names: list[str], plot: str | None) -> str:
    lines = [
        "# Spillover beside Celery + Redis",
        "",
        f"Written by `spillover bench {' '.join(names)}` on {time.strftime('%Y-%m-%d')}, "
        f"in {seconds / 60:.1f} minutes; nothing on this page is copied from an earlier run.",
        "",
        f"**Machine**: {machine()}, {celery_side()}. Shared and noisy: read ratios, not third "
        "digits.",
        "",
        "**Settings** (equal on both sides): 4 worker slots — one Spillover replica with "
        "`replica_concurrency = 4` against one Celery prefork worker with `-c 4` — unless a "
        "row says otherwise (16 slots; 4 single-slot replicas against 4 workers × `-c 1`); "
        "loopback only; one etcd member and one redis-server (`--save '' --appendonly no`, "
        "but `--appendonly yes --appendfsync always` in the rows against durable Celery); "
        "Celery's Redis result backend on, results fetched; Spillover defaults, Celery "
        "defaults (prefetch multiplier 4, early ack) unless a row says otherwise. The "
        "workload (`benchmarks/probe.py`) is the same function on both sides, timed by its "
        "own clock.",
        "",
        "| figure | unit | Spillover | Celery + Redis | Spillover ÷ Celery | spread (S; C) "
        "| better |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in report.rows:
        s = statistics.median(r.spillover) if r.spillover else None
        c = statistics.median(r.celery) if r.celery else None
        ratio = f"{s / c:.2f}" if s is not None and c else "—"
        spread = "; ".join(
            f"{min(v):,.2f}–{max(v):,.2f}" if len(v) > 1 else "1 run"
            for v in (r.spillover, r.celery)
            if v
        )
        winner = "—"
        if s is not None and c is not None and s != c:
            spillover_wins = (s < c) == (r.better == "lower")
            winner = "Spillover" if spillover_wins else "**Celery**"
        lines.append(
            f"| {r.figure} | {r.unit} | {fmt(s, r.unit)} | {fmt(c, r.unit)} | {ratio} "
            f"| {spread} | {winner} |"
        )
        if r.note:
            lines.append(f"| ↳ {r.note} | | | | | | |")
    judged_targets = targets(report)
    if judged_targets:
        lines += ["", "## Targets (issues 7 and 17), judged on this run"]
    for issue, judged in judged_targets.items():
        lines += ["", f"{issue}:", "", *(f"- {t}" for t in judged)]
    for heading, body in report.sections.items():
        lines += ["", f"## {heading}", "", *body]
    if plot:
        lines += ["", f"![waits of the short tasks in the head-of-line mix]({plot})"]
    return "\n".join(lines) + "\n"


# Each issue's targets: (figure, target, met?) — the row whose figure is exactly ``figure``
# (a prefix would also match the variants: the 16-slot and durable throughput rows); met is
# given Spillover's and Celery's medians.
Target = tuple[str, str, Callable[[float, float], bool]]
HTTP50 = "dispatch p50 through the HTTP edge (Spillover) / apply_async"
HTTP99 = "dispatch p99 through the HTTP edge (Spillover) / apply_async"
NOOP = "throughput, no-op tasks, results fetched"
NOOP16 = "throughput, no-op (16 slots a side) tasks, results fetched"
TARGETS: dict[str, tuple[Target, ...]] = {
    "Issue 7": (
        (HTTP50, "HTTP dispatch p50 ≤ 5 ms", lambda s, c: s <= 5),
        (HTTP99, "HTTP dispatch p99 ≤ 15 ms", lambda s, c: s <= 15),
        (NOOP, "no-op throughput ≥ 1.5 × Celery", lambda s, c: s >= 1.5 * c),
        (
            "p99 wait of 50 ms tasks among 10 s ones",
            "no short task waits behind a long one while a slot is free "
            "(p99 short wait < 1 s, the long task's 10 s never shows)",
            lambda s, c: s < 1.0,
        ),
        (
            "skewed 3-region makespan ÷ ideal (70/20/10, equal capacity)",
            "skewed makespan ≤ 1.10 × ideal",
            lambda s, c: s <= 1.10,
        ),
        (
            "RSS at concurrency 4 ÷ RSS at concurrency 1",
            "RSS at concurrency N ≤ 1.1 × RSS at 1",
            lambda s, c: s <= 1.1,
        ),
        (
            "client overhead: spillover.Client ÷ bare aiohttp, per sync call",
            "client overhead per sync call ≤ 1.2 × a bare aiohttp request (issue 19)",
            lambda s, c: s <= 1.2,
        ),
        (
            "scale-up: backlog appears → a second replica serving",
            "scale-up ≤ 2 s + model load (the probe loads in ~0.15 s)",
            lambda s, c: s <= 2.15,
        ),
        (
            "overload: acknowledged tasks lost",
            "overload: no acknowledged task lost",
            lambda s, c: s == 0,
        ),
        (
            "overload: etcd db peak, % of its quota (target ≤ 50)",
            "overload: etcd db peak ≤ 50 % of its quota",
            lambda s, c: s <= 50,
        ),
        (
            "overload: seconds to healthy after the load stops (target ≤ 10)",
            "overload: healthy ≤ 10 s after the load stops",
            lambda s, c: s <= 10,
        ),
        (
            "backlog 1,000,000: agent RSS (target ≤ 200)",
            "1M queued: agent RSS ≤ 200 MiB",
            lambda s, c: s <= 200,
        ),
    ),
    "Issue 17 (hot path)": (
        (HTTP50, "HTTP dispatch p50 ≤ 1.0 × Celery's apply_async", lambda s, c: s <= c),
        (HTTP99, "HTTP dispatch p99 ≤ 1.0 × Celery's apply_async", lambda s, c: s <= c),
        (NOOP, "no-op throughput ≥ 1.0 × Celery at 4 slots a side", lambda s, c: s >= c),
        (NOOP16, "no-op throughput ≥ 1.5 × Celery at 16 slots a side", lambda s, c: s >= 1.5 * c),
        (
            "server CPU per no-op task",
            "server CPU per no-op task ≤ 1.0 × Celery's at 4 slots",
            lambda s, c: s <= c,
        ),
        (
            "server CPU per no-op (16 slots a side) task",
            "server CPU per no-op task ≤ 1.0 × Celery's at 16 slots",
            lambda s, c: s <= c,
        ),
        (
            f"{NOOP}, Celery durable (Redis appendfsync always)",
            "no-op throughput ≥ 2 × durable Celery's (Redis appendfsync always)",
            lambda s, c: s >= 2 * c,
        ),
        (
            "the same, 4 single-slot replicas / 4 Celery workers × -c 1",
            "head-of-line, 4 single-slot replicas beside 4 Celery workers × -c 1: "
            "short-task p99 wait below Celery's",
            lambda s, c: s < c,
        ),
    ),
}


def targets(report: Report) -> dict[str, list[str]]:
    """Each issue's targets whose rows this run measured, judged."""
    out = {
        issue: [j for t in table if (j := _judge(report, t))] for issue, table in TARGETS.items()
    }
    out["Issue 7"] = _backlog_target(report) + out["Issue 7"]
    return {issue: lines for issue, lines in out.items() if lines}


def _judge(report: Report, target: Target) -> str | None:
    figure, text, met = target
    row = next((r for r in report.rows if r.figure == figure), None)
    if row is None or not row.spillover:
        return None
    s = statistics.median(row.spillover)
    c = statistics.median(row.celery) if row.celery else 0.0
    verdict = "met" if met(s, c) else "**not met**"
    celery = f"; Celery {c:,.2f}, {s / c:.2f} ×" if row.celery and c else ""
    return f"{text}: {verdict} ({s:,.2f} {row.unit}{celery})"


def _backlog_target(report: Report) -> list[str]:
    """Dispatch at a 1M backlog against idle: a ratio of two rows (each depth has three)."""
    rows = {r.figure.split(":")[0]: r for r in report.rows
            if r.figure.startswith("backlog") and "dispatch p50" in r.figure}  # fmt: skip
    idle, deep = rows.get("backlog 0"), rows.get("backlog 1,000,000")
    if idle is None or deep is None or not idle.spillover or not deep.spillover:
        return []
    ratio = statistics.median(deep.spillover) / statistics.median(idle.spillover)
    verdict = "met" if ratio <= 1.5 else "**not met**"
    return [f"1M queued: dispatch p50 ≤ 1.5 × idle: {verdict} ({ratio:.2f} ×)"]


def plot_waits(waits: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, xs in waits.items():
        xs = sorted(xs)
        ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", label=label)
    ax.set_xscale("log")  # tenths of a second beside the 10 s of a task stuck behind a long one
    ax.set_xlabel("wait of a 50 ms task (s, log scale), two 10 s tasks in the mix")
    ax.set_ylabel("fraction of short tasks")
    ax.set_title("Head-of-line: short-task waits, 4 slots")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    from benchmarks.compare import BENCHES, SPILLOVER_ONLY

    ap = argparse.ArgumentParser(prog="spillover bench", description=__doc__)
    ap.add_argument("names", nargs="*", default=["all"], help=f"all, or: {' '.join(BENCHES)}")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = ap.parse_args(argv)
    names = list(BENCHES) if args.names in (["all"], []) else args.names
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    if set(names) - SPILLOVER_ONLY:
        install()
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    started = time.monotonic()
    try:
        report = uvloop.run(_run(names))
    except asyncio.CancelledError:
        sys.exit("spillover bench: stopped by SIGTERM (servers and workers closed)")
    plot = None
    if report.waits:
        png = args.out.with_name("benchmarks-waits.png")
        plot_waits(report.waits, png)
        plot = png.name
    args.out.write_text(render(report, time.monotonic() - started, names, plot))
    print(args.out.read_text())
    if FAILED in report.sections:
        sys.exit(1)


async def _run(names: list[str]) -> Report:
    from benchmarks.compare import BENCHES
    from benchmarks.report import Report

    report = Report()
    # SIGTERM stops the run as Ctrl-C does: each side's `finally` closes its servers and workers
    # (Python's default for SIGTERM would exit at once and leave Celery, Redis and etcd running).
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            print(f"bench {name}...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            try:
                await BENCHES[name](Path(d) / name, report)
            except Exception as e:  # one bench that breaks must not cost the others' figures
                traceback.print_exc()
                failed = report.sections.setdefault(FAILED, [])
                failed.append(f"- `{name}`: {type(e).__name__}: {str(e)[:300]}")
            print(f"bench {name}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    return report


if __name__ == "__main__":
    main()
