from hypothesis import given
from hypothesis import strategies as st

from federation.placement import ClaimRules, ReadyEntry, claim_order, next_eligible_at, slot_of
from tests.factories import task

T0 = 1_700_000_000.0
REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")
US, EU = ClaimRules("us-east-1"), ClaimRules("eu-west-1")


def entry(**fields: object) -> ReadyEntry:
    r = task(**{"now": T0, **fields})  # type: ignore[arg-type]
    return ReadyEntry(r.id.encode(), 1, r)


def test_home_region_takes_its_tasks_at_once() -> None:
    r = task(now=T0, home_region="eu-west-1")
    assert EU.eligible(r, T0)
    assert not US.eligible(r, T0 + 0.49)


def test_other_regions_take_it_after_spillover_after_or_when_home_is_down() -> None:
    r = task(now=T0, home_region="eu-west-1")
    assert US.eligible(r, T0 + 0.5)
    assert ClaimRules("us-east-1", down_regions=frozenset({"eu-west-1"})).eligible(r, T0)


def test_expired_tasks_are_not_claimed() -> None:
    r = task(now=T0, grace=10)
    assert not ClaimRules(r.home_region).eligible(r, T0 + 10)


def test_app_regions_bound_unpinned_tasks() -> None:
    r = task(now=T0, home_region="eu-west-1")
    assert not ClaimRules("ap-south-1", app_regions=REGIONS[:2]).eligible(r, T0 + 9)


@given(
    home=st.sampled_from(REGIONS),
    allowed=st.lists(st.sampled_from(REGIONS), min_size=1, max_size=2, unique=True),
    region=st.sampled_from(REGIONS),
    waited=st.floats(0, 1e5),
    down=st.sets(st.sampled_from(REGIONS)),
)
def test_a_pin_is_never_violated(
    home: str, allowed: list[str], region: str, waited: float, down: set[str]
) -> None:
    """Whatever the wait and whichever regions are down, a pinned task stays in its set."""
    r = task(now=T0, home_region=home, allowed_regions=tuple(allowed), grace=1e6)
    rules = ClaimRules(region, down_regions=frozenset(down))
    assert not rules.eligible(r, T0 + waited) or region in allowed


def test_order_is_priority_then_age_across_partitions() -> None:
    a = entry(home_region="us-east-1", priority=5, created_at=T0 - 3)
    b = entry(home_region="eu-west-1", priority=9, created_at=T0 - 1)
    c = entry(home_region="eu-west-1", priority=5, created_at=T0 - 5)
    d = entry(home_region="us-east-1", priority=5, created_at=T0 - 0.1)
    assert claim_order([a, b, c, d], US, T0) == [b, c, a, d]


def test_not_yet_spilled_tasks_are_left_out_and_wake_the_claimer_when_due() -> None:
    young = entry(home_region="eu-west-1", created_at=T0 - 0.1)
    assert claim_order([young], US, T0) == []
    assert next_eligible_at([young], US, T0) == T0 + 0.4
    assert next_eligible_at([young], EU, T0) is None  # already eligible at home


def test_claimers_of_one_region_take_their_own_slice_first_then_steal() -> None:
    entries = [entry(created_at=T0) for _ in range(40)]
    mine = claim_order(entries, US, T0, rank=1, n_claimers=4)
    assert mine and all(slot_of(e.record.id, 4) == 1 for e in mine)
    later = claim_order(entries, US, T0 + 0.06, rank=1, n_claimers=4)
    assert len(later) == 40
    own = [slot_of(e.record.id, 4) == 1 for e in later]
    assert own == sorted(own, reverse=True)  # its own slice first, then what it may steal
    urgent = entry(created_at=T0 + 0.01, priority=9)
    first = claim_order([*entries, urgent], US, T0 + 0.1, rank=1, n_claimers=4)[0]
    assert first == urgent  # priority still comes first


@given(st.lists(st.tuples(st.integers(0, 9), st.floats(0, 100)), max_size=30))
def test_claim_order_is_sorted(items: list[tuple[int, float]]) -> None:
    es = [entry(priority=p, created_at=T0 - age) for p, age in items]
    order = claim_order(es, US, T0)
    keys = [(-e.record.priority, e.record.created_at) for e in order]
    assert keys == sorted(keys) and len(order) == len(es)
