"""The autoscaler's rules, each with a fake clock (one tick per second, as the leader runs)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.appspec import ScalingSection
from federation.autoscaler import Decision, Snapshot, State, decide


def scaling(**kw: Any) -> ScalingSection:
    base: dict[str, Any] = {
        "replica_concurrency": 4, "scaling_target": 70, "min_replicas": 0, "max_replicas": 20,
        "cooldown": 30, "queue_time_threshold": 2.0,
    }  # fmt: skip
    return ScalingSection.model_validate({**base, **kw})


def run(
    loads: list[Snapshot], c: ScalingSection, state: State, start: float = 0.0
) -> tuple[list[Decision], State]:
    out = []
    for i, s in enumerate(loads):
        d, state = decide(s, c, state, start + i)
        out.append(d)
    return out, state


def snap(busy: int = 0, queued: int = 0, replicas: int = 1, wait: float = 0.0) -> Snapshot:
    return Snapshot(starting=0, replicas=replicas, busy_slots=busy, queued=queued, oldest_wait=wait)


def test_the_worked_example_14_slots_of_demand_wants_5_replicas() -> None:
    d, _ = decide(snap(busy=9, queued=5), scaling(), State(desired=1), 0.0)
    assert d.desired == 5  # ceil(14 / (4 × 0.7))


def test_a_jump_scales_up_at_once_through_the_panic_window() -> None:
    c = scaling()
    calm, state = run([snap(busy=2)] * 60, c, State(desired=1))
    assert calm[-1].desired == 1
    d, _ = decide(snap(busy=4, queued=36), c, state, 60.0)
    # The stable minute barely moved; the panic window sees the jump: ceil(40 / 2.8) = 15.
    assert d.desired == 15 and "panic" in d.reason


def test_an_old_task_forces_scale_out_even_below_the_target() -> None:
    c = scaling(scaling_target=100)
    d, _ = decide(snap(busy=3, queued=1, wait=1.0), c, State(desired=1), 0.0)
    assert d.desired == 1
    d, _ = decide(snap(busy=3, queued=1, wait=2.5), c, State(desired=1), 0.0)
    assert d.desired == 2 and "queue_time_threshold" in d.reason
    # One already on its way: wait for it rather than add one per tick while it loads.
    loading = Snapshot(replicas=2, starting=1, busy_slots=3, queued=1, oldest_wait=5.0)
    assert decide(loading, c, State(desired=2), 1.0)[0].desired == 2


def test_scale_from_zero_starts_one_at_once_for_a_task_homed_here_only() -> None:
    home = Snapshot(starting=0, replicas=0, busy_slots=0, queued=1, oldest_wait=0.0, queued_home=1)
    d, _ = decide(home, scaling(), State(desired=0), 0.0)
    assert d.desired == 1
    overflow = Snapshot(
        starting=0, replicas=0, busy_slots=0, queued=9, oldest_wait=30.0, queued_home=0
    )
    d, _ = decide(overflow, scaling(), State(desired=0), 0.0)
    assert d.desired == 0  # another region's tasks: not a reason to cold-start here


def test_scale_in_waits_for_cooldown_then_steps_one_at_a_time() -> None:
    c = scaling(cooldown=30)
    hot, state = run([snap(busy=20, replicas=8)] * 60, c, State(desired=8))
    assert hot[-1].desired == 8
    cold, _ = run([snap(busy=0, replicas=8)] * 120, c, state, start=60)
    desired = [d.desired for d in cold]
    # Nothing before a whole cooldown of lower demand; then one replica per tick, to the floor.
    assert desired[:30] == [8] * 30
    assert all(a - b in (0, 1) for a, b in itertools.pairwise(desired))
    assert desired[-1] == 0


def test_a_blip_of_demand_restarts_the_cooldown() -> None:
    c = scaling(cooldown=30)
    _, state = run([snap(busy=20, replicas=8)] * 60, c, State(desired=8))
    _, state = run([snap(busy=0, replicas=8)] * 20, c, state, start=60)
    blip, state = run([snap(busy=40, replicas=8)], c, state, start=80)  # scales out: resets
    after, _ = run([snap(busy=0, replicas=15)] * 29, c, state, start=81)
    assert blip[0].desired > 8 and {d.desired for d in after} == {blip[0].desired}


def test_never_below_what_running_tasks_occupy() -> None:
    c = scaling(scaling_target=100, cooldown=0)
    _, state = run([snap(busy=0, replicas=4)] * 120, c, State(desired=4))
    d, _ = decide(snap(busy=12, replicas=4), c, replace(state, samples=()), 200.0)
    assert d.desired >= 3  # 12 running tasks need 3 replicas of 4


def test_scaling_buffer_min_and_max() -> None:
    d, _ = decide(snap(busy=0), scaling(scaling_buffer=2), State(desired=0), 0.0)
    assert d.desired == 2  # warm replicas with no demand at all
    d, _ = decide(snap(busy=0), scaling(min_replicas=3), State(desired=0), 0.0)
    assert d.desired == 3
    d, _ = decide(snap(busy=400, queued=400), scaling(max_replicas=6), State(desired=1), 0.0)
    assert d.desired == 6


def test_other_metrics() -> None:
    rps = scaling(scaling_metric="requests_per_second", scaling_target=10)
    s = Snapshot(
        starting=0, replicas=2, busy_slots=0, queued=0, oldest_wait=0, requests_per_second=45
    )
    assert decide(s, rps, State(desired=2), 0.0)[0].desired == 5  # ceil(45 / 10)
    cpu = scaling(scaling_metric="cpu_utilization", scaling_target=50)
    s = Snapshot(starting=0, replicas=2, busy_slots=0, queued=0, oldest_wait=0, cpu=0.9)
    assert decide(s, cpu, State(desired=2), 0.0)[0].desired == 4  # ceil(2 × 0.9 / 0.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-3, max_value=3), min_size=600, max_size=600))
def test_noise_around_the_target_does_not_flap(noise: list[int]) -> None:
    """Demand wobbling ±3 slots around 14 (5 replicas' worth) for ten minutes: few direction
    changes — each scale-in needs a cooldown of lower demand, and the minute average is calm."""
    c = scaling(cooldown=30)
    loads = [snap(busy=max(0, 14 + n), replicas=5) for n in noise]
    decisions, _ = run(loads, c, State(desired=5))
    desired = [5] + [d.desired for d in decisions]
    moves = [b - a for a, b in itertools.pairwise(desired) if b != a]
    changes = sum(1 for a, b in itertools.pairwise(moves) if (a > 0) != (b > 0))
    assert changes <= 600 / 30
    assert all(3 <= d <= 8 for d in desired)


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=200),
       st.integers(0, 5), st.integers(0, 3), st.integers(3, 12))  # fmt: skip
def test_min_max_and_running_tasks_always_hold(
    loads: list[tuple[int, int]], lo: int, buffer: int, hi: int
) -> None:
    c = scaling(min_replicas=lo, max_replicas=max(hi, lo), scaling_buffer=buffer)
    state = State()
    for t, (busy, queued) in enumerate(loads):
        d, state = decide(snap(busy=busy, queued=queued), c, state, float(t))
        assert c.min_replicas <= d.desired <= c.max_replicas
        assert d.desired >= min(c.max_replicas, -(-busy // c.replica_concurrency))
