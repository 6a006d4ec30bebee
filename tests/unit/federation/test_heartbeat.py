"""The spillover flows a region's heartbeat carries: tasks started per home region, per second."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.heartbeat import AppLoad, RegionHeartbeat, merge, spilled_in


def test_only_other_regions_tasks_started_in_the_window_count_per_second() -> None:
    before = {"us-east-1": 10, "eu-west-1": 4}
    after = {"us-east-1": 16, "eu-west-1": 4, "ap-south-1": 3}
    assert spilled_in(before, after, "eu-west-1", 2.0) == {"ap-south-1": 1.5, "us-east-1": 3.0}
    assert spilled_in(after, after, "eu-west-1", 2.0) == {}  # nothing started: no flow
    assert spilled_in(before, after, "eu-west-1", 0.0) == {}  # the first beat has no window


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 100)),
       st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 100)),
       st.floats(0.1, 10))  # fmt: skip
def test_a_rate_is_never_negative_nor_the_regions_own(
    before: dict[str, int], grown: dict[str, int], seconds: float
) -> None:
    after = {k: before.get(k, 0) + grown.get(k, 0) for k in {*before, *grown}}
    rates = spilled_in(before, after, "a", seconds)
    assert "a" not in rates and all(r > 0 for r in rates.values())


def beat(agent: str, flows: dict[str, float]) -> RegionHeartbeat:
    load = AppLoad(app="demo", replicas=1, ready_replicas=1, desired_replicas=1, slots=4,
                   busy_slots=4, queue_depth=0, oldest_wait_ms=0, spilled_in=flows)  # fmt: skip
    return RegionHeartbeat(name="eu-west-1", lat=0, lon=0, agent=agent, at=1.0, apps=(load,))


def test_a_regions_agents_flows_add_up() -> None:
    merged = merge([beat("a", {"us-east-1": 1.5}), beat("b", {"us-east-1": 2.0, "x": 0.5})])
    assert merged["eu-west-1"].apps[0].spilled_in == {"us-east-1": 3.5, "x": 0.5}
