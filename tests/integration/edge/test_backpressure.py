"""The limits a submit meets at a real edge on real etcd: a full queue (429 queue_full) and etcd
short of space (503 storage_full); each refuses before anything is stored, says why, and lets
submits through again once the pressure is gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.appspec import AppSpec, parse_spec
from federation.queue import Claimer
from federation.storage import StorageGuard, StorageKeeper
from federation.topology import Clusters, EtcdConfig
from spillover.local.etcd import LocalEtcd
from tests.integration.conftest import Harness
from tests.integration.edge.test_edge import start_edge
from tests.integration.federation.test_storage import Clock, MiB, fill, keep, unfill
from tests.waiting import until

pytestmark = pytest.mark.slow


def parked(max_depth: int) -> AppSpec:
    """An app placed in a region no agent serves: its tasks stay queued."""
    return parse_spec({
        "app": {"name": "parked", "handler": "tests.apps.worker:Worker"},
        "placement": {"regions": ["eu-west-1"]},
        "queue": {"max_depth": max_depth},
    })  # fmt: skip


async def test_a_full_queue_answers_429_with_retry_after_and_stores_nothing(
    harness: Harness,
) -> None:
    await harness.apps.put(parked(max_depth=3))
    edge = await start_edge(harness.etcd_config)
    try:
        path = "/v1/apps/parked/sleep"
        accepted = []
        for _ in range(3):
            status, body, _ = await edge.call("POST", path + "?async=1", json={"seconds": 1})
            assert status == 202
            accepted.append(body["id"])
        for query in ("?async=1", ""):  # async and sync alike
            status, body, headers = await edge.call("POST", path + query, json={"seconds": 1})
            assert status == 429 and body["error"]["code"] == "queue_full"
            assert "max_depth" in body["error"]["message"] and int(headers["Retry-After"]) >= 1
        _, metrics, _ = await edge.call("GET", "/metrics")
        assert b'spillover_tasks_refused_total{app="parked",code="queue_full"} 2.0' in metrics
        # Room again once a task leaves the queue (the depth is counted again within a second).
        assert (await edge.call("DELETE", f"/v1/tasks/{accepted[0]}"))[0] == 200

        async def admitted() -> bool:
            r = await edge.call("POST", path + "?async=1", json={"seconds": 1})
            return r[0] == 202

        await until(admitted, timeout=10, every=0.2)
    finally:
        await edge.close()


async def test_etcd_above_its_watermark_answers_503_storage_full_and_health_says_why(
    tmp_path: Path, root: str
) -> None:
    with LocalEtcd(tmp_path / "etcd", quota_bytes=40 * MiB) as cluster:
        harness = Harness(cluster, root)
        config = harness.etcd_config.model_copy(update={"quota_bytes": 40 * MiB})
        await harness.apps.put(parked(max_depth=1000))
        edge = await start_edge(config)
        try:
            path = "/v1/apps/parked/sleep?async=1"
            assert (await edge.call("POST", path, json={"seconds": 1}))[0] == 202
            n = await fill(harness.clusters.control, 0.82 * 40 * MiB)

            async def refused() -> bool:
                return (await edge.call("POST", path, json={"seconds": 1}))[0] == 503

            await until(refused, timeout=15, every=0.2)
            _, body, headers = await edge.call("POST", path, json={"seconds": 1})
            assert body["error"]["code"] == "storage_full" and int(headers["Retry-After"]) >= 1
            _, health, _ = await edge.call("GET", "/v1/federation/health")
            assert health["status"] != "ok" and "quota" in " ".join(health["reasons"])
            # Space back: the keeper (an agent's, elsewhere) compacts and defragments.
            await unfill(harness.clusters.control, n)
            await _keep(config)

            async def admitted() -> bool:
                return (await edge.call("POST", path, json={"seconds": 1}))[0] == 202

            await until(admitted, timeout=15, every=0.2)
        finally:
            await edge.close()
            await harness.close()


async def _keep(config: EtcdConfig) -> None:
    clusters = Clusters(config)
    claimer = Claimer("keeper", "us-east-1")
    guard = StorageGuard(clusters)
    await guard.refresh()
    clock = Clock()
    keeper = StorageKeeper(guard, "control", clusters.control,
                           lambda: claimer.session(clusters.control), clock=clock)  # fmt: skip
    await keep(keeper, clock)
    await claimer.close()
    await clusters.close()
