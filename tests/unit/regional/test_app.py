"""What an app runs with in this region: its pool size, its partitions and its claim rules."""

from __future__ import annotations

from typing import Any

from federation.appspec import AppSpec, parse_spec
from regional.app import claim_rules, partitions_of, pool_size, serves
from regional.config import RegionConfig


def spec(regions: tuple[str, ...] = (), **scaling: Any) -> AppSpec:
    return parse_spec({"app": {"name": "demo", "handler": "m:M"}, "scaling": scaling,
                       "placement": {"regions": list(regions)}})  # fmt: skip


def region(**config: Any) -> RegionConfig:
    return RegionConfig(name="us-east-1", lat=0, lon=0, **config)


def test_pool_size_pinned_per_node_or_within_the_specs_bounds() -> None:
    s = spec(min_replicas=0, max_replicas=5)
    assert pool_size(s, region(replicas={"demo": 3})) == 3
    assert pool_size(s, region(capacity={"provider": "aws-asg", "group": "g",
                                         "replicas_per_node": 2})) == 2  # fmt: skip
    assert pool_size(s, region()) == 0  # the autoscaler starts one for the first task
    assert pool_size(s, region(autoscale=False)) == 1  # or nothing would ever run
    assert pool_size(spec(min_replicas=2, max_replicas=5), region(), current=9) == 5
    assert pool_size(spec(min_replicas=2, max_replicas=5), region(), current=1) == 2


def test_an_app_runs_where_it_is_placed_and_follows_those_partitions() -> None:
    assert serves(region(), spec()) and serves(region(), spec(("us-east-1", "eu-west-1")))
    assert not serves(region(), spec(("eu-west-1",)))
    here = region(peers=("ap-south-1",))
    assert partitions_of(here, spec(("eu-west-1", "us-east-1"))) == (
        "ap-south-1", "eu-west-1", "us-east-1",
    )  # fmt: skip
    rules = claim_rules("us-east-1", spec(("us-east-1",)), {"eu-west-1"})
    assert rules.down_regions == {"eu-west-1"} and rules.app_regions == ("us-east-1",)
