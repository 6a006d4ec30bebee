import subprocess

import pytest

from benchmarks.hotpath import BEFORE, FIGURES, REPO, table


def run(**figures: float) -> dict[str, float]:
    return {key: figures.get(key, 1.0) for key, _, _ in FIGURES}


def test_the_table_has_medians_ratios_spreads_and_the_server_total() -> None:
    runs = {
        "before": [run(agent=2.0), run(agent=2.2), run(agent=1.8)],
        "after": [run(agent=1.5), run(agent=1.6), run(agent=1.4)],
    }
    lines = table(runs)
    agent = next(line for line in lines if "the agent" in line)
    assert "| 2.00 | 1.50 | 0.75 | 1.80–2.20; 1.40–1.60 |" in agent
    total = lines[-1]
    assert total.startswith("| server CPU per no-op task") and "| 4.00 | 3.50 | 0.88 |" in total


def test_the_tree_before_the_levers_is_in_the_history() -> None:
    """``spillover bench hotpath`` builds it from git: a rewritten history must move BEFORE."""
    shallow = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--is-shallow-repository"],
                             capture_output=True, text=True)  # fmt: skip
    if shallow.stdout.strip() != "false":
        pytest.skip("not a full clone of the repository")
    kind = subprocess.run(["git", "-C", str(REPO), "cat-file", "-t", BEFORE],
                          capture_output=True, text=True)  # fmt: skip
    assert kind.stdout.strip() == "commit"
