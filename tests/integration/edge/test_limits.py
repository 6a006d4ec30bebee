"""What a slow or hostile client can hold at a real edge: a trickled body (408), requests in
progress (503 past max_connections), unknown API keys (a bounded trickle of etcd reads), and an
edge that has lost sight of the keys (fails closed)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import pytest

from edge.keys import API_KEYS
from federation.apikeys import ApiKeys, Grant, digest
from federation.topology import EtcdConfig
from spillover.local.etcd import LocalEtcd
from tests.integration.conftest import REGION, Harness, worker_spec
from tests.integration.edge.test_auth import bearer
from tests.integration.edge.test_edge import Edge, start_edge
from tests.waiting import until

pytestmark = pytest.mark.slow


@pytest.fixture
async def limited(harness: Harness) -> AsyncIterator[Edge]:
    """No agent: the tasks stay queued, so an event stream stays open until its client goes."""
    await harness.apps.put(worker_spec())
    e = await start_edge(
        harness.etcd_config, max_connections=2, body_timeout=0.5, sse_keepalive=0.2
    )
    yield e
    await e.close()


async def test_a_trickled_body_gets_408_and_frees_its_slot(limited: Edge) -> None:
    host, port = limited.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/apps/worker/echo?async=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    )
    answer = b""
    async with asyncio.timeout(20):
        while b"\r\n\r\n" not in answer:
            writer.write(b"x")  # a byte every 0.1 s: ~10 bytes/s, far under body_min_rate
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer += await asyncio.wait_for(reader.read(4096), 0.1)
        answer += await reader.read()  # the edge closes the connection after its answer
    writer.close()
    head = answer.decode(errors="replace")
    assert head.startswith("HTTP/1.1 408") and "Connection: close" in head
    assert '"code":"body_timeout"' in head.replace(" ", "")
    # Both slots are free again: two requests at once go through.
    statuses = await asyncio.gather(*(limited.call("GET", "/v1/apps/worker") for _ in range(2)))
    assert [s for s, _, _ in statuses] == [200, 200]


async def test_past_max_connections_503_overloaded_until_a_slot_frees(limited: Edge) -> None:
    tasks = []
    for _ in range(2):
        _, info, _ = await limited.call("POST", "/v1/apps/worker/echo?async=1", data=b"x")
        tasks.append(info["id"])
    streams = [await limited.http.get(f"{limited.url}/v1/tasks/{t}/events") for t in tasks]
    try:
        assert [s.status for s in streams] == [200, 200]
        status, body, headers = await limited.call("GET", "/v1/apps/worker")
        assert status == 503 and body["error"]["code"] == "overloaded"
        assert headers["Retry-After"] == "1" and headers["Connection"] == "close"
        assert (await limited.call("GET", "/healthz"))[0] == 200  # probes are not counted
        streams.pop().close()

        async def served() -> bool:  # the edge sees the client go at its next ping
            return (await limited.call("GET", "/v1/apps/worker"))[0] == 200

        await until(served, timeout=30)
    finally:
        for s in streams:
            s.close()


async def etcd_gets(edge: Edge, admin: str) -> float:
    _, text, _ = await edge.call("GET", "/metrics", headers=bearer(admin))
    found = re.search(rb'spillover_etcd_request_seconds_count\{op="get"\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


async def test_unknown_keys_cost_a_bounded_number_of_etcd_reads(harness: Harness) -> None:
    await harness.apps.put(worker_spec())
    e = await start_edge(harness.etcd_config, auth=True, unknown_key_ttl=60)
    store = ApiKeys(harness.clusters.control, harness.clusters.root)
    admin = await store.create(Grant(name="metrics", admin=True))  # /metrics needs one

    def known() -> bool:  # in the edge's followed copy: no etcd read for this one
        return digest(admin) in e.runner.app[API_KEYS].keys.grants

    await until(known, timeout=5)
    try:
        before = await etcd_gets(e, admin)
        for _ in range(20):  # the same bad key: asked about once
            assert (await e.call("GET", "/v1/apps", headers=bearer("sk_same")))[0] == 401
        assert await etcd_gets(e, admin) - before == 1
        flood = [e.call("GET", "/v1/apps", headers=bearer(f"sk_{i}")) for i in range(200)]
        assert {s for s, _, _ in await asyncio.gather(*flood)} == {401}
        assert await etcd_gets(e, admin) - before <= 1 + 20 + 5  # the lookup budget, and its refill
        # A key made now works at once, although an unknown key was just refused en masse.
        key = await store.create(Grant(name="late", apps=("*",)))

        async def accepted() -> bool:
            return (await e.call("GET", "/v1/apps", headers=bearer(key)))[0] == 200

        await until(accepted, timeout=5)
    finally:
        await e.close()


async def test_an_edge_that_lost_sight_of_the_keys_fails_closed(
    fresh_etcd: LocalEtcd, etcd1: LocalEtcd, root: str
) -> None:
    """Control etcd (the keys) stops while the region's partition (another cluster) stays up:
    the edge could still store tasks, but it can no longer tell a revoked key, so it answers
    503 and reports unready instead of trusting its old copy; it recovers with etcd."""
    harness = Harness(fresh_etcd, root)
    await harness.apps.put(worker_spec())
    key = await ApiKeys(harness.clusters.control, root).create(Grant(name="k", apps=("*",)))
    config = EtcdConfig(
        endpoints=tuple(fresh_etcd.endpoints), root=root, timeout=1.0,
        partitions={REGION: tuple(etcd1.endpoints)},
    )  # fmt: skip
    e = await start_edge(config, auth=True, keys_resync=0.2, keys_stale_after=1.5)
    submit = ("POST", "/v1/apps/worker/echo?async=1")
    try:
        assert (await e.call(*submit, data=b"x", headers=bearer(key)))[0] == 202
        fresh_etcd.stop(0)

        async def refused() -> bool:
            status, body, _ = await e.call(*submit, data=b"x", headers=bearer(key))
            return status == 503 and body["error"]["code"] == "unavailable"

        await until(refused, timeout=15)
        assert (await e.call("GET", "/readyz"))[0] == 503
        fresh_etcd.start_member(0)
        fresh_etcd.wait_healthy()

        async def accepted() -> bool:
            return (await e.call(*submit, data=b"x", headers=bearer(key)))[0] == 202

        await until(accepted, timeout=20)
        assert (await e.call("GET", "/readyz"))[0] == 200
    finally:
        await e.close()
        await harness.close()
