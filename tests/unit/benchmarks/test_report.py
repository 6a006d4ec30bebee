"""The benchmark page: medians, ratio, spread, and who wins — Celery too, when it does."""

from __future__ import annotations

from benchmarks.__main__ import render
from benchmarks.report import Report


def test_the_table_names_the_winner_either_way() -> None:
    report = Report()
    report.row("dispatch p50", "ms").add(3.0, 2.0)
    fast = report.row("throughput", "tasks/s", better="higher", note="results fetched")
    fast.add(300.0, 500.0)
    fast.add(320.0, 480.0)
    report.row("memory", "MiB").add(240.0, 1000.0)
    page = render(report, 60.0, ["all"], "plot.png")
    assert "| dispatch p50 | ms | 3.00 | 2.00 | 1.50 | 1 run; 1 run | **Celery** |" in page
    assert "| throughput | tasks/s | 310 | 490 | 0.63 | 300.00–320.00; 480.00–500.00 |" in page
    assert "| memory | MiB | 240 | 1,000 | 0.24 | 1 run; 1 run | Spillover |" in page
    assert "↳ results fetched" in page and "![" in page and "plot.png" in page
