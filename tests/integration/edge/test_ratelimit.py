"""Per-key rate limits across two real edges on one etcd: together they allow the key's burst
and rate, not twice it."""

from __future__ import annotations

import asyncio

import pytest

from edge.keys import VIEW
from federation.apikeys import ApiKeys, Grant
from tests.integration.conftest import Harness, worker_spec
from tests.integration.edge.test_auth import bearer
from tests.integration.edge.test_edge import start_edge
from tests.waiting import until

pytestmark = pytest.mark.slow


async def test_two_edges_share_a_keys_rate(harness: Harness) -> None:
    await harness.apps.put(worker_spec())
    store = ApiKeys(harness.clusters.control, harness.clusters.root)
    limited = await store.create(Grant(name="limited", apps=("*",), rate=0.2, burst=4))
    free = await store.create(Grant(name="free", apps=("*",)))
    edges = [await start_edge(harness.etcd_config, auth=True, id=f"edge-{i}") for i in range(2)]
    try:
        await until(lambda: all(len(e.runner.app[VIEW].edges) == 2 for e in edges))
        calls = [
            e.call("GET", "/v1/apps", headers=bearer(limited)) for e in edges for _ in range(6)
        ]
        answers = await asyncio.gather(*calls)
        # Each edge allows burst/2 = 2 at once (and 0.1/s more): 4 in all, not 8.
        assert sorted(s for s, _, _ in answers) == [200] * 4 + [429] * 8
        for status, body, headers in answers:
            if status == 429:
                assert body["error"]["code"] == "rate_limited" and "0.2" in body["error"]["message"]
                assert 1 <= int(headers["Retry-After"]) <= 10  # a token per edge every 10 s
        # Another key, and other edges' buckets, are untouched.
        assert (await edges[0].call("GET", "/v1/apps", headers=bearer(free)))[0] == 200
    finally:
        for e in edges:
            await e.close()
