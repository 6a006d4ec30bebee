"""Two regions, each partition in its own etcd cluster, the control keyspace in a third; the
eu-west-1 agent reaches the other clusters through a TCP proxy adding 40 ms each way (an 80 ms
WAN round trip). Real etcd processes, real agents with replica subprocesses, a real edge."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from federation.apps import AppRegistry
from federation.appspec import parse_spec
from federation.queue import Queue
from federation.task import TaskRecord
from federation.topology import Clusters, EtcdConfig
from federation.waiters import TaskWaiters
from regional.agent import Agent
from regional.config import RegionConfig
from regional.replicas import LocalProcessProvider
from spillover.local.etcd import LocalEtcd
from tests.factories import task
from tests.integration.conftest import REPO
from tests.integration.edge.test_edge import start_edge
from tests.tcp_proxy import TcpProxy
from tests.waiting import until

pytestmark = pytest.mark.slow
US, EU = "us-east-1", "eu-west-1"
WAN_ONE_WAY = 0.04


@dataclass
class World:
    control: LocalEtcd
    us: LocalEtcd
    eu: LocalEtcd
    config: EtcdConfig  # as seen from us-east-1 (and clients)
    queue: Queue
    waiters: TaskWaiters
    agents: dict[str, Agent]

    async def run(self, record: TaskRecord, body: Any) -> TaskRecord:
        async with self.waiters.subscribe(record.id) as _:
            await self.queue.enqueue(record, json.dumps(body).encode())
        return record


def endpoint(cluster: LocalEtcd) -> tuple[str, int]:
    return "127.0.0.1", cluster.members[0].client_port


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    with (LocalEtcd(tmp_path / "c") as control, LocalEtcd(tmp_path / "us") as us,
          LocalEtcd(tmp_path / "eu") as eu):  # fmt: skip
        near = EtcdConfig(
            endpoints=tuple(control.endpoints), timeout=2.0,
            partitions={US: tuple(us.endpoints), EU: tuple(eu.endpoints)},
        )  # fmt: skip
        proxies = [await TcpProxy(endpoint(c), WAN_ONE_WAY).start() for c in (control, us)]
        far = near.model_copy(update={
            "endpoints": (proxies[0].endpoint,),
            "partitions": {US: (proxies[1].endpoint,), EU: tuple(eu.endpoints)},
        })  # fmt: skip
        spec = {"app": {"name": "worker", "handler": "tests.apps.worker:Worker"},
                "scaling": {"replica_concurrency": 1, "min_replicas": 1},
                "placement": {"regions": [US, EU], "spillover_after": 0.3}}  # fmt: skip
        clusters = Clusters(near)
        await AppRegistry(clusters.control, clusters.root).put(parse_spec(spec))
        agents, running = {}, []
        for name, lat, lon, cfg, peer in ((US, 39.0, -77.5, near, EU), (EU, 53.3, -6.3, far, US)):
            region = RegionConfig(name=name, lat=lat, lon=lon, peers=(peer,), etcd=cfg,
                                  app_root=REPO, lease_ttl=2, heartbeat_interval=0.2,
                                  autoscale=False, blobs={"dir": tmp_path / name})  # fmt: skip
            agents[name] = Agent(region, Clusters(cfg), LocalProcessProvider(REPO))
            running.append(asyncio.create_task(agents[name].run()))
        queue = Queue(clusters)
        waiters = TaskWaiters(queue, [US, EU])
        running.append(asyncio.create_task(waiters.run()))
        for a in agents.values():
            await until(
                lambda a=a: "worker" in a.runners and bool(a.runners["worker"].pool.ready_replicas),
                30,
            )  # type: ignore[misc]
        try:
            yield World(control, us, eu, near, queue, waiters, agents)
        finally:
            for t in running:
                t.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            for a in agents.values():
                await a.clusters.close()
            await clusters.close()
            for p in proxies:
                await p.close()


async def test_a_saturated_region_spills_over_across_clusters_and_a_wan_but_pins_hold(
    world: World,
) -> None:
    """us-east-1's one slot is busy: its unpinned tasks run in eu-west-1 (which claims them from
    us-east-1's etcd, 80 ms away); the pinned one waits for us-east-1."""
    busy = task(US, app="worker", function="sleep", allowed_regions=(US,))
    await world.queue.enqueue(busy, json.dumps({"seconds": 2}).encode())
    await asyncio.sleep(0.3)
    pinned = task(US, app="worker", function="sleep", allowed_regions=(US,))
    free = [task(US, app="worker", function="sleep") for _ in range(2)]
    for r in [pinned, *free]:
        await world.queue.enqueue(r, json.dumps({"seconds": 0.2}).encode())
    done = {r.id: await world.waiters.wait(r.id, timeout=30) for r in [busy, pinned, *free]}
    assert all(d.state.value == "succeeded" for d in done.values())
    assert done[busy.id].region == US == done[pinned.id].region
    assert {done[r.id].region for r in free} == {EU}
    moved = world.agents[EU].metrics.spillover.labels("worker", US, EU)._value.get()
    assert moved == 2


async def test_home_cluster_down_unpinned_go_elsewhere_pinned_get_503(world: World) -> None:
    edge = await start_edge(world.config)  # regions us-east-1 (its own) and eu-west-1
    try:
        world.us.stop(0)  # us-east-1's partition: gone; control and eu-west-1 still up
        status, body, headers = await edge.call(
            "POST", "/v1/apps/worker/echo", data=b"hello", headers={"X-Spillover-Timeout": "20"}
        )
        assert (status, body) == (200, b"hello")
        assert headers["X-Spillover-Task-Id"].endswith("." + EU)
        status, err, headers = await edge.call(
            "POST", "/v1/apps/worker/echo", data=b"x", headers={"X-Spillover-Region": US}
        )
        assert status == 503 and headers["Retry-After"] and err["error"]["code"] == "unavailable"
    finally:
        await edge.close()


async def test_a_backlog_drains_through_every_regions_capacity(world: World) -> None:
    """Eight unpinned 0.5 s tasks homed in us-east-1, one slot per region: eu-west-1 takes its
    share (it claims whenever a slot frees and a task has waited spillover_after), so the
    backlog drains at about twice one region's rate."""
    records = [task(US, app="worker", function="sleep") for _ in range(8)]
    for r in records:
        await world.queue.enqueue(r, json.dumps({"seconds": 0.5}).encode())
    done = [await world.waiters.wait(r.id, timeout=30) for r in records]
    ran = [d.region for d in done]
    assert all(d.state.value == "succeeded" for d in done)
    assert ran.count(US) >= 2 and ran.count(EU) >= 2, ran


async def test_a_spilled_over_task_gets_its_large_payload_and_returns_its_result(
    world: World,
) -> None:
    """The body lies on the edge's disk (us-east-1), the task runs in eu-west-1: eu-west-1's
    agent streams the body from the edge, and the edge streams the result from eu-west-1's."""
    busy = task(US, app="worker", function="sleep", allowed_regions=(US,))
    await world.queue.enqueue(busy, json.dumps({"seconds": 3}).encode())
    await until(lambda: bool(world.agents[US].runners["worker"].running), 10)
    edge = await start_edge(world.config)
    try:
        data = os.urandom(2 << 20)
        status, body, headers = await edge.call("POST", "/v1/apps/worker/echo", data=data)
        assert (status, headers["X-Spillover-Region"]) == (200, EU)
        assert body == data
        record = await world.queue.get(headers["X-Spillover-Task-Id"])
        assert record.payload_ref is not None and record.result_ref is not None
    finally:
        await edge.close()
