from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.health import STALE_AFTER, EtcdHealth, federation_health
from federation.heartbeat import AppLoad, EdgeHeartbeat, RegionHeartbeat, merge

NOW = 1_800_000_000.0
ETCD = EtcdHealth(healthy=True, members=3, leader="m0")
REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")


def load(busy: int = 0, slots: int = 4, queued: int = 0) -> AppLoad:
    return AppLoad(
        app="demo", replicas=1, ready_replicas=1, desired_replicas=1, slots=slots,
        busy_slots=busy, queue_depth=queued, oldest_wait_ms=0.0,
    )  # fmt: skip


def beat(name: str, *apps: AppLoad, age: float = 0.5) -> RegionHeartbeat:
    return RegionHeartbeat(name=name, lat=0, lon=0, agent=f"{name}-a", at=NOW - age, apps=apps)


def beats(*bs: RegionHeartbeat) -> dict[str, RegionHeartbeat]:
    return {b.name: b for b in bs}


def statuses(health_regions: object) -> dict[str, str]:
    return {r.name: r.status for r in health_regions}  # type: ignore[attr-defined]


def test_all_regions_beating_and_keeping_up_is_ok() -> None:
    h = federation_health(REGIONS, beats(*(beat(r, load(busy=3)) for r in REGIONS)), [], ETCD, NOW)
    assert h.status == "ok" and set(statuses(h.regions).values()) == {"ok"}
    assert h.regions[0].last_heartbeat is not None and h.regions[0].last_heartbeat.endswith("Z")


def test_a_region_without_a_heartbeat_is_down_and_the_federation_degraded() -> None:
    h = federation_health(REGIONS, beats(beat("us-east-1"), beat("eu-west-1")), [], ETCD, NOW)
    assert statuses(h.regions)["ap-south-1"] == "down" and h.status == "degraded"
    assert next(r for r in h.regions if r.name == "ap-south-1").last_heartbeat is None


def test_all_slots_busy_with_a_queue_is_degraded_but_busy_without_one_is_ok() -> None:
    saturated = beat("us-east-1", load(busy=4, queued=2))
    busy = beat("eu-west-1", load(busy=4, queued=0))
    none_ready = beat("ap-south-1", load(busy=0, slots=0, queued=1))
    s = statuses(
        federation_health(REGIONS, beats(saturated, busy, none_ready), [], ETCD, NOW).regions
    )
    assert s == {"us-east-1": "degraded", "eu-west-1": "ok", "ap-south-1": "degraded"}


def test_a_stale_heartbeat_under_a_live_lease_is_degraded() -> None:
    fresh = beat("us-east-1", age=STALE_AFTER - 1)
    stale = beat("eu-west-1", age=STALE_AFTER + 1)
    s = statuses(
        federation_health(["us-east-1", "eu-west-1"], beats(fresh, stale), [], ETCD, NOW).regions
    )
    assert s == {"us-east-1": "ok", "eu-west-1": "degraded"}


def test_etcd_unhealthy_or_every_region_down_is_down() -> None:
    ok = beats(*(beat(r) for r in REGIONS))
    assert federation_health(REGIONS, ok, [], EtcdHealth(healthy=False), NOW).status == "down"
    assert federation_health(REGIONS, {}, [], ETCD, NOW).status == "down"


def test_unconfigured_regions_that_heartbeat_are_listed_and_edges_are_sorted() -> None:
    edges = [EdgeHeartbeat(id=i, region="us-east-1", url="http://x", at=NOW) for i in "ba"]
    h = federation_health(
        ["us-east-1"], beats(beat("us-east-1"), beat("sa-east-1")), edges, ETCD, NOW
    )
    assert [r.name for r in h.regions] == ["sa-east-1", "us-east-1"]
    assert [e.id for e in h.edges] == ["a", "b"]


@given(st.dictionaries(st.sampled_from(REGIONS), st.sampled_from(["ok", "sat", "stale"])))
def test_the_federation_is_ok_exactly_when_every_configured_region_is(
    kinds: dict[str, str],
) -> None:
    made = {
        "ok": lambda r: beat(r, load()),
        "sat": lambda r: beat(r, load(busy=4, queued=1)),
        "stale": lambda r: beat(r, age=STALE_AFTER * 2),
    }
    h = federation_health(REGIONS, beats(*(made[k](r) for r, k in kinds.items())), [], ETCD, NOW)
    every_ok = len(kinds) == len(REGIONS) and set(kinds.values()) == {"ok"}
    assert (h.status == "ok") == every_ok
    assert (h.status == "down") == (not kinds)


def test_a_regions_agents_merge_into_one_heartbeat_whose_capacity_adds_up() -> None:
    node_a = beat("us-east-1", load(busy=4, queued=3), age=2.0).model_copy(update={"agent": "a"})
    node_b = beat("us-east-1", load(busy=1, queued=2), age=0.5).model_copy(update={"agent": "b"})
    merged = merge([node_b, node_a, beat("eu-west-1", load())])
    us = merged["us-east-1"]
    assert (us.agent, us.at) == ("a,b", NOW - 0.5)
    (demo,) = us.apps
    assert (demo.replicas, demo.slots, demo.busy_slots, demo.queue_depth) == (2, 8, 5, 3)
    assert merged["eu-west-1"] == beat("eu-west-1", load())
    # Two nodes with a queue and one free slot between them: not saturated.
    assert statuses(federation_health(REGIONS, merged, [], ETCD, NOW).regions)["us-east-1"] == "ok"


def test_etcd_short_of_space_degrades_the_federation_and_says_why() -> None:
    why = "etcd control: db 85 MiB of a 100 MiB quota (85%); new tasks refused until it drains"
    all_ok = beats(*(beat(r) for r in REGIONS))
    h = federation_health(REGIONS, all_ok, [], ETCD, NOW, reasons=[why])
    assert h.status == "degraded" and h.reasons == (why,)
    assert federation_health(REGIONS, all_ok, [], ETCD, NOW).status == "ok"
