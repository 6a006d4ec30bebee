"""An app's load, one pure function for the heartbeat and the autoscaler; the rate window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.placement import ClaimRules, ReadyEntry
from regional.load import Rate, ReplicaCounts, app_load
from tests.factories import task

COUNTS = ReplicaCounts(processes=3, live=2, starting=1, ready=2, desired=3, slots=8, busy_slots=5)


def entry(partition: str, created_at: float) -> ReadyEntry:
    record = task(partition, now=created_at)
    return ReadyEntry(record.id.encode(), 1, record)


def test_the_heartbeat_and_the_autoscaler_read_the_same_load() -> None:
    now = 1000.0
    entries = [
        entry("us-east-1", now - 3),  # home
        entry("eu-west-1", now - 2),  # waited past spillover_after: may be taken here
        entry("eu-west-1", now - 0.1),  # not yet
        entry("ap-south-1", now - 0.2),  # its home region is down: at once
    ]
    rules = ClaimRules("us-east-1", spillover_after=1.0, down_regions=frozenset({"ap-south-1"}))
    load = app_load("demo", COUNTS, entries, rules, now, requests_per_second=2.5)
    assert (load.queued, load.queued_home, load.oldest_wait) == (3, 2, 3.0)
    beat, snap = load.heartbeat(), load.snapshot()
    assert (beat.queue_depth, beat.oldest_wait_ms) == (snap.queued, snap.oldest_wait * 1000)
    assert beat.busy_slots == snap.busy_slots == 5
    assert beat.requests_per_second == snap.requests_per_second == 2.5
    # The heartbeat counts every process (draining ones too); the policy the live ones.
    assert (beat.replicas, beat.ready_replicas, beat.slots) == (4, 2, 8)
    assert (snap.replicas, snap.starting) == (3, 1)


def test_the_heartbeat_carries_the_spillover_flows_but_not_idle_ones() -> None:
    rules = ClaimRules("us-east-1")
    flows = {"eu-west-1": 1.234, "ap-south-1": 0.0}
    load = app_load("demo", COUNTS, [], rules, 1000.0, 1.234, flows)
    assert load.heartbeat().spilled_in == {"eu-west-1": 1.23}


def test_nothing_queued_is_no_wait() -> None:
    load = app_load("demo", COUNTS, [], ClaimRules("us-east-1"), 5.0, 0.0)
    assert (load.queued, load.oldest_wait, load.heartbeat().oldest_wait_ms) == (0, 0.0, 0.0)


def test_the_rate_counts_the_last_window_and_reading_it_resets_nothing() -> None:
    rate = Rate(window=1.0, buckets=10)
    for t in (100.05, 100.55):
        rate.record(t, n=10)  # 20 starts within one second
    assert rate.per_second(100.99) == rate.per_second(100.99) == 20.0
    assert rate.per_second(101.3) == 10.0  # the first ten have left the window
    assert rate.per_second(101.7) == 0.0


@given(st.lists(st.floats(0, 50), max_size=200))
def test_the_rate_never_keeps_more_than_its_buckets(times: list[float]) -> None:
    rate = Rate(window=1.0, buckets=10)
    for t in sorted(times):
        rate.record(t)
    assert len(rate._counts) <= 11
    assert rate.per_second(max(times, default=0.0)) <= len(times)
