"""The autoscaler's rules for a region alone, each with a fake clock (one tick per second, as the
leader runs). The federation's rules are in test_absorb.py."""

from __future__ import annotations

import itertools
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.appspec import ScalingSection
from federation.autoscaler import Decision, Snapshot, State, decide

# Every reason a decision may give: a fixed set, a region name at most (a metric label).
REASON = re.compile(
    r"steady|hold: cooldown|scale in: lower demand|scale in: carried by [a-z0-9-]+"
    r"|scale up: (stable demand|panic|queue time|from zero|pinned|min_replicas|buffer)"
    r"|absorb via [a-z0-9-]+"
)


def scaling(**kw: Any) -> ScalingSection:
    base: dict[str, Any] = {
        "replica_concurrency": 4, "scaling_target": 70, "min_replicas": 0, "max_replicas": 20,
        "cooldown": 30, "queue_time_threshold": 2.0,
    }  # fmt: skip
    return ScalingSection.model_validate({**base, **kw})


def snap(
    busy: int = 0, queued: int = 0, replicas: int = 1, wait: float = 0.0, started: float = 0.0,
    **kw: Any,
) -> Snapshot:  # fmt: skip
    return Snapshot(replicas=replicas, starting=kw.pop("starting", 0), busy_slots=busy,
                    queued_home=queued, oldest_wait=wait,
                    requests_per_second=started, **kw)  # fmt: skip


def run(
    loads: list[Snapshot], c: ScalingSection, state: State, start: float = 0.0
) -> tuple[list[Decision], State]:
    out = []
    for i, s in enumerate(loads):
        d, state = decide(s, c, state, start + i)
        assert REASON.fullmatch(d.reason), d.reason
        out.append(d)
    return out, state


def test_the_worked_example_demand_by_littles_law() -> None:
    # Tasks run 2 s (9 busy, 4.5 started a second); the queue grows 1 task/s, 5 to 10, over a
    # stable window of 6 s (cooldown 6). At 10 queued: (9 + 1 × 2) / 2.8 + 10 × 2 / 40 = 4.43
    # replicas, above 4 × 1.1 (the tolerance): 5. Before, 4.23 … 4.38 was noise around 4.
    c = scaling(cooldown=6)
    loads = [snap(busy=9, queued=5 + t, replicas=4, started=4.5) for t in range(6)]
    decisions, _ = run(loads, c, State(desired=4))
    assert [d.desired for d in decisions] == [4, 4, 4, 4, 4, 5]
    assert decisions[-1].reason == "scale up: stable demand"


def test_before_anything_ran_every_queued_task_is_a_slot() -> None:
    d, state = decide(snap(queued=14, replicas=0), scaling(), State(desired=0), 0.0)
    assert d.desired == 5 and state.service is None  # ceil(14 / 2.8), as KPA counts


def test_a_cold_start_does_not_keep_buying_while_the_backlog_grows() -> None:
    """8 tasks/s against 2 ready replicas (4 started a second, 2 s each): the queue grows 4/s
    while new replicas load. Counting the queue as slots would want (8 + 80) / 2.8 = 32
    replicas after 20 s; by rate the region wants (8 + 4 × 2) / 2.8 + 80 × 2 / 40 = 9.7."""
    c = scaling(max_replicas=40)
    _, state = run([snap(busy=4, replicas=2, started=2)] * 60, c, State(desired=2))
    desired = 2
    for t in range(21):
        s = snap(busy=8, queued=4 * t, replicas=desired, started=4, starting=desired - 2)
        d, state = decide(s, c, state, 60.0 + t)
        desired = d.desired
    assert 6 <= desired <= 12


def test_a_jump_scales_up_at_once_through_the_panic_window() -> None:
    c = scaling()
    calm, state = run([snap(busy=2, started=1)] * 60, c, State(desired=1))
    assert {d.desired for d in calm} == {1}
    d, _ = decide(snap(busy=4, queued=36, started=2), c, state, 60.0)
    # The minute barely moved (3 replicas); the last 6 s saw the queue jump 36 in 5 s:
    # (2.3 busy + 7.2/s × 2 s) / 2.8 + 36 × 2 / 40 = 7.8, twice what is ready.
    assert d.desired == 8 and d.reason == "scale up: panic"


def test_an_old_task_forces_one_more_replica_when_none_is_on_its_way() -> None:
    c = scaling(scaling_target=100)
    d, _ = decide(snap(busy=3, queued=1, wait=1.0), c, State(desired=1), 0.0)
    assert d.desired == 1
    d, state = decide(snap(busy=3, queued=1, wait=2.5), c, State(desired=1), 0.0)
    assert d.desired == 2 and d.reason == "scale up: queue time"
    loading = snap(busy=3, queued=1, wait=5.0, replicas=2, starting=1)
    d, _ = decide(loading, c, state, 1.0)
    assert d.desired == 2  # one is on its way: wait for it rather than add one per tick


def test_scale_from_zero_for_a_task_homed_here() -> None:
    d, _ = decide(snap(queued=1, replicas=0), scaling(), State(desired=0), 0.0)
    assert d.desired == 1


