"""The autoscaler's federation rules (federation/absorb.py), with a fake clock: absorb before
buying, pinned load here, load flowing one way, one adopter per orphaned backlog, cooldowns."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.absorb import Peer, adopted, helpers, peers, shed_to
from federation.appspec import ScalingSection
from federation.autoscaler import Decision, Snapshot, State, decide
from federation.heartbeat import AppLoad, RegionHeartbeat
from tests.unit.federation.test_autoscaler import run, scaling

US, EU, AP = "us-east-1", "eu-west-1", "ap-south-1"
PRICE = {US: 4.0, EU: 4.4, AP: 3.6}


def peer(name: str = EU, spare: int = 0, carrying: int = 0, rtt: float = 0.08, **kw: Any) -> Peer:
    return Peer(name, rtt, kw.pop("price", PRICE.get(name, 4.0)), spare=spare, carrying=carrying,
                **kw)  # fmt: skip


def here(
    region: str = US, busy: int = 0, queued: int = 0, replicas: int = 1, **kw: Any
) -> Snapshot:
    return Snapshot(
        replicas=replicas, starting=kw.pop("starting", 0), busy_slots=busy,
        queued_home=queued, oldest_wait=kw.pop("wait", 0.0),
        requests_per_second=kw.pop("started", busy / 2), region=region,
        price=kw.pop("price", PRICE[region]), **kw,
    )  # fmt: skip


def warmed(c: ScalingSection, view: tuple[Peer, ...]) -> State:
    """Half a minute at one replica, 2 tasks busy, 1 started a second (tasks of 2 s)."""
    _, state = run([here(busy=2, peers=view)] * 30, c, State(desired=1))
    return state


def test_a_burst_goes_to_a_peers_warm_slots_before_replicas_are_bought() -> None:
    c, view = scaling(), (peer(EU, spare=8),)
    burst = here(busy=4, queued=12, peers=view)
    d, _ = decide(burst, c, warmed(c, view), 30.0)
    assert (d.desired, d.reason) == (1, "absorb via eu-west-1")
    # Alone, the same burst buys a replica.
    d, _ = decide(replace(burst, peers=()), c, warmed(c, ()), 30.0)
    assert d.desired > 1 and d.reason.startswith("scale up")


def test_a_jump_is_still_a_jump_peers_only_lower_how_much_is_bought() -> None:
    c = scaling()
    bought = {}
    for spare in (0, 2, 4):
        view = (peer(EU, spare=spare),) if spare else ()
        d, _ = decide(here(busy=4, queued=12, peers=view), c, warmed(c, view), 30.0)
        assert d.reason == "scale up: panic"  # at once, whatever a peer offers
        bought[spare] = d.desired
    assert bought == {0: 4, 2: 3, 4: 2}


def test_only_what_peers_can_take_is_left_to_them() -> None:
    c, view = scaling(), (peer(EU, spare=2),)
    d, _ = decide(here(busy=4, queued=60, peers=view), c, warmed(c, view), 30.0)
    assert d.desired > 1  # two spare slots do not drain sixty tasks: the rest is bought here


def test_peers_out_of_reach_do_not_count() -> None:
    c = scaling(latency_budget=0.15)
    for far in (peer(AP, spare=40, rtt=0.19), peer(EU, spare=40, up=False)):
        d, _ = decide(here(busy=4, queued=12, peers=(far,)), c, warmed(c, (far,)), 30.0)
        assert d.desired > 1 and d.reason.startswith("scale up"), far


def test_a_task_waiting_past_the_threshold_ends_the_wait_for_peers() -> None:
    c, view = scaling(), (peer(EU, spare=8),)
    d, _ = decide(here(busy=4, queued=2, wait=2.5, peers=view), c, warmed(c, view), 30.0)
    assert (d.desired, d.reason) == (2, "scale up: queue time")


def test_pinned_tasks_are_served_here_whatever_peers_offer() -> None:
    c, view = scaling(), (peer(EU, spare=40),)
    s = here(queued=3, replicas=0, queued_pinned=1, peers=view)
    d, _ = decide(s, c, State(desired=0), 0.0)
    assert (d.desired, d.reason) == (1, "scale up: pinned")
    d, _ = decide(replace(s, queued_pinned=0), c, State(desired=0), 0.0)
    assert (d.desired, d.reason) == (0, "absorb via eu-west-1")


def test_a_dearer_region_scales_in_onto_a_cheaper_peer_to_zero_if_min_replicas_allows() -> None:
    def shed(min_replicas: int, region: str, other: str) -> list[Decision]:
        c, view = scaling(min_replicas=min_replicas, cooldown=30), (peer(other, spare=8),)
        decisions, _ = run([here(region, busy=2, replicas=2, peers=view)] * 90, c, State(desired=2))
        return decisions

    decisions = shed(0, EU, US)
    moves = [(d.desired, d.reason) for d in decisions if d.reason.startswith("scale")]
    assert moves == [(1, "scale in: carried by us-east-1"), (0, "scale in: carried by us-east-1")]
    assert decisions[-1].reason == "absorb via us-east-1"  # at zero, its tasks go there
    assert shed(1, EU, US)[-1].desired == 1  # min_replicas holds
    assert shed(0, US, EU)[-1].desired == 1  # never onto a dearer one: alone, 2 busy slots


@given(st.sampled_from([US, EU, AP, "a", "b"]), st.sampled_from([US, EU, AP, "a", "b"]),
       st.sampled_from([3.6, 4.0, 4.4]), st.sampled_from([3.6, 4.0, 4.4]))  # fmt: skip
def test_load_flows_one_way_between_any_two_regions(
    a: str, b: str, price_a: float, price_b: float
) -> None:
    """Two regions each offered the other's spare slots: at most one may scale in onto the
    other, so they cannot both hand their load over and both end at zero."""
    c = scaling()
    sa = Snapshot(1, 0, 0, 0, 0.0, region=a, price=price_a, peers=(peer(b, 8, price=price_b),))
    sb = Snapshot(1, 0, 0, 0, 0.0, region=b, price=price_b, peers=(peer(a, 8, price=price_a),))
    assert a == b or not (shed_to(sa, c) and shed_to(sb, c))


def test_a_region_lends_its_slots_but_never_grows_for_others_tasks() -> None:
    c = scaling(cooldown=30)
    full = [here(EU, busy=8, replicas=2, busy_foreign=8, started=4)] * 90  # us-east-1's tasks
    decisions, _ = run(full, c, State(desired=2))
    assert {d.desired for d in decisions} == {2}  # held for them, not grown for them
    free = [here(EU, busy=0, replicas=2)] * 90
    decisions, _ = run(free, c, State(desired=2), start=90)
    assert decisions[-1].desired == 0  # gone with them


def test_a_region_keeps_replicas_for_its_tasks_a_dearer_peer_carries() -> None:
    c = scaling(cooldown=30)
    view = (peer(EU, carrying=8, price=4.4),)
    decisions, _ = run([here(US, busy=2, replicas=3, peers=view)] * 90, c, State(desired=3))
    assert decisions[-1].desired == 3  # 2 here + 8 there: 10 / 2.8, it takes them back
    decisions, _ = run([here(EU, busy=2, replicas=3, peers=(peer(US, carrying=8),))] * 90, c,
                       State(desired=3))  # fmt: skip
    assert decisions[-1].desired == 1  # a cheaper peer carries them: that is where they belong


# -- the federation as every region sees it, from the same heartbeats ------------------------


def beat(name: str, **kw: Any) -> RegionHeartbeat:
    load = AppLoad(app="demo", replicas=kw.pop("replicas", 2), ready_replicas=kw.pop("ready", 2),
                   desired_replicas=kw.pop("desired", 2), slots=kw.pop("slots", 8),
                   busy_slots=kw.pop("busy", 0), queue_depth=kw.pop("queued", 0),
                   oldest_wait_ms=kw.pop("wait_ms", 0.0), **kw)  # fmt: skip
    return RegionHeartbeat(name=name, lat=0, lon=0, agent="a", at=0, apps=(load,),
                           gpu_price=PRICE.get(name, 4.0))  # fmt: skip


def test_peers_from_heartbeats() -> None:
    c = scaling(max_replicas=4)
    beats = {
        US: beat(US),
        EU: beat(EU, spare_slots=7, busy_by_home={US: 3, AP: 1}, queued_home=2),
        AP: beat(
            AP, desired=4, replicas=4, ready=4, slots=16, busy=16, queued_home=30, wait_ms=5000
        ),
    }
    view = {p.name: p for p in peers(beats, US, "demo", (), c, rtt={EU: 0.075})}
    eu, ap = view[EU], view[AP]
    # 7 spare slots, shared by us-east-1 and ap-south-1, whose tasks eu-west-1 already runs.
    assert (eu.spare, eu.carrying, eu.rtt, eu.price, eu.up) == (3, 3, 0.075, 4.4, True)
    assert (ap.at_max, ap.overflow, ap.rtt) == (True, 30, float("inf"))  # stuck: all busy
    alone = beats | {EU: beat(EU, spare_slots=7, busy_by_home={US: 3, AP: 0})}
    assert {p.name: p for p in peers(alone, US, "demo", (), c)}[EU].spare == 7  # all ours
    loading = beats | {AP: beat(AP, desired=4, replicas=4, ready=2, queued_home=30, wait_ms=5000)}
    assert {p.name: p for p in peers(loading, US, "demo", (), c)}[AP].overflow == 0
    down = peers({US: beats[US]}, US, "demo", (US, EU), c, orphans={EU: 12})
    assert down == (Peer(EU, float("inf"), 0.0, up=False, overflow=12),)
    other_app = beats | {EU: beats[EU].model_copy(update={"apps": ()})}
    assert not {p.name: p for p in peers(other_app, US, "demo", (), c)}[EU].up  # serves none


def test_round_trips_are_estimated_from_coordinates_unless_measured() -> None:
    where = {US: (39.0, -77.5), EU: (53.3, -6.3), AP: (19.1, 72.9)}  # as `spillover up` has them
    beats = {n: beat(n).model_copy(update={"lat": la, "lon": lo}) for n, (la, lo) in where.items()}
    rtt = {p.name: p.rtt for p in peers(beats, US, "demo", (), scaling())}
    assert 0.07 < rtt[EU] < 0.085 and 0.17 < rtt[AP] < 0.19  # AWS measures ≈ 80 ms to Dublin
    near = {
        p.name for p in helpers(here(US, peers=peers(beats, US, "demo", (), scaling())), scaling())
    }
    assert near == {EU}  # Mumbai is beyond the default latency_budget of 150 ms


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=2, max_size=5),
    st.integers(1, 50),
)
def test_an_orphaned_backlog_has_exactly_one_adopter(
    regions: list[tuple[int, bool]], orphan: int
) -> None:
    """A down region's backlog, seen by every region from the same heartbeats: exactly one
    region sizes for it (none when all are at their max)."""
    c = scaling(max_replicas=4)
    names = [f"r{i}" for i in range(len(regions))]
    price = {n: float(p) for n, (p, _) in zip(names, regions, strict=True)}
    at_max = {n: m for n, (_, m) in zip(names, regions, strict=True)}
    beats = {
        n: beat(n, desired=4 if at_max[n] else 1).model_copy(update={"gpu_price": price[n]})
        for n in names
    }
    adopters = []
    for n in names:
        view = peers(beats, n, "demo", (*names, "down-1"), c, orphans={"down-1": orphan})
        s = Snapshot(1, 0, 0, 0, 0.0, region=n, price=price[n], peers=view)
        if adopted(s, at_max[n]):
            adopters.append(n)
    able = [n for n in names if not at_max[n]]
    assert adopters == ([min(able, key=lambda n: (price[n], n))] if able else [])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 16), st.booleans()), min_size=20,
                max_size=120))  # fmt: skip
def test_a_region_with_no_load_of_its_own_never_scales_up(
    ticks: list[tuple[int, int, bool]],
) -> None:
    """Whatever others' tasks run here and whatever the federation offers: a region buys GPUs
    only for its own backlog (or an orphaned one it adopts), so never two for one backlog."""
    c = scaling()
    state, desired = State(desired=2), 2
    for t, (foreign, spare, cheap) in enumerate(ticks):
        view = (peer(US, spare=spare, price=3.0 if cheap else 5.0), peer(AP, spare=spare))
        busy = min(foreign, 4 * desired)
        s = here(EU, busy=busy, busy_foreign=busy, replicas=desired, peers=view)
        d, state = decide(s, c, state, float(t))
        assert d.desired <= desired, (t, d)
        desired = d.desired


TICK = st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 16), st.integers(0, 3),
                 st.booleans())  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(st.lists(TICK, min_size=30, max_size=200))
def test_cooldowns_hold_whatever_the_federation_says(
    ticks: list[tuple[int, int, int, int, bool]],
) -> None:
    """Any load, any peers, tick after tick: a scale-in is one replica, never within a cooldown
    of the last scale-out, so the direction turns at most twice per cooldown."""
    c = scaling(cooldown=10)
    state, desired, last_up = State(desired=1), 1, -1e9
    history = [1]
    for t, (busy, queued, spare, carrying, cheap) in enumerate(ticks):
        view = (peer(EU, spare=spare, carrying=carrying, price=3.0 if cheap else 5.0),)
        s = here(US, busy=min(busy, 4 * desired), queued=queued, replicas=desired, peers=view)
        d, state = decide(s, c, state, float(t))
        if d.desired > desired:
            last_up = t
        elif d.desired < desired:
            assert d.desired == desired - 1 and t - last_up >= c.cooldown
        desired = d.desired
        history.append(desired)
    moves = [b - a for a, b in itertools.pairwise(history) if b != a]
    turns = sum(1 for a, b in itertools.pairwise(moves) if (a > 0) != (b > 0))
    assert turns <= 2 * len(ticks) / c.cooldown + 1


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 30)), min_size=10, max_size=120),
    st.lists(
        st.tuples(
            st.integers(0, 40), st.floats(0.01, 0.3), st.floats(1, 6), st.booleans(), st.booleans()
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_with_every_task_pinned_peers_change_nothing(
    loads: list[tuple[int, int]], offers: list[tuple[int, float, float, bool, bool]]
) -> None:
    """Pinned load always counts here: whatever peers offer, the decisions are those of the
    region alone."""
    c = scaling()
    view = tuple(
        Peer(f"p{i}", rtt, price, spare=spare, up=up, at_max=at_max)
        for i, (spare, rtt, price, up, at_max) in enumerate(offers)
    )
    alone, helped, desired = State(), State(), 1
    for t, (busy, queued) in enumerate(loads):
        s = here(US, busy=min(busy, 4 * desired), queued=queued, replicas=desired,
                 busy_pinned=min(busy, 4 * desired), queued_pinned=queued)  # fmt: skip
        a, alone = decide(s, c, alone, float(t))
        h, helped = decide(replace(s, peers=view), c, helped, float(t))
        assert (a.desired, a.spare) == (h.desired, h.spare)  # the reason may say "pinned"
        desired = a.desired
