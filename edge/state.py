"""What an edge keeps in memory — deployed apps, region and edge heartbeats, followed from
etcd — and the edge's own heartbeat, which it publishes under its lease."""

from __future__ import annotations

import asyncio
import logging
import time

from edge.overview import ScalingLog
from federation import keys
from federation.apps import AppRegistry
from federation.appspec import AppSpec
from federation.errors import Unavailable
from federation.etcd import KV, Etcd, follow
from federation.health import EtcdHealth, FederationHealth, federation_health
from federation.heartbeat import EdgeHeartbeat, RegionHeartbeat, merge
from federation.session import Session

log = logging.getLogger(__name__)


class FederationView:
    def __init__(self, control: Etcd, root: str) -> None:
        self.control = control
        self.root = root
        self.registry = AppRegistry(control, root)
        self.apps: dict[str, AppSpec] = {}
        self.heartbeats: dict[str, RegionHeartbeat] = {}
        self.edges: dict[str, EdgeHeartbeat] = {}
        self.scaling = ScalingLog()  # changes of desired replicas seen in the heartbeats

    async def follow_apps(self) -> None:
        async for specs in self.registry.follow():
            self.apps = specs

    async def follow_regions(self) -> None:
        prefix = keys.regions(self.root)
        async for beats in follow(self.control, prefix, _region):
            self.heartbeats = merge(beats.values())
            self.scaling.record(self.heartbeats, time.time())

    async def follow_edges(self) -> None:
        async for beats in follow(self.control, keys.edges(self.root), _edge):
            self.edges = {b.id: b for b in beats.values()}

    async def publish(self, me: EdgeHeartbeat, interval: float = 1.0, ttl: int = 5) -> None:
        """Keep this edge's heartbeat in etcd under a lease (a new one after a lost session)."""
        key = keys.edge(self.root, me.id)
        session: Session | None = None
        while True:
            try:
                if session is None or session.lost.is_set():
                    session = await Session(self.control, ttl).start()
                beat = me.model_copy(update={"at": time.time()})
                await self.control.put(key, beat.model_dump_json().encode(), lease=session.lease)
            except Unavailable as e:
                log.warning("edge heartbeat failed: %s", e)
            try:
                await asyncio.sleep(interval)
            except asyncio.CancelledError:
                if session is not None:
                    await session.close()
                raise

    async def health(self, regions: list[str], reasons: list[str]) -> FederationHealth:
        try:
            async with asyncio.timeout(2):
                members, leader = await self.control.status()
            etcd = EtcdHealth(healthy=leader is not None, members=members, leader=leader)
        except (Unavailable, TimeoutError):
            etcd = EtcdHealth(healthy=False)
        return federation_health(
            regions, self.heartbeats, self.edges.values(), etcd, time.time(), reasons
        )


def _region(kv: KV) -> RegionHeartbeat:
    return RegionHeartbeat.model_validate_json(kv.value)


def _edge(kv: KV) -> EdgeHeartbeat:
    return EdgeHeartbeat.model_validate_json(kv.value)