def burst(c: ScalingSection) -> tuple[int, State]:
    """A calm half minute at one replica (tasks of 2 s), then 60 queued at 30 s: a scale-out."""
    _, state = run([snap(busy=2, started=1)] * 30, c, State(desired=1))
    d, state = decide(snap(busy=4, queued=60, started=2), c, state, 30.0)
    assert d.reason == "scale up: panic" and state.changed_at == 30
    return d.desired, state


def test_scale_in_waits_a_cooldown_after_a_scale_out_then_steps_one_at_a_time() -> None:
    c = scaling(cooldown=30)
    top, state = burst(c)
    cold, _ = run([snap(busy=0, replicas=top)] * 60, c, state, start=31)
    desired = [d.desired for d in cold]
    # Nothing within the cooldown of the scale-out at 30 s; then replicas follow the demand
    # averaged over the last cooldown down, one per tick at most, to the floor.
    assert set(desired[:29]) == {top} and {d.reason for d in cold[:29]} == {"hold: cooldown"}
    assert all(a - b in (0, 1) for a, b in itertools.pairwise(desired))
    assert desired[-1] == 0 and "scale in: lower demand" in {d.reason for d in cold}


def test_a_scale_out_restarts_the_cooldown() -> None:
    c = scaling(cooldown=30)
    top, state = burst(c)
    _, state = run([snap(busy=0, replicas=top)] * 40, c, state, start=31)
    blip, state = run([snap(busy=4, queued=200, replicas=top, started=2)], c, state, start=71)
    assert blip[0].desired > top and state.changed_at == 71
    after, _ = run([snap(busy=0, replicas=blip[0].desired)] * 29, c, state, start=72)
    assert {d.desired for d in after} == {blip[0].desired}
    assert {d.reason for d in after} == {"hold: cooldown"}


def test_never_below_what_running_tasks_occupy_alone() -> None:
    c = scaling(scaling_target=100, cooldown=0)
    _, state = run([snap(busy=0, replicas=4)] * 120, c, State(desired=4))
    d, _ = decide(snap(busy=12, replicas=4), c, state, 200.0)
    assert d.desired >= 3  # 12 running tasks need 3 replicas of 4


def test_scaling_buffer_min_and_max() -> None:
    d, _ = decide(snap(busy=0), scaling(scaling_buffer=2), State(desired=0), 0.0)
    assert (d.desired, d.reason) == (2, "scale up: buffer")  # warm replicas, no demand
    d, _ = decide(snap(busy=0), scaling(min_replicas=3), State(desired=0), 0.0)
    assert (d.desired, d.reason) == (3, "scale up: min_replicas")
    d, _ = decide(snap(busy=400, queued=400), scaling(max_replicas=6), State(desired=1), 0.0)
    assert d.desired == 6


def test_other_metrics() -> None:
    rps = scaling(scaling_metric="requests_per_second", scaling_target=10)
    assert decide(snap(replicas=2, started=45), rps, State(desired=2), 0.0)[0].desired == 5
    cpu = scaling(scaling_metric="cpu_utilization", scaling_target=50)
    s = snap(replicas=2, cpu=0.9)
    assert decide(s, cpu, State(desired=2), 0.0)[0].desired == 4  # ceil(2 × 0.9 / 0.5)


def test_the_decision_offers_the_slots_its_demand_leaves_free() -> None:
    c = scaling(min_replicas=3)
    decisions, _ = run([snap(busy=3, replicas=3, started=1.5)] * 60, c, State(desired=3))
    # 3 ready replicas, 12 slots, 3 busy on average: 9 spare for other regions' overflow.
    assert decisions[-1].spare == 9
    d, _ = decide(snap(busy=3, queued=5, replicas=3, started=1.5), c, State(desired=3), 0.0)
    assert d.spare == 12 - 3 - 5  # its own queue comes first


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-3, max_value=3), min_size=600, max_size=600))
def test_noise_around_the_target_does_not_flap(noise: list[int]) -> None:
    """Demand wobbling ±3 slots around 14 (5 replicas' worth) for ten minutes: few direction
    changes, since a scale-in waits a cooldown after a scale-out and follows a minute's average."""
    c = scaling(cooldown=30)
    loads = [snap(busy=max(0, 14 + n), replicas=5, started=max(0, 14 + n) / 2) for n in noise]
    decisions, _ = run(loads, c, State(desired=5))
    desired = [5] + [d.desired for d in decisions]
    moves = [b - a for a, b in itertools.pairwise(desired) if b != a]
    changes = sum(1 for a, b in itertools.pairwise(moves) if (a > 0) != (b > 0))
    assert changes <= 600 / 30
    assert all(4 <= d <= 8 for d in desired)


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=200),
       st.integers(0, 5), st.integers(0, 3), st.integers(3, 12))  # fmt: skip
def test_min_max_and_reasons_always_hold(
    loads: list[tuple[int, int]], lo: int, buffer: int, hi: int
) -> None:
    c = scaling(min_replicas=lo, max_replicas=max(hi, lo), scaling_buffer=buffer)
    state = State()
    for t, (busy, queued) in enumerate(loads):
        d, state = decide(snap(busy=busy, queued=queued, started=busy / 2), c, state, float(t))
        assert c.min_replicas <= d.desired <= c.max_replicas
        assert REASON.fullmatch(d.reason), d.reason
