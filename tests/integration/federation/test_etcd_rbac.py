"""etcd RBAC (``federation/etcd_rbac.py``) on a real etcd with TLS client certificates from
``etcd_certs.py``: each node kind's certificate does what its code needs and no more.

etcd 3.4 before 3.4.42 does not check the ops of a nested txn, and Spillover nests most of its
writes: there every op that went through is also checked here against the role (a recording
client), so the roles are proven for the etcd releases that do check. The known holes of the
etcd on PATH are tests expected to fail there (``known_holes``), and to pass on a fixed one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aetcd import rpc
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import load_pem_x509_certificate

from federation import keys
from federation.apikeys import ApiKeys, Grant
from federation.apps import AppRegistry
from federation.errors import PermissionDenied, Unavailable
from federation.etcd import Etcd, nested, put
from federation.etcd_certs import Issued, bootstrap, issue, write
from federation.etcd_rbac import AGENT, EDGE, ROOT, USERS, Permission, apply, known_holes, roles
from federation.etcd_tls import EtcdTls
from federation.keeper import keep
from federation.queue import Queue
from federation.reaper import sweep_retention
from federation.session import Session
from federation.storage import StorageGuard, StorageKeeper
from federation.topology import Clusters, EtcdConfig
from federation.webhooks import app_secrets, rotate
from regional.agent import Agent
from regional.config import RegionConfig
from regional.replicas import LocalProcessProvider
from spillover.local.etcd import LocalEtcd, ServerTls, etcd_version
from tests.conftest import own_dir
from tests.integration.conftest import REGION, REPO, worker_spec
from tests.integration.edge.test_edge import start_edge
from tests.waiting import until

pytestmark = pytest.mark.slow
KEY_ROOT = "/rbac"
HOLES = known_holes(etcd_version())


@dataclass
class Secured:
    cluster: LocalEtcd
    certs: Path

    def tls(self, user: str) -> EtcdTls:
        return EtcdTls(ca_file=self.certs / "peer-ca.pem", cert_file=self.certs / f"{user}.pem",
                       key_file=self.certs / f"{user}.key")  # fmt: skip

    def config(self, user: str) -> EtcdConfig:
        endpoints = tuple(self.cluster.endpoints)
        return EtcdConfig(endpoints=endpoints, root=KEY_ROOT, tls=self.tls(user), timeout=3)

    def etcd(self, user: str) -> Etcd:
        return Etcd(self.cluster.endpoints, timeout=3, tls=self.tls(user))

    def issue(self, cn: str) -> str:
        """One more client certificate from the deployment's client CA."""
        ca_key = serialization.load_pem_private_key((self.certs / "client-ca.key").read_bytes(),
                                                    None)  # fmt: skip
        ca_cert = load_pem_x509_certificate((self.certs / "client-ca.pem").read_bytes())
        write(self.certs, cn, issue(Issued(ca_cert, ca_key), cn))
        return cn


def secure(directory: Path) -> Secured:
    """An etcd member trusting the deployment's client CA, its own certificate from the peer
    CA: what ``spillover up --auth`` and the Terraform members run."""
    certs = directory / "certs"
    bootstrap(certs, member_ips=("127.0.0.1",))
    root = EtcdTls(ca_file=certs / "peer-ca.pem", cert_file=certs / "root.pem",
                   key_file=certs / "root.key")  # fmt: skip
    tls = ServerTls(certs / "client-ca.pem", certs / "member.pem", certs / "member.key", root)
    return Secured(LocalEtcd(directory / "data", tls=tls).start(), certs)


async def rbac_on(s: Secured) -> Secured:
    admin = s.etcd(ROOT)
    try:
        await apply(admin, KEY_ROOT)
    finally:
        await admin.close()
    return s


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    with own_dir(tmp_path_factory, "rbac") as d:
        s = secure(d)
        try:
            asyncio.run(rbac_on(s))
            yield s
        finally:
            s.cluster.close()


@pytest.fixture
async def own(tmp_path: Path) -> AsyncIterator[Secured]:
    """A cluster of this test's own, RBAC on: for tests that may break it."""
    s = secure(tmp_path)
    try:
        yield await rbac_on(s)
    finally:
        s.cluster.close()


# -- what the roles allow, checked as etcd would check every op of a txn -----------------------


