"""etcd RBAC: one role per node kind, derived from the key layout (``keys.py``).

With ``--client-cert-auth`` and auth on, etcd takes the client certificate's CN as the user
(``etcd_certs.py`` issues them). User, role and CN share a name:

- ``edge`` may enqueue, read and cancel tasks (the partition keyspace and idempotency keys),
  publish its own heartbeat, and read apps, API key grants, region heartbeats and the blob secret;
- ``agent`` may claim, settle and reap tasks, deliver webhooks (one chain per webhook, claimed
  in the partition keyspace), publish region heartbeats, elect its region's autoscaler, and read
  apps, every app's webhook secrets and the blob secret;
- ``root`` (etcd's own root user and role: the admin) may do everything, and is the only user
  that may write apps, API keys and the secrets, or defragment and disarm alarms (so the
  storage keeper is root's: ``spillover etcd-keeper``).

No edge or agent can write ``apps/`` (which code GPU nodes run) or ``apikeys/`` (minting an admin
key). Inside the partition keyspace both need to write tasks: an edge cancels a running task
(its claim), an agent sweeps every kind of key; splitting it per kind would buy nothing, since
whoever may write a task's record may already decide what a client is told about it.

etcd must check what it is told to: releases before 3.4.42, 3.5.28 and 3.6.9 do not check the
ops of nested txns at all, and older ones have more holes (``known_holes``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from dataclasses import dataclass
from typing import Any, Literal

from aetcd import rpc
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from federation import keys
from federation.errors import SpilloverError, Unavailable
from federation.etcd import Etcd, get_or_create
from federation.topology import Clusters, EtcdConfig

ROOT, EDGE, AGENT = "root", "edge", "agent"
USERS = (ROOT, EDGE, AGENT)  # each user's role has its name; root's is etcd's built-in one

Perm = Literal["read", "write", "readwrite"]
_PERM = {"read": rpc.Permission.READ, "write": rpc.Permission.WRITE,
         "readwrite": rpc.Permission.READWRITE}  # fmt: skip


@dataclass(frozen=True, order=True)
class Permission:
    key: bytes
    range_end: bytes  # b"": the one key
    perm: Perm


def _under(prefix: bytes, perm: Perm) -> Permission:
    return Permission(prefix, keys.prefix_end(prefix), perm)


def _only(key: bytes, perm: Perm) -> Permission:
    return Permission(key, b"", perm)


def roles(root: str) -> dict[str, tuple[Permission, ...]]:
    """What each role may touch: the narrowest ranges every code path of its node kind needs
    (``tests/integration/federation/test_etcd_rbac.py`` runs them through these roles)."""
    return {
        EDGE: (
            _under(keys.apps(root), "read"),  # what it serves; readiness reads here too
            _under(keys.apikeys(root), "read"),  # grants, followed
            _under(keys.regions(root), "read"),  # heartbeats: health, home region choice
            _under(keys.edges(root), "readwrite"),  # its own heartbeat, the others'
            _only(keys.blob_secret(root), "read"),  # signs fs blob URLs
            _under(keys.partitions(root), "readwrite"),  # enqueue, read, watch, cancel
            _under(keys.idempotency_all(root), "readwrite"),  # enqueue's dedup
            _only(keys.quota_probe(root), "write"),  # enqueue's top-level put (groupcommit.py)
        ),
        AGENT: (
            _under(keys.apps(root), "read"),  # what it runs
            _under(keys.regions(root), "readwrite"),  # its heartbeat, the others'
            _under(keys.leaders(root), "readwrite"),  # the region's autoscaler election
            _under(keys.webhook_secrets_all(root), "read"),  # signs webhooks, any app's
            _only(keys.blob_secret(root), "read"),  # signs fs blob URLs
            _under(keys.partitions(root), "readwrite"),  # claim, settle, events, reaper
            _under(keys.idempotency_all(root), "write"),  # the sweep deletes finished ones
        ),
    }


async def apply(etcd: Etcd, root: str) -> None:
    """Make the cluster's users, roles and permissions what ``roles`` says (a role's other
    permissions and a user's other roles are revoked), create the blob secret only root may
    write (an app's webhook secrets come with its deploy: ``apps.py``), then turn auth on.
    Idempotent; ``etcd`` must speak with root's certificate once auth is on (before, any
    client certificate may)."""
    wanted = roles(root)
    have = {r for r in (await etcd.auth("RoleList", rpc.AuthRoleListRequest())).roles}
    for role, perms in wanted.items():
        if role not in have:
            await _tolerate_exists(etcd.auth("RoleAdd", rpc.AuthRoleAddRequest(name=role)))
        await _converge_role(etcd, role, perms)
    users = set((await etcd.auth("UserList", rpc.AuthUserListRequest())).users)
    for user in USERS:
        if user not in users:
            # No password: nobody can log in as it; only a certificate with its CN can be it.
            add = rpc.AuthUserAddRequest(name=user, options=rpc.UserAddOptions(no_password=True))
            await _tolerate_exists(etcd.auth("UserAdd", add))
        granted = set((await etcd.auth("UserGet", rpc.AuthUserGetRequest(name=user))).roles)
        for extra in granted - {user}:
            await etcd.auth("UserRevokeRole", rpc.AuthUserRevokeRoleRequest(name=user, role=extra))
        if user not in granted:
            await etcd.auth("UserGrantRole", rpc.AuthUserGrantRoleRequest(user=user, role=user))
    await get_or_create(etcd, keys.blob_secret(root), secrets.token_hex(32).encode())
    await etcd.auth("AuthEnable", rpc.AuthEnableRequest())


async def _converge_role(etcd: Etcd, role: str, perms: tuple[Permission, ...]) -> None:
    got = (await etcd.auth("RoleGet", rpc.AuthRoleGetRequest(role=role))).perm
    present = {(p.key, p.range_end, p.permType) for p in got}
    target = {(p.key, p.range_end, _PERM[p.perm]) for p in perms}
    ranges = {(k, e) for k, e, _ in target}
    for key, end, _ in present:
        if (key, end) not in ranges:
            revoke = rpc.AuthRoleRevokePermissionRequest(role=role, key=key, range_end=end)
            await etcd.auth("RoleRevokePermission", revoke)
    for key, end, kind in target - present:  # a grant on a range replaces its type
        perm = rpc.Permission(permType=kind, key=key, range_end=end)
        await etcd.auth(
            "RoleGrantPermission", rpc.AuthRoleGrantPermissionRequest(name=role, perm=perm)
        )


async def _tolerate_exists(call: Any) -> None:
    """Two bootstraps at once (every etcd node runs one) may both add a role or user."""
    try:
        await call
    except SpilloverError as e:
        if "already exists" not in e.message:
            raise


# -- what an etcd release enforces ----------------------------------------------------------

# (first fixed patch per minor line, what is open before it). A line older than every listed
# one has the hole; a newer one does not. From etcd's advisories (2026); see docs/security.md.
HOLES: tuple[tuple[dict[tuple[int, int], int], str], ...] = (
    ({(3, 4): 42, (3, 5): 28, (3, 6): 9},
     "nested txn ops are not checked (CVE-2026-33343): any user may write any key"),
    ({(3, 4): 42, (3, 5): 28, (3, 6): 9},
     "alarms, leases, compaction and the member list need no permission (CVE-2026-33413)"),
    ({(3, 4): 44, (3, 5): 30, (3, 6): 11},
     "prev_kv and lease attachment in txns are not checked (CVE-2026-44283)"),
    ({(3, 6): 0},
     "while a NOSPACE alarm is raised, auth changes are not checked: any user may turn auth "
     "off (raise the alarm, or fill the quota, first)"),
)  # fmt: skip


def known_holes(version: str) -> list[str]:
    """The published RBAC bypasses an etcd release (``3.4.23``) still has."""
    major, minor, patch = (int(x) for x in version.split("-")[0].split(".")[:3])
    holes = []
    for fixed, hole in HOLES:
        line = (major, minor)
        if line in fixed:
            if patch < fixed[line]:
                holes.append(hole)
        elif line < min(fixed):
            holes.append(hole)
    return holes


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="spillover etcd-rbac",
        description="Apply the node roles to an etcd cluster and turn auth on (idempotent). "
        "Connects as SPILLOVER_ETCD_ENDPOINTS with SPILLOVER_ETCD_CACERT, _CERT and _KEY: "
        "the root certificate (spillover etcd-certs).",
    )
    ap.add_argument("--root", default=keys.DEFAULT_ROOT, help="the federation's key root")
    ap.add_argument("--wait", type=float, default=0.0, metavar="S",
                    help="retry while etcd is unavailable, up to S seconds (at boot)")  # fmt: skip
    ap.add_argument("--show", action="store_true", help="print the roles, change nothing")
    args = ap.parse_args(argv)
    if args.show:
        for role, perms in roles(args.root).items():
            for p in perms:
                end = f" .. {p.range_end.decode()}" if p.range_end else ""
                print(f"{role}\t{p.perm}\t{p.key.decode()}{end}")
        return
    try:
        asyncio.run(_run(args.root, args.wait))
    except SpilloverError as e:
        sys.exit(f"spillover etcd-rbac: {e.message}")


async def _run(root: str, wait: float) -> None:
    clusters = Clusters(EtcdConfig.from_env(os.environ))
    try:
        async for attempt in AsyncRetrying(retry=retry_if_exception_type(Unavailable),
                                           stop=stop_after_delay(wait), wait=wait_fixed(1),
                                           reraise=True):  # fmt: skip
            with attempt:
                await apply(clusters.control, root)
                version = await clusters.control.version()
        print(f"etcd {version}: roles {', '.join(USERS)} applied under {root}/, auth on")
        for hole in known_holes(version):
            print(f"WARNING: etcd {version} does not enforce them fully: {hole}", file=sys.stderr)
    finally:
        await clusters.close()


if __name__ == "__main__":
    main()
