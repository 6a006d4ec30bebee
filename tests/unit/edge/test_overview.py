"""The dashboard's document: flows from heartbeats, scaling decisions from changes of desired
replicas, regions placed on the map. Pure, with a fake clock."""

from __future__ import annotations

from edge.config import RegionPoint
from edge.overview import ScalingLog, flows, overview
from federation.health import EtcdHealth, federation_health
from federation.heartbeat import AppLoad, RegionHeartbeat

NOW = 1_700_000_000.0


def beat(name: str, desired: int = 1, app: str = "demo", reason: str | None = None,
         **spilled: float) -> RegionHeartbeat:  # fmt: skip
    load = AppLoad(app=app, replicas=1, ready_replicas=1, desired_replicas=desired, slots=4,
                   busy_slots=0, queue_depth=0, oldest_wait_ms=0, scaling_reason=reason,
                   spilled_in={k.replace("_", "-"): v for k, v in spilled.items()})  # fmt: skip
    return RegionHeartbeat(name=name, lat=1.0, lon=2.0, agent="a", at=NOW, apps=(load,))


def test_a_change_of_desired_replicas_is_a_decision_and_a_first_sighting_is_not() -> None:
    log = ScalingLog(kept=2)
    log.record({"us-east-1": beat("us-east-1", 1)}, NOW)
    log.record({"us-east-1": beat("us-east-1", 1)}, NOW + 1)
    assert list(log.decisions) == []
    log.record({"us-east-1": beat("us-east-1", 3)}, NOW + 2)
    log.record({}, NOW + 3)  # the region goes down...
    log.record({"us-east-1": beat("us-east-1", 2)}, NOW + 4)  # ...and comes back smaller
    log.record({"us-east-1": beat("us-east-1", 4, reason="scale up: queue time")}, NOW + 5)
    moves = [(d.from_replicas, d.to_replicas) for d in log.decisions]
    assert moves == [(2, 4), (3, 2)]  # newest first, only the last `kept`
    assert log.decisions[0].model_dump(by_alias=True)["from"] == 2
    # The autoscaler's reason rides in the heartbeat; an agent that sends none leaves it empty.
    assert [d.reason for d in log.decisions] == ["scale up: queue time", None]


def test_flows_sum_over_apps_largest_first_and_skip_nothing_moving() -> None:
    eu = beat("eu-west-1", us_east_1=1.5)
    eu2 = eu.model_copy(update={"apps": (*eu.apps, *beat("eu-west-1", app="b", us_east_1=0.5,
                                                             ap_south_1=0.0).apps)})  # fmt: skip
    ap = beat("ap-south-1", us_east_1=3.0)
    assert [(f.source, f.target, f.rate) for f in flows([eu2, ap])] == [
        ("us-east-1", "ap-south-1", 3.0),
        ("us-east-1", "eu-west-1", 2.0),
    ]


def test_regions_are_placed_from_the_config_else_their_heartbeat() -> None:
    beats = {"eu-west-1": beat("eu-west-1"), "new-1": beat("new-1")}
    points = [RegionPoint(name="eu-west-1", lat=53.3, lon=-6.3),
              RegionPoint(name="us-east-1", lat=39.0, lon=-77.5)]  # fmt: skip
    health = federation_health(["eu-west-1", "us-east-1"], beats, [], EtcdHealth(healthy=True), NOW)
    doc = overview(health, points, beats, [], None, NOW)
    placed = {r.name: (r.status, r.lat, r.lon) for r in doc.regions}
    assert placed == {
        "eu-west-1": ("ok", 53.3, -6.3),
        "new-1": ("ok", 1.0, 2.0),  # heartbeats, not configured here: its own coordinates
        "us-east-1": ("down", 39.0, -77.5),
    }
