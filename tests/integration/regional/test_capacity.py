"""The AWS capacity provider against moto's server mode (the Auto Scaling HTTP API): a real
agent, elected, turns a backlog into more nodes in its group and back, and keeps its own node
protected from scale-in while it runs tasks."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from federation.task import State, new_ulid
from tests.integration.conftest import Harness, worker_spec
from tests.waiting import until

pytestmark = pytest.mark.slow


@pytest.fixture
def group(moto: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str, str]:
    """A GPU group of 1 to 3 nodes with one running: (client, name, its instance)."""
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(k, v)
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto)
    asg = boto3.client("autoscaling", region_name="us-east-1", endpoint_url=moto)
    name = f"gpu-{new_ulid().lower()}"
    ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "g5.xlarge"},
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=1, MaxSize=3, DesiredCapacity=1,
        LaunchTemplate={"LaunchTemplateName": name, "Version": "$Latest"},
        AvailabilityZones=["us-east-1a"],
    )  # fmt: skip
    (instance,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ][0]["Instances"]
    return asg, name, instance["InstanceId"]


async def test_a_backlog_grows_the_node_group_and_busy_nodes_are_protected_from_scale_in(
    harness: Harness, moto: str, group: tuple[Any, str, str]
) -> None:
    asg, name, instance = group

    def described() -> dict[str, Any]:
        g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        return g[0]  # type: ignore[no-any-return]

    def protected() -> bool:
        mine = [i for i in described()["Instances"] if i["InstanceId"] == instance]
        return bool(mine and mine[0]["ProtectedFromScaleIn"])

    await harness.apps.put(worker_spec(replica_concurrency=1, min_replicas=1, max_replicas=3,
                                       cooldown=2, queue_time_threshold=0.5))  # fmt: skip
    capacity = {"provider": "aws-asg", "group": name, "aws_region": "us-east-1",
                "endpoint_url": moto, "instance_id": instance}  # fmt: skip
    agent = await harness.start_agent(autoscale=True, capacity=capacity)
    await harness.ready(agent, "worker", 1)
    records = [await harness.submit("worker", "sleep", {"seconds": 1.5}) for _ in range(6)]
    await until(lambda: described()["DesiredCapacity"] == 3, timeout=30)  # the group's max
    await until(protected, timeout=10)
    assert len(agent.runners["worker"].pool.replicas) == 1  # this node's share, not the region's
    done = [await harness.result(r, timeout=60) for r in records]
    assert all(d.state is State.SUCCEEDED for d in done)
    await until(lambda: described()["DesiredCapacity"] == 1, timeout=60)  # after the cooldown
    await until(lambda: not protected(), timeout=10)
