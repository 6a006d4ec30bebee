"""API keys: each grants a set of apps (or every app) and, for admin keys, deploys. Only a
key's SHA-256 is stored, under ``{root}/apikeys/``; the key is shown once, at creation.

SHA-256 rather than a slow password hash: keys are 256 random bits, so there is nothing to
brute-force, and the edge checks one on every request.

``spillover keys create|list|revoke|webhook-secret`` talks to etcd directly, as etcdctl would:
the first admin key cannot come from an edge that already demands one.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import secrets
import sys
import time

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from federation import keys, webhooks
from federation.appspec import NAME_PATTERN, describe
from federation.errors import Conflict, InvalidConfig, NotFound, SpilloverError
from federation.etcd import KV, Etcd, absent, put
from federation.topology import Clusters, EtcdConfig

PREFIX = "sk_"
ALL_APPS = "*"


class Grant(BaseModel):
    """What a key may do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)  # for humans: list and revoke by name
    apps: tuple[str, ...] = ()  # app names, or ("*",) for every app
    admin: bool = False  # may deploy and remove apps; implies every app
    read_all: bool = False  # may read and cancel every task of its apps, not only its own
    created_at: float = 0.0
    # Requests per second across the federation's edges, and how many may come at once
    # (default: one second's worth). None: unlimited.
    rate: float | None = Field(default=None, gt=0, le=1_000_000)
    burst: float | None = Field(default=None, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> Grant:
        if self.burst is not None and self.rate is None:
            raise ValueError(f"burst = {self.burst:g}: give a rate too")
        return self

    def may_use(self, app: str) -> bool:
        return self.admin or ALL_APPS in self.apps or app in self.apps

    def may_read(self, app: str, owner: str | None) -> bool:
        """A task belongs to the key that submitted it (by name: a key revoked and created
        again under its name keeps its tasks). Tasks submitted with auth off are everyone's."""
        if not self.may_use(app):
            return False
        return self.admin or self.read_all or owner is None or owner == self.name

    @property
    def limit(self) -> tuple[float, float] | None:
        """(rate, burst), or None when the key is not rate limited."""
        if self.rate is None:
            return None
        return self.rate, self.burst if self.burst is not None else max(1.0, self.rate)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


class ApiKeys:
    def __init__(self, etcd: Etcd, root: str) -> None:
        self.etcd = etcd
        self.root = root

    async def create(self, grant: Grant) -> str:
        """Store a new key's grant; return the key (the only time it exists in clear)."""
        if any(g.name == grant.name for g in await self.list()):
            raise Conflict(f"a key named {grant.name!r} exists; revoke it first")
        key = new_key()
        stored = grant.model_copy(update={"created_at": time.time()})
        k = keys.apikey(self.root, digest(key))
        result = await self.etcd.txn([absent(k)], [put(k, stored.model_dump_json().encode())])
        if not result.succeeded:  # 256 random bits: never, but never overwrite a grant
            raise Conflict("key collision; try again")
        return key

    async def list(self) -> list[Grant]:
        prefix = keys.apikeys(self.root)
        kvs, _ = await self.etcd.range_all(prefix, keys.prefix_end(prefix))
        return sorted((_grant(kv) for kv in kvs), key=lambda g: g.name)

    async def revoke(self, name: str) -> None:
        prefix = keys.apikeys(self.root)
        kvs, _ = await self.etcd.range_all(prefix, keys.prefix_end(prefix))
        found = [kv.key for kv in kvs if _grant(kv).name == name]
        if not found:
            raise NotFound(f"no key named {name!r}")
        for k in found:
            await self.etcd.delete(k)


def _grant(kv: KV) -> Grant:
    return Grant.model_validate_json(kv.value)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="spillover keys", description="Manage API keys.")
    sub = ap.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("name")
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument("--apps", help="comma list of apps, or * for every app")
    scope.add_argument("--admin", action="store_true", help="every app, and deploys")
    create.add_argument(
        "--read-all", action="store_true", help="read and cancel every task of its apps"
    )
    create.add_argument("--rate", type=float, help="requests per second, across all edges")
    create.add_argument("--burst", type=float, help="requests at once (default: --rate)")
    sub.add_parser("list", help="list keys (names and grants, never the keys)")
    revoke = sub.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    hook = sub.add_parser("webhook-secret", help="print (or rotate) an app's webhook secret")
    hook.add_argument("--app", required=True, help="the app whose deliveries it signs")
    hook.add_argument("--rotate", action="store_true", help="a new secret; the old one signs "
                      "too for --overlap seconds, so receivers can change over")  # fmt: skip
    hook.add_argument("--overlap", type=float, default=webhooks.OVERLAP, metavar="S",
                      help="after --rotate (default: a day, at most 30)")  # fmt: skip
    args = ap.parse_args(argv)
    try:
        asyncio.run(_run(args))
    except SpilloverError as e:
        sys.exit(f"spillover keys: {e.message}")


async def _run(args: argparse.Namespace) -> None:
    clusters = Clusters(EtcdConfig.from_env(os.environ))
    store = ApiKeys(clusters.control, clusters.root)
    try:
        if args.command == "create":
            apps = tuple(a.strip() for a in (args.apps or "").split(",") if a.strip())
            try:
                grant = Grant(
                    name=args.name, apps=apps, admin=args.admin, read_all=args.read_all,
                    rate=args.rate, burst=args.burst,
                )  # fmt: skip
            except ValidationError as e:
                raise InvalidConfig(describe(e)) from None
            if not grant.admin and not grant.apps:
                raise InvalidConfig("--apps: name at least one app, or *")
            print(await store.create(grant))
        elif args.command == "list":
            for g in await store.list():
                scope = "admin" if g.admin else ",".join(g.apps)
                scope += " (read all)" if g.read_all else ""
                limit = f"{g.limit[0]:g}/s burst {g.limit[1]:g}" if g.limit else "unlimited"
                print(f"{g.name}\t{scope}\t{limit}")
        elif args.command == "revoke":
            await store.revoke(args.name)
            print(f"revoked {args.name}")
        else:
            await _webhook_secret(clusters, args.app, args.rotate, args.overlap)
    finally:
        await clusters.close()


async def _webhook_secret(clusters: Clusters, app: str, rotate: bool, overlap: float) -> None:
    if not re.fullmatch(NAME_PATTERN, app):
        raise InvalidConfig(f"--app {app!r}: must match {NAME_PATTERN}")
    if rotate:
        if not 0 <= overlap <= 30 * 86_400:
            raise InvalidConfig(
                f"--overlap {overlap:g}: must be from 0 to 2592000 seconds (30 days)"
            )
        now = time.time()
        found = await webhooks.rotate(clusters.control, clusters.root, app, now, overlap)
        if found.previous is not None and overlap > 0:
            print(f"the previous secret signs too for {overlap:g} s more", file=sys.stderr)
    else:
        found = await webhooks.app_secrets(clusters.control, clusters.root, app)
    print(found.current)


if __name__ == "__main__":
    main()
