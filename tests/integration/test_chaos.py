"""The reliability suite's short forms (``spillover chaos --short``; ``benchmarks/chaos/``): a
federation of real processes per scenario, real faults, and each scenario's pass criteria, one
test per scenario."""

from __future__ import annotations

from pathlib import Path

import pytest
import uvloop

from benchmarks.chaos.scenarios import run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "name",
    ["kill", "zombie", "leader", "blackhole", "edge", "compaction", "region", "scalein",
     "poison", "overload", "nospace", "sse", "hostile"],
)  # fmt: skip
def test_scenario_meets_its_criteria(name: str, tmp_path: Path) -> None:
    o = uvloop.run(run(name, tmp_path, short=True))
    failed = [c for c in o.checks if not c.ok]
    assert o.checks and not failed, "; ".join(f"{c.name} ({c.detail})" for c in failed)
