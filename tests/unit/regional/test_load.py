"""An app's load, one pure function for the heartbeat and the autoscaler; the rate window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.autoscaler import Decision
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
    load = app_load("demo", COUNTS, entries, [], rules, now, requests_per_second=2.5)
    assert (load.queued, load.oldest_wait) == (3, 3.0)
    beat, snap = load.heartbeat(), load.snapshot()
    assert (beat.queue_depth, beat.oldest_wait_ms) == (3, 3000.0)
    assert beat.queued_home == snap.queued_home == 1
    assert beat.busy_slots == snap.busy_slots == 5
    assert beat.requests_per_second == snap.requests_per_second == 2.5
    # The heartbeat counts every process (draining ones too); the policy the live ones.
    assert (beat.replicas, beat.ready_replicas, beat.slots) == (4, 2, 8)
    assert (snap.replicas, snap.starting) == (3, 1)


def test_a_region_sizes_for_its_own_backlog_a_down_regions_is_an_orphan() -> None:
    """Every region may take a down region's tasks at once, but only one adopts its backlog
    (federation/absorb.py): here they are ``orphans``, not ``queued_home``, and the policy's
    wait is the oldest of the region's own tasks."""
    now = 1000.0
    entries = [entry("us-east-1", now - 1), entry("ap-south-1", now - 9),
               entry("ap-south-1", now - 4)]  # fmt: skip
    rules = ClaimRules("us-east-1", down_regions=frozenset({"ap-south-1"}))
    load = app_load("demo", COUNTS, entries, [], rules, now, 0.0)
    snap = load.snapshot()
    assert (load.queued, load.oldest_wait) == (3, 9.0)  # what the region may take: all three
    assert (snap.queued_home, snap.oldest_wait) == (1, 1.0)
    assert load.orphans == {"ap-south-1": 2}


def test_others_and_pinned_tasks_are_counted_apart() -> None:
    """Of the running tasks, those homed elsewhere (the heartbeat's ``busy_by_home``, the
    policy's ``busy_foreign``) and those no other region may run (hard-pinned here, or of an app
    placed here alone); of the queue, the pinned ones."""
    now, us = 1000.0, "us-east-1"
    rules = ClaimRules(us, app_regions=(us, "eu-west-1"))
    running = [
        task("eu-west-1", now=now), task("eu-west-1", now=now), task("ap-south-1", now=now),
        task(us, now=now, allowed_regions=(us,)), task(us, now=now),
        task(us, now=now, allowed_regions=(us, "eu-west-1")),  # eu-west-1 may take it
    ]  # fmt: skip
    queued = [entry(us, now - 1), ReadyEntry(b"k", 1, task(us, now=now, allowed_regions=(us,)))]
    load = app_load("demo", COUNTS, queued, running, rules, now, 0.0)
    snap, beat = load.snapshot(), load.heartbeat()
    assert beat.busy_by_home == {"ap-south-1": 1, "eu-west-1": 2}
    assert (snap.busy_slots, snap.busy_foreign, snap.busy_pinned) == (5, 3, 1)
    assert (snap.queued_home, snap.queued_pinned) == (2, 1)
    alone = ClaimRules(us, app_regions=(us,))  # placed in one region: every task is pinned
    assert app_load("demo", COUNTS, queued, running, alone, now, 0.0).snapshot().busy_pinned == 2


def test_runs_and_slots_counted_apart_never_exceed_the_busy_slots() -> None:
    """A run frees its slot as its outcome comes in: for a moment the runs may outnumber the
    busy slots; the policy never sees more foreign or pinned tasks than busy slots."""
    now, us = 1000.0, "us-east-1"
    running = [task("eu-west-1", now=now)] * 4 + [task(us, now=now, allowed_regions=(us,))] * 3
    snap = app_load("demo", COUNTS, [], running, ClaimRules(us), now, 0.0).snapshot()
    assert (snap.busy_slots, snap.busy_foreign, snap.busy_pinned) == (5, 4, 1)


def test_the_leaders_decision_goes_into_the_heartbeat() -> None:
    load = app_load("demo", COUNTS, [], [], ClaimRules("us-east-1"), 5.0, 0.0)
    beat = load.heartbeat(Decision(3, "absorb via eu-west-1", spare=2))
    assert (beat.scaling_reason, beat.spare_slots) == ("absorb via eu-west-1", 2)
    assert (load.heartbeat().scaling_reason, load.heartbeat().spare_slots) == (None, 0)


def test_the_heartbeat_carries_the_spillover_flows_but_not_idle_ones() -> None:
    rules = ClaimRules("us-east-1")
    flows = {"eu-west-1": 1.234, "ap-south-1": 0.0}
    load = app_load("demo", COUNTS, [], [], rules, 1000.0, 1.234, flows)
    assert load.heartbeat().spilled_in == {"eu-west-1": 1.23}


def test_nothing_queued_is_no_wait() -> None:
    load = app_load("demo", COUNTS, [], [], ClaimRules("us-east-1"), 5.0, 0.0)
    assert (load.queued, load.oldest_wait, load.heartbeat().oldest_wait_ms) == (0, 0.0, 0.0)
    assert load.snapshot().oldest_wait == 0.0


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
