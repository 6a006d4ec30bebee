"""Replica isolation for real: an agent running as root (this machine's tests do) against an
etcd with TLS client certificates and RBAC, as the Terraform GPU nodes run; a hostile handler
(``tests/apps/snoop.py``) in a real replica subprocess tries what it should not."""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from federation.apps import AppRegistry
from federation.etcd_rbac import AGENT, ROOT
from federation.queue import Queue
from federation.topology import Clusters
from federation.waiters import TaskWaiters
from regional.agent import Agent
from regional.config import RegionConfig
from regional.replicas import LocalProcessProvider, Replica
from regional.users import GROUP
from tests.factories import task
from tests.integration.conftest import REGION, REPO, worker_spec
from tests.integration.federation.test_etcd_rbac import KEY_ROOT, Secured, rbac_on, secure
from tests.waiting import until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="replicas change user only under a root agent"),
]


@dataclass
class Node:
    secured: Secured
    agent: Agent
    queue: Queue
    waiters: TaskWaiters

    async def call(self, function: str, body: dict[str, Any] | None = None) -> Any:
        record = task(REGION, app="snoop", function=function)
        await self.queue.enqueue(record, json.dumps(body or {}).encode())
        done = await self.waiters.wait(record.id, 30)
        assert done.state.value == "succeeded", done.error
        return json.loads(await self.queue.result(done))

    def replica(self, app: str) -> Replica:
        return self.agent.runners[app].pool.ready_replicas[0]


def gpu_node() -> tuple[Path, Secured]:
    """A TLS etcd, and the certificates as a GPU node keeps them: in a directory anyone may
    pass through (its keys' own modes are all that guards them), certificates 0644, keys 0600."""
    place = Path(tempfile.mkdtemp(prefix="isolation-"))
    place.chmod(0o755)
    secured = secure(place)
    secured.certs.chmod(0o755)
    return place, secured


@pytest.fixture
async def node(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    place, secured = gpu_node()
    await rbac_on(secured)
    for k, v in {"AWS_SECRET_ACCESS_KEY": "agent-only", "SPILLOVER_ETCD_ENDPOINTS": "x"}.items():
        monkeypatch.setenv(k, v)  # what the agent's environment may hold
    admin = Clusters(secured.config(ROOT))
    apps = AppRegistry(admin.control, KEY_ROOT)
    await apps.put(worker_spec("snoop", "tests.apps.snoop:Snoop"))
    await apps.put(worker_spec())
    config = RegionConfig(name=REGION, lat=39.0, lon=-77.5, etcd=secured.config(AGENT),
                          app_root=REPO, lease_ttl=2, autoscale=False,
                          blobs={"dir": str(place / "blobs")})  # fmt: skip
    provider = LocalProcessProvider(REPO)
    agent = Agent(config, Clusters(config.etcd), provider)
    queue = Queue(admin)
    waiters = TaskWaiters(queue, [REGION])
    running = [asyncio.create_task(agent.run()), asyncio.create_task(waiters.run())]
    try:
        for app in ("snoop", "worker"):
            await until(lambda a=app: _serving(agent, a), 30)  # type: ignore[misc]
        yield Node(secured, agent, queue, waiters)
    finally:
        for t in running:
            t.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        provider.close()
        await agent.clusters.close()
        await admin.close()
        secured.cluster.close()
        shutil.rmtree(place, ignore_errors=True)


def _serving(agent: Agent, app: str) -> bool:
    runner = agent.runners.get(app)
    return runner is not None and bool(runner.pool.ready_replicas)


async def test_a_replica_runs_as_its_apps_own_user_with_nothing_of_the_agents(node: Node) -> None:
    me = await node.call("whoami")
    user, group = pwd.getpwnam("spillover-snoop"), grp.getgrnam(GROUP)
    assert (me["uid"], me["euid"], me["gid"], me["groups"]) == (user.pw_uid, user.pw_uid,
                                                                group.gr_gid, [])  # fmt: skip
    assert me["env"] == []  # no etcd settings, no AWS credentials
    assert me["cwd"] == str(REPO) and me["file_mode"] == 0o600
    socket = node.replica("snoop").address
    assert socket is not None and me["home"] == str(socket.parent)


async def test_a_handler_cannot_open_the_agents_etcd_key_nor_reach_etcd(node: Node) -> None:
    certs = node.secured.certs
    assert (await node.call("read", {"path": str(certs / "agent.pem")}))["ok"]  # public
    blob = certs.parent / "blobs" / "any"  # the agent's blob store: tenants' bodies, results
    for path in (*(certs / k for k in ("agent.key", "root.key", "client-ca.key")), blob):
        tried = await node.call("read", {"path": str(path)})
        assert not tried["ok"] and tried["error"].startswith("PermissionError"), path
    certs.chmod(0o700)  # as etcd-certs leaves it, and a GPU node's /etc/spillover/etcd
    try:
        tried = await node.call("read", {"path": str(certs / "agent.pem")})
        assert not tried["ok"] and tried["error"].startswith("PermissionError")
    finally:
        certs.chmod(0o755)
    endpoint = node.secured.cluster.endpoints[0]
    asked = {"endpoint": endpoint, "ca": str(certs / "peer-ca.pem"), "key": f"{KEY_ROOT}/apps/"}
    tried = await node.call("etcd", asked)
    assert not tried["ok"], tried  # no client certificate it can use: no etcd user at all


async def test_a_handler_cannot_reach_another_apps_replica(node: Node) -> None:
    theirs, mine = node.replica("worker").address, node.replica("snoop").address
    assert theirs is not None and mine is not None
    tried = await node.call("connect", {"path": str(theirs)})
    assert not tried["ok"] and tried["error"].startswith("PermissionError")
    assert (await node.call("connect", {"path": str(mine)}))["ok"]  # its own app's: yes
    worker = pwd.getpwnam("spillover-worker")
    for path, mode in ((theirs, 0o600), (theirs.parent, 0o700)):
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (worker.pw_uid, mode)
