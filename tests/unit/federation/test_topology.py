"""Clusters are named: ``control``, or the regions whose partitions they hold."""

from __future__ import annotations

from federation.topology import Clusters, EtcdConfig


def test_every_partition_in_the_control_cluster_shares_its_name_and_client() -> None:
    clusters = Clusters(EtcdConfig(endpoints=("http://10.0.0.1:2379",)))
    assert clusters.control.name == "control"
    assert clusters.name_of("us-east-1") == clusters.name_of("eu-west-1") == "control"
    assert clusters.for_partition("us-east-1") is clusters.control


def test_partition_clusters_are_named_after_the_regions_they_hold() -> None:
    config = EtcdConfig(
        endpoints=("http://10.0.0.1:2379",),
        partitions={"eu-west-1": ("http://10.0.1.1:2379",), "eu-central-1": ("http://10.0.1.1:2379",),
                    "us-east-1": ("http://10.0.2.1:2379",), "ap-south-1": ("http://10.0.0.1:2379",)},
    )  # fmt: skip
    clusters = Clusters(config)
    both = {clusters.name_of("eu-west-1"), clusters.name_of("eu-central-1")}
    assert both == {"eu-central-1+eu-west-1"}
    assert clusters.name_of("us-east-1") == "us-east-1"
    assert clusters.name_of("ap-south-1") == "control"  # configured, but the control cluster
    assert clusters.for_partition("eu-west-1") is clusters.for_partition("eu-central-1")
