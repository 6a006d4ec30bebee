"""What an edge keeps in memory: deployed apps and region heartbeats, followed from etcd."""

from __future__ import annotations

from federation import keys
from federation.apps import AppRegistry
from federation.appspec import AppSpec
from federation.etcd import KV, Etcd, follow
from federation.heartbeat import RegionHeartbeat


class FederationView:
    def __init__(self, control: Etcd, root: str) -> None:
        self.control = control
        self.root = root
        self.registry = AppRegistry(control, root)
        self.apps: dict[str, AppSpec] = {}
        self.heartbeats: dict[str, RegionHeartbeat] = {}

    async def follow_apps(self) -> None:
        async for specs in self.registry.follow():
            self.apps = specs

    async def follow_regions(self) -> None:
        prefix = keys.regions(self.root)
        async for beats in follow(self.control, prefix, _heartbeat):
            self.heartbeats = {b.name: b for b in beats.values()}


def _heartbeat(kv: KV) -> RegionHeartbeat:
    return RegionHeartbeat.model_validate_json(kv.value)
