import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.routing import Placement, fallbacks, place
from federation.errors import BadRequest
from federation.geo import distance_km

KNOWN = {"us-east-1": (39.0, -77.5), "eu-west-1": (53.3, -6.3), "ap-south-1": (19.1, 72.9)}
ALL = frozenset(KNOWN)
LONDON, MUMBAI = (51.5, -0.1), (19.0, 72.8)


def p(**kw):  # type: ignore[no-untyped-def]
    args = {"pin": None, "prefer": None, "client": None, "edge_region": "us-east-1",
            "known": KNOWN, "healthy": ALL}  # fmt: skip
    return place(**{**args, **kw})


def test_distance_is_great_circle() -> None:
    assert distance_km(LONDON, KNOWN["eu-west-1"]) == pytest.approx(465, rel=0.05)
    assert distance_km(LONDON, KNOWN["us-east-1"]) == pytest.approx(5900, rel=0.05)


def test_nearest_healthy_region_to_the_client() -> None:
    assert p(client=LONDON).home == "eu-west-1"
    assert p(client=MUMBAI).home == "ap-south-1"
    assert p(client=LONDON, healthy=frozenset({"us-east-1", "ap-south-1"})).home == "us-east-1"


def test_no_location_means_the_edges_own_region() -> None:
    assert p().home == "us-east-1"
    assert p(edge_region="ap-south-1").home == "ap-south-1"


def test_hard_pin_and_allowed_set() -> None:
    one = p(pin="eu-west-1", client=MUMBAI)
    assert (one.home, one.allowed, one.pinned) == ("eu-west-1", ("eu-west-1",), True)
    two = p(pin="eu-west-1, us-east-1", client=LONDON)
    assert (two.home, two.allowed) == ("eu-west-1", ("eu-west-1", "us-east-1"))


def test_soft_pin_becomes_home_but_does_not_pin() -> None:
    soft = p(prefer="ap-south-1", client=LONDON)
    assert (soft.home, soft.pinned) == ("ap-south-1", False)
    # A preference outside the hard set is ignored, the set is not.
    assert p(pin="eu-west-1", prefer="ap-south-1").home == "eu-west-1"


def test_app_regions_bound_the_choice() -> None:
    assert p(client=LONDON, app_regions=("us-east-1", "ap-south-1")).home == "us-east-1"


def test_pins_outside_the_apps_regions() -> None:
    app = ("us-east-1", "ap-south-1")
    with pytest.raises(BadRequest, match="runs only in us-east-1, ap-south-1"):
        p(pin="eu-west-1", app_regions=app)
    narrowed = p(pin="eu-west-1,ap-south-1", app_regions=app)
    assert narrowed.allowed == ("ap-south-1",) and narrowed.home == "ap-south-1"
    # A soft pin it cannot honour is dropped, not an error.
    assert p(prefer="eu-west-1", client=LONDON, app_regions=app).home == "us-east-1"


@pytest.mark.parametrize("header", ["pin", "prefer"])
@pytest.mark.parametrize("value", ["mars-1", "", " , ", "EU_WEST"])
def test_unknown_or_malformed_regions_are_400s_naming_the_header(header: str, value: str) -> None:
    with pytest.raises(BadRequest, match="X-Spillover-"):
        p(**{header: value})


@given(
    st.sampled_from(sorted(KNOWN)),
    st.floats(-90, 90),
    st.floats(-180, 180),
    st.sets(st.sampled_from(sorted(KNOWN))),
)
def test_a_hard_pin_is_always_home_or_in_the_set(
    pin: str, lat: float, lon: float, healthy: set[str]
) -> None:
    placed = p(pin=pin, client=(lat, lon), healthy=frozenset(healthy))
    assert placed.home == pin and placed.allowed == (pin,)


def test_fallbacks_are_the_other_allowed_regions_nearest_to_home_first() -> None:
    unpinned = Placement("us-east-1", ())
    assert fallbacks(unpinned, KNOWN) == ("eu-west-1", "ap-south-1")
    assert fallbacks(unpinned, KNOWN, app_regions=("us-east-1", "ap-south-1")) == ("ap-south-1",)
    assert fallbacks(Placement("eu-west-1", ("eu-west-1",)), KNOWN) == ()  # pinned: 503
    allowed_set = Placement("eu-west-1", ("eu-west-1", "us-east-1"))
    assert fallbacks(allowed_set, KNOWN) == ("us-east-1",)
