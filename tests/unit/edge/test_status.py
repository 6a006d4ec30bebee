"""``spillover status``'s table, from the health JSON."""

from __future__ import annotations

from edge.cli import table
from federation.health import EtcdHealth, federation_health
from federation.heartbeat import AppLoad, RegionHeartbeat

NOW = 1_700_000_000.0


def test_the_table_shows_each_apps_last_scaling_reason() -> None:
    def beat(name: str, reason: str | None) -> RegionHeartbeat:
        load = AppLoad(app="demo", replicas=1, ready_replicas=1, desired_replicas=1, slots=4,
                       busy_slots=4, queue_depth=3, oldest_wait_ms=250,
                       scaling_reason=reason)  # fmt: skip
        return RegionHeartbeat(name=name, lat=0, lon=0, agent="a", at=NOW, apps=(load,))

    beats = {
        "us-east-1": beat("us-east-1", "absorb via eu-west-1"),
        "eu-west-1": beat("eu-west-1", None),
    }
    health = federation_health(list(beats), beats, [], EtcdHealth(healthy=True), NOW)
    lines = table(health.model_dump(mode="json")).splitlines()
    header = next(line for line in lines if line.startswith("REGION"))
    assert header.split()[-1] == "SCALING"
    rows = {line.split()[0]: line for line in lines if line.startswith(("us-", "eu-"))}
    assert rows["us-east-1"].endswith("absorb via eu-west-1")
    assert rows["eu-west-1"].endswith(" -")  # an agent that reports no reason
