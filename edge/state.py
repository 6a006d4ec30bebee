"""What an edge keeps in memory: deployed apps and region heartbeats, followed from etcd."""

from __future__ import annotations

from federation import keys
from federation.apps import AppRegistry
from federation.appspec import AppSpec
from federation.etcd import Etcd, Snapshot
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
        beats: dict[bytes, RegionHeartbeat] = {}
        async for item in self.control.list_watch(prefix):
            if isinstance(item, Snapshot):
                beats = {kv.key: RegionHeartbeat.model_validate_json(kv.value) for kv in item.kvs}
            elif item.kind == "put":
                beats[item.kv.key] = RegionHeartbeat.model_validate_json(item.kv.value)
            else:
                beats.pop(item.kv.key, None)
            self.heartbeats = {b.name: b for b in beats.values()}
