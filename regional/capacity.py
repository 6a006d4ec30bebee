"""The AWS provider of capacity: the region's GPU autoscaling group, driven by the region's
autoscaler (aiobotocore). Selected in ``region.toml``::

    [capacity]
    provider = "aws-asg"
    group = "spillover-us-east-1-gpu"
    instance_id = "i-0123..."     # this node (the Terraform module's cloud-init fills it in)
    replicas_per_node = 1

Each GPU node runs an agent with ``replicas_per_node`` replicas of every app. The region's
elected autoscaler turns its decision (replicas) into nodes — ceil(replicas / per node), the
largest over the apps, within the group's min and max — and sets the group's desired capacity.
Scale-in never kills a running task: every agent keeps its own instance protected from scale-in
while it runs tasks, so the group can only terminate idle nodes (and an agent told to stop
drains first).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from aiobotocore.session import get_session
from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)


class CapacityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # local: the autoscaler starts and stops this agent's replica processes.
    provider: Literal["local", "aws-asg"] = "local"
    group: str | None = None  # aws-asg: the GPU autoscaling group's name
    aws_region: str | None = None
    endpoint_url: str | None = None  # another AWS API endpoint (moto in the tests)
    instance_id: str | None = None  # this node, protected from scale-in while it runs tasks
    replicas_per_node: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _asg_needs_group(self) -> CapacityConfig:
        if self.provider == "aws-asg" and not self.group:
            raise ValueError("provider = 'aws-asg' needs group")
        return self


@dataclass(frozen=True)
class Group:
    desired: int
    min: int
    max: int


class AsgCapacity:
    def __init__(self, client: Any, config: CapacityConfig) -> None:
        assert config.group is not None
        self.client = client
        self.group = config.group
        self.instance_id = config.instance_id
        self.per_node = config.replicas_per_node
        self._protected: bool | None = None

    async def describe(self) -> Group:
        reply = await self.client.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])
        (g,) = reply["AutoScalingGroups"]
        return Group(desired=g["DesiredCapacity"], min=g["MinSize"], max=g["MaxSize"])

    def nodes_for(self, replicas: int, group: Group) -> int:
        """Worked example: 5 replicas at 2 per node → 3 nodes; clamped to the group's bounds."""
        return min(max(math.ceil(replicas / self.per_node), group.min), group.max)

    async def scale_to(self, replicas: int, group: Group) -> int:
        nodes = self.nodes_for(replicas, group)
        if nodes != group.desired:
            await self.client.set_desired_capacity(
                AutoScalingGroupName=self.group, DesiredCapacity=nodes, HonorCooldown=False
            )
            log.info("%s: %d -> %d nodes (%d replicas)", self.group, group.desired, nodes, replicas)
        return nodes

    async def protect(self, busy: bool) -> None:
        """Keep this node from being chosen for scale-in while it runs tasks."""
        if self.instance_id is None or busy == self._protected:
            return
        await self.client.set_instance_protection(
            InstanceIds=[self.instance_id], AutoScalingGroupName=self.group,
            ProtectedFromScaleIn=busy,
        )  # fmt: skip
        self._protected = busy


@contextlib.asynccontextmanager
async def open_capacity(config: CapacityConfig) -> AsyncIterator[AsgCapacity | None]:
    if config.provider == "local":
        yield None
        return
    session = get_session()
    async with session.create_client(
        "autoscaling", region_name=config.aws_region, endpoint_url=config.endpoint_url
    ) as client:
        yield AsgCapacity(client, config)
