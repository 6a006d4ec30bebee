"""The autoscaler's time windows: per-second buckets, frozen, bounded however often fed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.windows import Window


def test_average_over_the_window_or_its_last_seconds() -> None:
    w = Window(6)
    for t in range(10):
        w = w.record(t, t)
    assert w.average(9) == 6.5  # 4..9: older seconds fell out
    assert w.average(9, last=2) == 8.5
    assert w.average(20) == 0.0  # nothing recorded in the last six seconds
    assert Window(6).average(0) == 0.0


def test_a_second_fed_several_times_counts_once_as_its_mean() -> None:
    w = Window(60).record(0.1, 10).record(0.6, 20).record(1.0, 0)
    assert w.average(1) == (15 + 0) / 2


def test_slope_is_the_change_per_second_across_the_window() -> None:
    w = Window(60)
    for t, q in enumerate([0, 0, 3, 6, 9]):
        w = w.record(t, q)
    assert w.slope(4) == 9 / 4
    assert w.slope(4, last=3) == 3.0  # seconds 2..4
    assert Window(60).record(0, 5).slope(0) == 0.0  # one second says nothing about a trend


def test_record_returns_a_new_window() -> None:
    w = Window(6)
    assert w.record(0, 1) != w and w.buckets == ()


@given(st.lists(st.floats(0, 1000), min_size=1, max_size=300), st.integers(1, 20))
def test_bounded_by_its_span_however_often_it_is_fed(values: list[float], per_second: int) -> None:
    w = Window(6)
    for i, v in enumerate(values):
        w = w.record(i / per_second, v)
    assert len(w.buckets) <= 6
    assert min(values) - 1e-6 <= w.average((len(values) - 1) / per_second) <= max(values) + 1e-6
