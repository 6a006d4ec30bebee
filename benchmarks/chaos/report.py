"""What one run of a scenario found, and the page that ``spillover chaos`` writes from the runs of
every scenario (in the style of ``docs/benchmarks.md``: machine, settings, one row per scenario,
repetitions and spread)."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from benchmarks.__main__ import machine


@dataclass(frozen=True)
class Check:
    """One pass criterion of a scenario, judged on one run."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Outcome:
    """One run of one scenario. ``lost``: acknowledged (2xx) and not terminal by the deadline;
    ``run_twice``: tasks whose handler started more than once; ``committed_twice``: tasks with
    more than one terminal commit in etcd; ``foreign``: succeeded tasks whose committed result
    names no recorded run of theirs; ``server_errors``: answers ≥ 500 other than 503 that were
    not a task's own outcome."""

    submitted: int = 0
    acknowledged: int = 0
    succeeded: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # by error code
    lost: int = 0
    stuck: list[str] = field(default_factory=list)  # what each lost task was left as
    run_twice: int = 0
    ran_to_end_twice: int = 0
    committed_twice: int = 0
    foreign: int = 0
    server_errors: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # HTTP answers by status and code
    recover: float | None = None  # seconds; what it measures is the scenario's
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, ok, detail))

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass(frozen=True)
class Described:
    """What the page says about a scenario."""

    number: int
    name: str
    title: str
    does: str
    recover: str  # what its time to recover measures


def _sum(runs: list[Outcome], attr: str) -> int:
    return sum(getattr(o, attr) for o in runs)


def _codes(runs: list[Outcome]) -> str:
    failed: Counter[str] = Counter()
    for o in runs:
        failed.update(o.failed)
    return ", ".join(f"{n:,} {c}" for c, n in sorted(failed.items())) or "0"


def _recover(runs: list[Outcome]) -> str:
    xs = [o.recover for o in runs if o.recover is not None]
    if not xs:
        return "—"
    median = f"{statistics.median(xs):,.1f}"
    return median if len(xs) == 1 else f"{median} ({min(xs):,.1f}–{max(xs):,.1f})"


def render(
    results: dict[Described, list[Outcome]], seconds: float, names: list[str], short: bool
) -> str:
    form = "short forms" if short else "full forms"
    lines = [
        "# Reliability: every fault measured",
        "",
        f"Written by `spillover chaos {' '.join(names)}{' --short' if short else ''}` on "
        f"{time.strftime('%Y-%m-%d')} ({form}), in {seconds / 60:.1f} minutes; nothing on "
        "this page is copied from an earlier run.",
        "",
        f"**Machine**: {machine()}. Shared and noisy: times are generous bounds, counts are exact.",
        "",
        "**Settings**: every process is real and on loopback: etcd (1 member, or 3 where the "
        "scenario needs them; auto-compaction off so the whole history of a run can be read, "
        "heartbeat 50 ms, election timeout 500 ms), agents (`spillover region`) with their "
        "replica subprocesses, edges (`spillover edge`). The app is "
        "`benchmarks/chaos/workload.py`: each execution records a run id of its own and returns "
        "it in its result. Load goes through the edges over HTTP; every submit carries an "
        "`Idempotency-Key` and is retried, with the same key, after a 429/503 (`Retry-After`) "
        "or a broken connection. Faults are real: SIGKILL, SIGSTOP/SIGCONT, etcd members killed, "
        "blackholed (a TCP proxy that passes no byte), their connections reset, or out of space.",
        "",
        "**Columns**: *acknowledged* = answered 2xx with a task id; *lost* = acknowledged and "
        "not terminal by the scenario's deadline; *run twice* = the handler started more than "
        "once for one task (execution is at least once); *committed twice* = more than one "
        "terminal commit in etcd for one task (watched on the done index from the first "
        "revision, and counted there at the end); *5xx ≠ 503* = server errors that were not a "
        "task's own outcome. Counts are summed over the runs; the time to recover is the median "
        "with the spread over the runs.",
        "",
        "| # | scenario | runs | submitted | acknowledged | succeeded | failed (by code) | lost "
        "| run twice | committed twice | 5xx ≠ 503 | time to recover (s) | pass |",
        "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for d, runs in results.items():
        verdict = "pass" if all(o.passed for o in runs) else "**FAIL**"
        lines.append(
            f"| {d.number} | {d.title} | {len(runs)} | {_sum(runs, 'submitted'):,} "
            f"| {_sum(runs, 'acknowledged'):,} | {_sum(runs, 'succeeded'):,} | {_codes(runs)} "
            f"| {_sum(runs, 'lost'):,} | {_sum(runs, 'run_twice'):,} "
            f"| {_sum(runs, 'committed_twice'):,} | {_sum(runs, 'server_errors'):,} "
            f"| {_recover(runs)} | {verdict} |"
        )
    lines += ["", "## Each scenario: what it does, its criteria, what it found", ""]
    for d, runs in results.items():
        lines += [
            f"### {d.number}. {d.title} (`{d.name}`)",
            "",
            d.does,
            "",
            f"Time to recover: {d.recover}",
            "",
        ]
        last = runs[-1]
        for c in last.checks:
            mark = "pass" if all(_judged(o, c.name) for o in runs) else "**FAIL**"
            detail = f" ({c.detail})" if c.detail else ""
            lines.append(f"- {mark}: {c.name}{detail}")
        answers = Counter[str]()
        for o in runs:
            answers.update(o.answers)
        if answers:
            shown = ", ".join(f"{k}: {v:,}" for k, v in sorted(answers.items()))
            lines.append(f"- HTTP answers to submits: {shown}")
        twice = _sum(runs, "ran_to_end_twice")
        lines.append(
            f"- runs to the end twice: {twice:,}; results from no recorded run: "
            f"{_sum(runs, 'foreign'):,}"
        )
        lines += [f"- {n}" for n in last.notes]
        lines.append("")
    lines += [
        "## Running it",
        "",
        "From the repository root: `spillover chaos all` runs every scenario's full form (about "
        "16 minutes on 2 cores) and writes this page; `spillover chaos NAME ...` runs some "
        "(each section's heading names its scenario); `--short` runs the scaled-down forms "
        "(a few minutes for all) and prints the page without writing it unless `--out PATH` is "
        "given. The short forms run in `make test` as `tests/integration/test_chaos.py`, one "
        "test per scenario asserting its criteria. The suite's code is `benchmarks/chaos/`: "
        "`harness.py` (the federation of processes), `workload.py` (the app), `ledger.py` "
        "(what etcd and the run records say happened), `load.py` (the clients), one module per "
        "group of scenarios, `report.py` (this page). It exits 1 when a row fails.",
        "",
    ]
    return "\n".join(lines)


def _judged(o: Outcome, name: str) -> bool:
    return all(c.ok for c in o.checks if c.name == name)