def covers(p: Permission, key: bytes, end: bytes) -> bool:
    if not p.range_end:
        return not end and key == p.key
    if not end:
        return p.key <= key < p.range_end
    return p.key <= key and end <= p.range_end


def allowed(perms: tuple[Permission, ...], key: bytes, end: bytes, write: bool) -> bool:
    kinds = ("write", "readwrite") if write else ("read", "readwrite")
    return any(p.perm in kinds and covers(p, key, end) for p in perms)


class Recording(Etcd):
    """An Etcd client that notes each key range it read or wrote once etcd answered,
    nested txn ops included. Non-recursive reads of ``members()`` go unrecorded."""

    seen: ClassVar[list[tuple[str, bytes, bytes, bool]]] = []

    def _note(self, key: bytes, end: bytes, write: bool) -> None:
        assert self._tls is not None and self._tls.cert_file is not None
        self.seen.append((self._tls.cert_file.stem, key, end, write))

    def _walk(self, compare: list[Any], ops: list[Any]) -> None:
        for c in compare:
            self._note(c.key, b"", False)  # single-key compares only
        for op in ops:
            kind = op.WhichOneof("request")
            r = getattr(op, kind)
            if kind == "request_txn":
                self._walk(list(r.compare), [*r.success, *r.failure])
            else:
                self._note(r.key, getattr(r, "range_end", b""), kind != "request_range")

    async def get(self, key: bytes) -> Any:
        found = await super().get(key)
        self._note(key, b"", False)
        return found

    async def put(self, key: bytes, value: bytes, lease: int | None = None) -> None:
        await super().put(key, value, lease)
        self._note(key, b"", True)

    async def delete(self, key: bytes) -> None:
        await super().delete(key)
        self._note(key, b"", True)

    async def range(self, key: bytes, range_end: bytes, **kw: Any) -> Any:
        found = await super().range(key, range_end, **kw)
        self._note(key, range_end, False)
        return found

    async def count(self, prefix: bytes) -> int:
        n = await super().count(prefix)
        self._note(prefix, keys.prefix_end(prefix), False)
        return n

    async def txn(self, compare: list[Any], success: list[Any], failure: Any = None) -> Any:
        result = await super().txn(compare, success, failure)
        self._walk(compare, [*success, *(failure or [])])
        return result

    async def watch(self, prefix: bytes, start_revision: int) -> Any:
        self._note(prefix, keys.prefix_end(prefix), False)
        async for event in super().watch(prefix, start_revision):
            yield event


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bytes, bytes, bool]]:
    seen: ClassVar[list[tuple[str, bytes, bytes, bool]]] = []
    monkeypatch.setattr(Recording, "seen", seen)
    monkeypatch.setattr("federation.topology.Etcd", Recording)
    return seen


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[list[bytes], str]]:
    got: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield got, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    await runner.cleanup()


