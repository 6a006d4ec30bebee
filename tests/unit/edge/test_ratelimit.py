"""Token buckets with a fake clock; hypothesis for the bound over every window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.ratelimit import Bucket, Buckets, edge_share


def test_a_burst_then_the_rate() -> None:
    bucket, allowed = Bucket.full(100, 0.0), 0
    for _ in range(150):
        bucket, wait = bucket.take(50, 100, 0.0)
        allowed += wait == 0
    assert allowed == 100
    assert wait == pytest.approx(1 / 50)  # the next token comes in 20 ms
    bucket, wait = bucket.take(50, 100, 0.02)
    assert wait == 0
    assert bucket.full_at(50, 100) == pytest.approx(0.02 + 100 / 50)


def test_a_clock_that_steps_back_adds_nothing() -> None:
    bucket, _ = Bucket.full(1, 10.0).take(1, 1, 10.0)
    _, wait = bucket.take(1, 1, 5.0)
    assert wait == pytest.approx(1.0)


@given(
    rate=st.floats(0.1, 1000),
    burst=st.floats(1, 500),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_t_over_any_window(
    rate: float, burst: float, gaps: list[float]
) -> None:
    bucket, now, taken = Bucket.full(burst, 0.0), 0.0, []
    for gap in gaps:
        now += gap
        bucket, wait = bucket.take(rate, burst, now)
        if wait == 0:
            taken.append(now)
        else:
            assert wait > 0 and bucket.take(rate, burst, now + wait * 1.000001)[1] == 0
    for i, start in enumerate(taken):
        for j in range(i, len(taken)):
            assert j - i + 1 <= burst + rate * (taken[j] - start) + 1e-6


def test_each_of_n_edges_allows_its_share_and_at_least_one_at_once() -> None:
    assert edge_share(50, 100, 4) == (12.5, 25.0)
    assert edge_share(50, 100, 0) == (50, 100)  # before any heartbeat is seen: this edge alone
    assert edge_share(10, 2, 4) == (2.5, 1.0)


def test_buckets_forget_refilled_keys_and_stay_bounded() -> None:
    buckets = Buckets(max_size=3)
    assert buckets.take("a", 1, 2, now=0.0) == 0  # a: 1 token left, full again at t=1
    assert buckets.take("b", 1, 2, now=0.5) == 0
    assert len(buckets) == 2
    buckets.take("c", 1, 2, now=1.2)  # a is full again: the same as no bucket
    assert len(buckets) == 2
    for name in "defg":
        buckets.take(name, 0.001, 5, now=2.0)
    assert len(buckets) == 3
    # An evicted key starts over from a full bucket; a kept one goes on where it was.
    assert [buckets.take("g", 0.001, 5, now=2.0) for _ in range(4)] == [0, 0, 0, 0]
    assert buckets.take("g", 0.001, 5, now=2.0) > 0
