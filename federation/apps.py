"""Deployed apps: their specs in the control keyspace, read by edges and agents."""

from __future__ import annotations

from collections.abc import AsyncIterator

from federation import keys
from federation.appspec import AppSpec
from federation.errors import NotFound
from federation.etcd import KV, Etcd, absent, follow, put
from federation.webhooks import AppSecrets, new_secret


class AppRegistry:
    def __init__(self, etcd: Etcd, root: str) -> None:
        self.etcd = etcd
        self.root = root

    async def put(self, spec: AppSpec) -> bool:
        """Deploy or update; True when the app is new. The app's webhook secret comes with its
        first deploy, in the same txn: with etcd RBAC on only the deployer (the admin) may write
        secrets, and an update or a redeploy after a delete keeps the one receivers have."""
        key, secret = keys.app(self.root, spec.name), keys.webhook_secrets(self.root, spec.name)
        existed = await self.etcd.get(key) is not None
        value = spec.model_dump_json().encode()
        fresh = AppSecrets(new_secret()).encode()
        await self.etcd.txn(
            [absent(secret)], [put(key, value), put(secret, fresh)], [put(key, value)]
        )
        return not existed

    async def get(self, name: str) -> AppSpec:
        kv = await self.etcd.get(keys.app(self.root, name))
        if kv is None:
            raise NotFound(f"app {name!r} is not deployed")
        return AppSpec.model_validate_json(kv.value)

    async def list(self) -> list[AppSpec]:
        prefix = keys.apps(self.root)
        kvs, _ = await self.etcd.range_all(prefix, keys.prefix_end(prefix))
        return [AppSpec.model_validate_json(kv.value) for kv in kvs]

    async def delete(self, name: str) -> None:
        if await self.etcd.get(keys.app(self.root, name)) is None:
            raise NotFound(f"app {name!r} is not deployed")
        await self.etcd.delete(keys.app(self.root, name))

    async def follow(self) -> AsyncIterator[dict[str, AppSpec]]:
        """Every deployed app, now and after each change."""
        async for specs in follow(self.etcd, keys.apps(self.root), _decode):
            yield {s.name: s for s in specs.values()}


def _decode(kv: KV) -> AppSpec:
    return AppSpec.model_validate_json(kv.value)