async def test_an_edge_and_an_agent_run_the_whole_task_lifecycle_within_their_roles(
    secured: Secured,
    recording: list[tuple[str, bytes, bytes, bool]],
    hooks: tuple[list[bytes], str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Deploy (admin), then through an edge and an agent, each with its own certificate: sync
    and async tasks, an idempotent retry, a cancel while running, a webhook, health, the sweep.
    Every key range either touched is inside its role, nested txn ops included."""
    caplog.set_level(logging.INFO)
    admin = Clusters(secured.config(ROOT))
    await AppRegistry(admin.control, KEY_ROOT).put(worker_spec())
    config = RegionConfig(
        name=REGION, lat=39.0, lon=-77.5, etcd=secured.config(AGENT), app_root=REPO,
        lease_ttl=2, heartbeat_interval=0.2, blobs={"dir": str(tmp_path / "agent-blobs")},
        webhook_private_targets=True, webhook_backoff=0.05,
    )  # fmt: skip
    agent = Agent(config, Clusters(config.etcd), LocalProcessProvider(REPO))
    running = asyncio.create_task(agent.run())
    edge = await start_edge(secured.config(EDGE), allow_http_webhooks=True)
    got, hook = hooks
    try:
        await until(lambda: (r := agent.runners.get("worker")) is not None
                    and len(r.pool.ready_replicas) >= 1, 30)  # fmt: skip
        status, body, _ = await edge.call("POST", "/v1/apps/worker/echo", data=b"hi")
        assert (status, body) == (200, b"hi")
        retry = {"Idempotency-Key": "k1"}
        sleep = "/v1/apps/worker/sleep?async=true"
        asked = [await edge.call("POST", sleep, json={"seconds": 30}, headers=retry)
                 for _ in range(2)]  # fmt: skip
        assert asked[0][0] == 202 and asked[0][1]["id"] == asked[1][1]["id"]
        task_id = asked[0][1]["id"]

        async def state() -> str:
            return str((await edge.call("GET", f"/v1/tasks/{task_id}"))[1]["state"])

        await until(lambda: _is(state, "running"), 30)
        status, body, _ = await edge.call("DELETE", f"/v1/tasks/{task_id}")
        assert status == 200 and body["state"] == "cancelled"
        status, _, _ = await edge.call("POST", "/v1/apps/worker/echo?async=true", data=b"x",
                                       headers={"X-Spillover-Webhook": hook})  # fmt: skip
        assert status == 202
        await until(lambda: bool(got), 30)
        status, health, _ = await edge.call("GET", "/v1/federation/health")
        assert status == 200 and health["etcd"]["healthy"] and health["regions"]
        assert (await edge.call("GET", "/readyz"))[0] == 200
        spec = f'[app]\nname = "other"\nhandler = "{worker_spec().app.handler}"\n'
        status, body, _ = await edge.call("PUT", "/v1/apps/other", data=spec.encode())
        assert status == 403 and "spillover deploy --etcd" in body["error"]["message"]
        reaper = Clusters(secured.config(AGENT))
        assert await sweep_retention(Queue(reaper), REGION, pressure_retention=0.0) >= 3
        await reaper.close()
    finally:
        await edge.close()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await agent.clusters.close()
        await admin.close()
    wanted = roles(KEY_ROOT)
    outside = {(user, key, end, write) for user, key, end, write in recording
               if user != ROOT and not allowed(wanted[user], key, end, write)}  # fmt: skip
    assert outside == set()
    assert {user for user, *_ in recording} >= {EDGE, AGENT}
    # Nothing was refused on the way (the agents' storage keeper stood down: it is root's).
    assert [r.getMessage() for r in caplog.records if "permission denied" in r.getMessage()] == []
    assert any("not this process's to run" in r.getMessage() for r in caplog.records)


async def _is(state: Any, wanted: str) -> bool:
    return bool(await state() == wanted)


@pytest.mark.parametrize("user", [EDGE, AGENT])
async def test_no_edge_or_agent_writes_apps_api_keys_or_secrets(
    secured: Secured, user: str
) -> None:
    etcd = secured.etcd(user)
    try:
        with pytest.raises(PermissionDenied):
            await AppRegistry(etcd, KEY_ROOT).put(worker_spec("mine"))
        with pytest.raises(PermissionDenied):  # an admin key of its own: escalation
            await ApiKeys(etcd, KEY_ROOT).create(Grant(name="mine", admin=True))
        for key in (keys.webhook_secrets(KEY_ROOT, "worker"), keys.blob_secret(KEY_ROOT),
                    keys.storage_leader(KEY_ROOT), keys.app(KEY_ROOT, "x")):  # fmt: skip
            with pytest.raises(PermissionDenied):
                await etcd.put(key, b"mine")
            with pytest.raises(PermissionDenied):
                await etcd.delete(key)
        with pytest.raises(PermissionDenied):  # nor change the roles
            grant = rpc.Permission(permType=rpc.Permission.READWRITE, key=b"\0", range_end=b"\0")
            await etcd.auth("RoleGrantPermission",
                            rpc.AuthRoleGrantPermissionRequest(name=user, perm=grant))  # fmt: skip
        with pytest.raises(PermissionDenied):
            await etcd.auth("UserAdd", rpc.AuthUserAddRequest(name="root2", password="x"))
        with pytest.raises(PermissionDenied):  # maintenance is root's: the keeper's
            await etcd.defragment()
    finally:
        await etcd.close()


async def test_an_edge_reads_no_webhook_secret_and_an_agent_no_api_keys(secured: Secured) -> None:
    edge, agent = secured.etcd(EDGE), secured.etcd(AGENT)
    try:
        with pytest.raises(PermissionDenied):
            await edge.get(keys.webhook_secrets(KEY_ROOT, "worker"))
        with pytest.raises(PermissionDenied):
            await agent.range(keys.apikeys(KEY_ROOT), keys.prefix_end(keys.apikeys(KEY_ROOT)))
        with pytest.raises(PermissionDenied):  # enqueueing is the edges'
            await agent.put(keys.quota_probe(KEY_ROOT), b"")
    finally:
        await edge.close()
        await agent.close()


async def test_an_apps_webhook_secret_comes_with_its_deploy_and_only_the_admin_rotates_it(
    secured: Secured,
) -> None:
    admin, agent = secured.etcd(ROOT), secured.etcd(AGENT)
    registry = AppRegistry(admin, KEY_ROOT)
    try:
        await registry.put(worker_spec("signed"))
        first = await app_secrets(agent, KEY_ROOT, "signed")  # agents read it
        await registry.put(worker_spec("signed", max_replicas=2))
        assert await app_secrets(agent, KEY_ROOT, "signed") == first  # an update keeps it
        with pytest.raises(PermissionDenied):
            await rotate(agent, KEY_ROOT, "signed", time.time(), 60)
        with pytest.raises(PermissionDenied):  # nor create one
            await app_secrets(agent, KEY_ROOT, "never-deployed")
        rotated = await rotate(admin, KEY_ROOT, "signed", time.time(), 60)
        assert rotated.previous == first.current != rotated.current
        assert await app_secrets(agent, KEY_ROOT, "signed") == rotated
    finally:
        await registry.delete("signed")
        await admin.close()
        await agent.close()


async def test_admin_writes_apps_and_keys(secured: Secured) -> None:
    etcd = secured.etcd(ROOT)
    try:
        await AppRegistry(etcd, KEY_ROOT).put(worker_spec("admins"))
        key = await ApiKeys(etcd, KEY_ROOT).create(Grant(name="ops", admin=True))
        assert key.startswith("sk_")
        await ApiKeys(etcd, KEY_ROOT).revoke("ops")
        await AppRegistry(etcd, KEY_ROOT).delete("admins")
    finally:
        await etcd.close()


async def test_a_certificate_whose_cn_is_no_user_gets_nothing(secured: Secured) -> None:
    etcd = secured.etcd(secured.issue("nobody"))
    try:
        with pytest.raises(PermissionDenied):
            await etcd.get(keys.apps(KEY_ROOT))
        with pytest.raises(PermissionDenied):
            await etcd.put(keys.partitions(KEY_ROOT) + b"x", b"")
    finally:
        await etcd.close()


async def test_applying_again_changes_nothing_and_revokes_what_was_added(
    secured: Secured,
) -> None:
    etcd = secured.etcd(ROOT)
    try:
        extra = rpc.Permission(permType=rpc.Permission.READWRITE, key=keys.apps(KEY_ROOT),
                               range_end=keys.prefix_end(keys.apps(KEY_ROOT)))  # fmt: skip
        await etcd.auth(
            "RoleGrantPermission", rpc.AuthRoleGrantPermissionRequest(name=EDGE, perm=extra)
        )
        await etcd.auth("RoleAdd", rpc.AuthRoleAddRequest(name="extra"))
        await etcd.auth("UserGrantRole", rpc.AuthUserGrantRoleRequest(user=AGENT, role="extra"))
        await apply(etcd, KEY_ROOT)
        await apply(etcd, KEY_ROOT)
        for role, perms in roles(KEY_ROOT).items():
            got = (await etcd.auth("RoleGet", rpc.AuthRoleGetRequest(role=role))).perm
            assert sorted((p.key, p.range_end, p.permType) for p in got) == sorted(
                (p.key, p.range_end, {"read": 0, "write": 1, "readwrite": 2}[p.perm]) for p in perms
            )
        for user in USERS:
            assert list((await etcd.auth("UserGet", rpc.AuthUserGetRequest(name=user))).roles) == [
                user
            ]
    finally:
        await etcd.close()


@pytest.mark.parametrize("cert", ["member", "other-root"])
async def test_only_the_client_cas_certificates_get_past_the_handshake(
    secured: Secured, tmp_path: Path, cert: str
) -> None:
    """A member's certificate (the peer CA's: two CAs, so it is no client), and another
    deployment's root certificate."""
    if cert == "member":
        pem, key = secured.certs / "member.pem", secured.certs / "member.key"
    else:
        bootstrap(tmp_path / "other")
        pem, key = tmp_path / "other" / "root.pem", tmp_path / "other" / "root.key"
    tls = EtcdTls(ca_file=secured.certs / "peer-ca.pem", cert_file=pem, key_file=key)
    etcd = Etcd(secured.cluster.endpoints, timeout=2, tls=tls)
    try:
        with pytest.raises(Unavailable):
            await etcd.get(keys.apps(KEY_ROOT))
    finally:
        await etcd.close()


# -- the holes of older etcd releases: expected to fail on the etcd on PATH if it has them -----


def hole(words: str) -> pytest.MarkDecorator:
    found = [h for h in HOLES if words in h]
    return pytest.mark.xfail(bool(found), reason=f"etcd {etcd_version()}: {found}", strict=True)


@hole("nested txn")
async def test_an_edge_cannot_write_apps_in_a_nested_txn(own: Secured) -> None:
    edge, admin = own.etcd(EDGE), own.etcd(ROOT)
    try:
        key = keys.app(KEY_ROOT, "planted")
        with pytest.raises(PermissionDenied):
            await edge.txn([], [nested([], [put(key, b"{}")])])
        assert await admin.get(key) is None
    finally:
        await edge.close()
        await admin.close()


@hole("alarms, leases")
async def test_an_edge_cannot_raise_an_alarm(own: Secured) -> None:
    edge = own.etcd(EDGE)
    try:
        alarm = rpc.AlarmRequest(action=rpc.AlarmRequest.ACTIVATE, memberID=1, alarm=rpc.NOSPACE)
        with pytest.raises(PermissionDenied):
            await edge._stub("alarm", "maintenancestub", "Alarm", alarm, retry=False)
    finally:
        await edge.close()


@hole("NOSPACE")
async def test_an_edge_cannot_turn_auth_off_even_while_out_of_space(own: Secured) -> None:
    edge, admin = own.etcd(EDGE), own.etcd(ROOT)
    try:
        member = (await admin._stub("status", "maintenancestub", "Status", rpc.StatusRequest(),
                                    retry=True)).header.member_id  # fmt: skip
        alarm = rpc.AlarmRequest(action=rpc.AlarmRequest.ACTIVATE, memberID=member,
                                 alarm=rpc.NOSPACE)  # fmt: skip
        await admin._stub("alarm", "maintenancestub", "Alarm", alarm, retry=False)
        with pytest.raises(PermissionDenied):
            await edge.auth("AuthDisable", rpc.AuthDisableRequest())
        with pytest.raises(PermissionDenied):
            await edge.get(keys.webhook_secrets(KEY_ROOT, "worker"))
    finally:
        await edge.close()
        await admin.close()


async def test_a_session_of_the_agent_comes_and_goes(secured: Secured) -> None:
    """Leases: granted, kept alive and revoked with the keys under them (revoking needs write
    on every key attached)."""
    etcd = secured.etcd(AGENT)
    try:
        async with Session(etcd, 2) as session:
            await etcd.put(keys.region(KEY_ROOT, REGION, "a1"), b"{}", lease=session.lease)
            assert await etcd.keepalive(session.lease) > 0
        assert await etcd.get(keys.region(KEY_ROOT, REGION, "a1")) is None
    finally:
        await etcd.close()


async def test_the_admins_keeper_keeps_the_space_where_an_agents_stands_down(
    secured: Secured,
) -> None:
    agent = Clusters(secured.config(AGENT))
    mine = StorageKeeper(StorageGuard(agent), "control", agent.control,
                         lambda: Session(agent.control, 2).start())  # fmt: skip
    await asyncio.wait_for(mine.run(b"agent-1"), 10)  # returns: not its to run
    keeping = asyncio.create_task(keep(secured.config(ROOT), "keeper-1"))
    try:
        key = keys.storage_leader(KEY_ROOT)

        async def elected() -> bool:  # the agent may not read the key: ask as root
            return await secured_get(secured, key) == b"keeper-1"

        await until(elected, 10)
    finally:
        keeping.cancel()
        await asyncio.gather(keeping, return_exceptions=True)
        await agent.close()


async def secured_get(secured: Secured, key: bytes) -> bytes | None:
    etcd = secured.etcd(ROOT)
    try:
        kv = await etcd.get(key)
        return None if kv is None else kv.value
    finally:
        await etcd.close()
