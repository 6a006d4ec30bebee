"""``spillover chaos [all | NAME ...] [--short] [--out PATH]``: the reliability suite. Each
scenario starts a federation of real processes, drives load through its edges, injects a real
fault and counts what happened (``benchmarks/chaos/``). The full forms (every scenario: about 16
minutes on 2 cores) write ``docs/reliability.md``; ``--short`` runs the scaled-down forms that
``make test`` runs and prints the page without writing it unless ``--out`` is given. Exits 1 when
a row fails.

Run from the repository root (the workload app is imported from it)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from benchmarks.chaos.report import Described, Outcome, render
from benchmarks.chaos.scenarios import SCENARIOS, run

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="spillover chaos", description=__doc__)
    ap.add_argument("names", nargs="*", default=["all"], help=f"all, or: {' '.join(SCENARIOS)}")
    ap.add_argument("--short", action="store_true", help="the scaled-down forms (make test's)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where to write the page (default: docs/reliability.md, not with "
                         "--short)")  # fmt: skip
    args = ap.parse_args(argv)
    names = list(SCENARIOS) if args.names in (["all"], []) else args.names
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(unknown)}")
    out = args.out or (None if args.short else REPO / "docs" / "reliability.md")
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    started = time.monotonic()
    try:
        results = uvloop.run(_run(names, args.short))
    except asyncio.CancelledError:
        sys.exit("spillover chaos: stopped by SIGTERM (every process it started is stopped)")
    page = render(results, time.monotonic() - started, args.names or ["all"], args.short)
    if out is not None:
        out.write_text(page)
    print(page)
    if not all(o.passed for runs in results.values() for o in runs):
        sys.exit(1)


async def _run(names: list[str], short: bool) -> dict[Described, list[Outcome]]:
    # SIGTERM stops the run as Ctrl-C does: each rig's `finally` stops what it started.
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    results: dict[Described, list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="spillover-chaos-") as d:
        for name in names:
            scenario = SCENARIOS[name]
            runs = 1 if short else scenario.runs
            for i in range(runs):
                print(f"chaos {name} ({i + 1}/{runs})...", file=sys.stderr, flush=True)
                t0 = time.monotonic()
                outcome = await run(name, Path(d) / f"{name}-{i}", short)
                verdict = "pass" if outcome.passed else "FAIL"
                print(f"chaos {name}: {verdict} in {time.monotonic() - t0:.0f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
                results.setdefault(scenario.about, []).append(outcome)
    return results


if __name__ == "__main__":
    main()
