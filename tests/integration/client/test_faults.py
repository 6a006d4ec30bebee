"""Typed errors and retries against a real edge (in this process) in front of real etcd: API
keys refused or not granted, and etcd down — ``Unavailable`` once retrying gives up, and a call
still retrying when etcd returns stores its task once."""

from __future__ import annotations

import asyncio

import pytest

import spillover
from federation import keys
from federation.apikeys import ApiKeys, Grant
from spillover.local.etcd import LocalEtcd
from tests.integration.conftest import REGION, Harness, worker_spec
from tests.integration.edge.test_edge import start_edge

pytestmark = pytest.mark.slow


async def test_unauthorized_and_forbidden(harness: Harness) -> None:
    await harness.apps.put(worker_spec())
    await harness.apps.put(worker_spec("other"))
    other = await ApiKeys(harness.clusters.control, harness.clusters.root).create(
        Grant(name="other-only", apps=("other",))
    )
    edge = await start_edge(harness.etcd_config, auth=True)
    try:
        for key in (None, "sk_not-a-key"):
            async with spillover.AsyncClient(edge.url, key, retry_for=0) as client:
                with pytest.raises(spillover.Unauthorized) as caught:
                    await client.submit("worker", "echo", b"x")
                assert (caught.value.code, caught.value.status) == ("unauthorized", 401)
        async with spillover.AsyncClient(edge.url, other, retry_for=0) as client:
            with pytest.raises(spillover.Forbidden, match="not granted app 'worker'"):
                await client.submit("worker", "echo", b"x")
            assert (await client.submit("other", "echo", b"x")).id.endswith(REGION)
    finally:
        await edge.close()


async def test_etcd_down_is_unavailable_and_a_call_retrying_when_it_returns_stores_once(
    fresh_etcd: LocalEtcd, root: str
) -> None:
    harness = Harness(fresh_etcd, root)
    await harness.apps.put(worker_spec())
    edge = await start_edge(harness.etcd_config)
    try:
        async with spillover.AsyncClient(edge.url, retry_for=1) as client:
            await client.submit("worker", "echo", b"first")  # no agent: it stays queued
            fresh_etcd.stop(0)
            with pytest.raises(spillover.Unavailable) as caught:
                await client.submit("worker", "echo", b"refused")
            assert caught.value.code == "unavailable" and caught.value.retry_after
        async with spillover.AsyncClient(edge.url, retry_for=60) as client:
            call = asyncio.create_task(client.submit("worker", "echo", b"second"))
            await asyncio.sleep(1.5)  # etcd stays down a while: attempts fail, the call retries
            assert not call.done()
            fresh_etcd.start_member(0)
            await asyncio.to_thread(fresh_etcd.wait_healthy)
            task = await call
            assert (await task.status()).state == "queued"
        prefix = keys.tasks(root, REGION)
        kvs, _ = await harness.clusters.control.range_all(prefix, keys.prefix_end(prefix))
        assert len(kvs) == 2  # "first" and "second": no retry stored a task twice
    finally:
        await edge.close()
        await harness.close()
