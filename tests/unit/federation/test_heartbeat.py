"""The spillover flows a region's heartbeat carries: tasks started per home region, per second."""

from __future__ import annotations

from federation.heartbeat import AppLoad, RegionHeartbeat, merge


def beat(agent: str, flows: dict[str, float]) -> RegionHeartbeat:
    load = AppLoad(app="demo", replicas=1, ready_replicas=1, desired_replicas=1, slots=4,
                   busy_slots=4, queue_depth=0, oldest_wait_ms=0, spilled_in=flows)  # fmt: skip
    return RegionHeartbeat(name="eu-west-1", lat=0, lon=0, agent=agent, at=1.0, apps=(load,))


def test_a_regions_agents_flows_add_up() -> None:
    merged = merge([beat("a", {"us-east-1": 1.5}), beat("b", {"us-east-1": 2.0, "x": 0.5})])
    assert merged["eu-west-1"].apps[0].spilled_in == {"us-east-1": 3.5, "x": 0.5}
