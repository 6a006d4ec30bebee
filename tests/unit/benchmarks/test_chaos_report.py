"""The reliability page: one row per scenario with its counts, runs and verdict; the criteria
below."""

from __future__ import annotations

from collections import Counter

from benchmarks.chaos.report import Described, Outcome, render


def test_rows_sum_the_runs_and_a_failed_criterion_fails_the_row() -> None:
    kill = Described(1, "kill", "replicas killed", "Kills things.", "the longest stall.")
    sse = Described(12, "sse", "a long event stream", "Follows a stream.", "—")
    a = Outcome(submitted=10, acknowledged=10, succeeded=9, failed=Counter(replica_lost=1),
                run_twice=2, recover=1.5)  # fmt: skip
    a.check("0 acknowledged lost", True, "0 lost")
    b = Outcome(submitted=10, acknowledged=10, succeeded=10, recover=2.5)
    b.check("0 acknowledged lost", True, "0 lost")
    s = Outcome(submitted=2, acknowledged=2, succeeded=2)
    s.check("the quiet stream carries the final state", False, "missing")
    page = render({kill: [a, b], sse: [s]}, 120.0, ["all"], short=False)
    assert "| 1 | replicas killed | 2 | 20 | 20 | 19 | 1 replica_lost | 0 | 2 | 0 | 0 " \
           "| 2.0 (1.5–2.5) | pass |" in page  # fmt: skip
    assert "| 12 | a long event stream | 1 | 2 | 2 | 2 | 0 | 0 | 0 | 0 | 0 | — | **FAIL** |" in page
    assert "- **FAIL**: the quiet stream carries the final state (missing)" in page
    assert "Written by `spillover chaos all` on" in page and "(full forms)" in page
