"""What the autoscaler sees of a region whose nodes it sizes: every node's heartbeat, merged."""

from __future__ import annotations

from federation.heartbeat import AppLoad, RegionHeartbeat, merge
from regional.autoscale import region_fleet
from regional.capacity import Group


def node(
    agent: str, ready: int, busy: int, rps: float, by_home: dict[str, int] | None = None
) -> RegionHeartbeat:
    load = AppLoad(
        app="demo", replicas=ready, ready_replicas=ready, desired_replicas=ready, slots=4 * ready,
        busy_slots=busy, queue_depth=0, oldest_wait_ms=0.0, requests_per_second=rps,
        busy_by_home=by_home or {},
    )  # fmt: skip
    return RegionHeartbeat(name="us-east-1", lat=0, lon=0, agent=agent, at=1.0, apps=(load,))


def region(*beats: RegionHeartbeat) -> RegionHeartbeat | None:
    """The region's heartbeat as its leader follows it: every node's, merged."""
    return merge(beats).get("us-east-1")


def test_the_fleet_counts_every_nodes_slots_and_requests_not_only_the_leaders() -> None:
    beat = region(node("a", ready=2, busy=3, rps=4.5), node("b", ready=1, busy=2, rps=2.5))
    fleet = region_fleet(beat, "demo", 2, Group(desired=2, min=1, max=4))
    assert (fleet.replicas, fleet.starting, fleet.busy_slots) == (4, 1, 5)
    assert fleet.requests_per_second == 7.0


def test_a_region_no_node_has_reported_yet_is_all_starting() -> None:
    fleet = region_fleet(region(), "demo", 2, Group(desired=3, min=0, max=4))
    assert (fleet.replicas, fleet.starting, fleet.busy_slots) == (6, 6, 0)
    assert fleet.requests_per_second == 0.0


def test_the_fleets_foreign_tasks_are_every_nodes() -> None:
    beat = region(node("a", 2, busy=3, rps=1.0, by_home={"eu-west-1": 2}),
                  node("b", 1, busy=2, rps=1.0, by_home={"eu-west-1": 1}))  # fmt: skip
    fleet = region_fleet(beat, "demo", 2, Group(desired=2, min=1, max=4))
    assert (fleet.busy_slots, fleet.busy_foreign) == (5, 3)
