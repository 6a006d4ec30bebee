"""The scaling model's arithmetic: clusters are a ceiling under the headroom, 50,000 tasks/s
across three regions come out as docs/scaling.md says, and the page shows what the model prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import scaling_model as model

PAGE = Path(__file__).resolve().parents[3] / "docs" / "scaling.md"


def test_clusters_are_a_ceiling_under_the_headroom() -> None:
    assert model.needed(1_000, 1_000, headroom=1.0) == 1
    assert model.needed(1_001, 1_000, headroom=1.0) == 2
    assert model.needed(600, 1_000, headroom=0.6) == 1  # an exact fit stays one
    assert model.needed(601, 1_000, headroom=0.6) == 2
    assert model.needed(0, 1_000) == 1  # a region is never without its cluster


@given(
    rate=st.floats(1, 1e6),
    capacity=st.floats(10, 1e5),
    headroom=st.floats(0.1, 1.0),
)
def test_enough_clusters_and_not_one_more(rate: float, capacity: float, headroom: float) -> None:
    n = model.needed(rate, capacity, headroom)
    usable = capacity * headroom
    assert n * usable >= rate * (1 - 1e-9)
    assert n == 1 or (n - 1) * usable < rate


def test_fifty_thousand_tasks_a_second_across_three_regions() -> None:
    assert sum(model.SHARES.values()) == pytest.approx(1.0)
    assert model.per_cluster() == 895 * 4
    regions = model.plan(50_000)
    assert sum(r.rate for r in regions) == pytest.approx(50_000)
    assert [(r.name, r.clusters) for r in regions] == [
        ("us-east-1", 12),
        ("eu-west-1", 7),
        ("ap-south-1", 5),
    ]
    usable = model.per_cluster() * model.HEADROOM  # 2,148 tasks/s
    assert all(usable * (r.clusters - 1) < r.rate <= usable * r.clusters for r in regions)
    assert "| **all** | **50,000** | **24** | **72** | |" in model.render()


def test_the_limits_follow_from_the_inputs() -> None:
    rows = dict(model.limits(model.plan(50_000)))
    assert rows["edge processes (one core each)"] == "84"  # 50,000 / (1,000 x 0.6) = 83.3
    assert rows["agent processes, by their CPU alone"] == "117"  # 50,000 x 1.4 ms / 0.6 = 116.7
    assert rows["spillover claims per agent and app, us-east-1 ↔ eu-west-1"] == "250/s"  # 20/80 ms
    # Twice the rate, half the retention; 8 GiB x 0.7 at 2,000 tasks/s of 2,500 bytes kept.
    assert model.retention_held(4_000) == pytest.approx(model.retention_held(2_000) / 2)
    assert model.retention_held(2_000) == pytest.approx((8 << 30) * 0.7 / 5e6)


def test_the_page_shows_what_the_model_prints() -> None:
    assert model.render() in PAGE.read_text()
