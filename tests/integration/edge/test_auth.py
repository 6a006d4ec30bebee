"""API keys at a real edge: scoped to apps, admin keys deploy, stored hashed, revoked at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from federation import keys
from federation.apikeys import ApiKeys, Grant, digest
from tests.integration.conftest import Harness, worker_spec
from tests.integration.edge.test_edge import Edge, start_edge
from tests.waiting import until

pytestmark = pytest.mark.slow


@pytest.fixture
async def edge(harness: Harness) -> AsyncIterator[Edge]:
    await harness.apps.put(worker_spec())
    await harness.apps.put(worker_spec("other"))
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    e = await start_edge(harness.etcd_config, auth=True)
    yield e
    await e.close()


@pytest.fixture
def store(harness: Harness) -> ApiKeys:
    return ApiKeys(harness.clusters.control, harness.clusters.root)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_no_key_or_an_unknown_one_is_401_and_probes_stay_open(edge: Edge) -> None:
    for headers in ({}, bearer("sk_not-a-key"), {"Authorization": "Basic eDp5"}):
        status, body, h = await edge.call(
            "POST", "/v1/apps/worker/echo", data=b"x", headers=headers
        )
        assert status == 401 and body["error"]["code"] == "unauthorized"
        assert h["WWW-Authenticate"].startswith("Bearer")
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert (await edge.call("GET", path))[0] == 200


async def test_metrics_need_an_admin_key_and_health_shows_a_key_only_its_apps(
    edge: Edge, store: ApiKeys, harness: Harness
) -> None:
    user = await store.create(Grant(name="user", apps=("other",)))
    root = await store.create(Grant(name="root", admin=True))
    assert (await edge.call("GET", "/metrics"))[0] == 401
    assert (await edge.call("GET", "/metrics", headers=bearer(user)))[0] == 403
    status, text, _ = await edge.call("GET", "/metrics", headers=bearer(root))
    assert status == 200 and b"spillover_tasks_submitted_total" in text

    def apps(health: dict[str, Any]) -> set[str]:
        return {a["app"] for r in health["regions"] for a in r["apps"]}

    async def both_beating() -> bool:
        _, health, _ = await edge.call("GET", "/v1/federation/health", headers=bearer(root))
        return apps(health) == {"worker", "other"}

    await until(both_beating, timeout=10)
    _, health, _ = await edge.call("GET", "/v1/federation/health", headers=bearer(user))
    assert apps(health) == {"other"} and health["regions"]


async def test_a_key_reaches_only_its_apps_and_only_admin_keys_deploy(
    edge: Edge, store: ApiKeys, harness: Harness
) -> None:
    user = await store.create(Grant(name="user", apps=("worker",)))
    root = await store.create(Grant(name="root", admin=True))
    status, body, headers = await edge.call(
        "POST", "/v1/apps/worker/echo", data=b"hi", headers=bearer(user)
    )
    assert (status, body) == (200, b"hi")
    task = headers["X-Spillover-Task-Id"]
    assert (await edge.call("GET", f"/v1/tasks/{task}", headers=bearer(user)))[0] == 200
    status, body, _ = await edge.call(
        "POST", "/v1/apps/other/echo", data=b"x", headers=bearer(user)
    )
    assert status == 403 and "'other'" in body["error"]["message"]
    _, listed, _ = await edge.call("GET", "/v1/apps", headers=bearer(user))
    assert [a["spec"]["app"]["name"] for a in listed["apps"]] == ["worker"]
    spec = worker_spec("third").model_dump_json()
    as_json = {"Content-Type": "application/json"}
    status, body, _ = await edge.call(
        "PUT", "/v1/apps/third", data=spec, headers={**as_json, **bearer(user)}
    )
    assert status == 403 and "admin" in body["error"]["message"]
    status, _, _ = await edge.call(
        "PUT", "/v1/apps/third", data=spec, headers={**as_json, **bearer(root)}
    )
    assert status == 201


async def test_another_keys_task_is_404_as_if_it_did_not_exist(edge: Edge, store: ApiKeys) -> None:
    owner = await store.create(Grant(name="owner", apps=("worker",)))
    stranger = await store.create(Grant(name="stranger", apps=("other",)))
    _, info, _ = await edge.call(
        "POST", "/v1/apps/worker/echo?async=true", data=b"x", headers=bearer(owner)
    )
    for method, path in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
        status, _, _ = await edge.call(
            method, f"/v1/tasks/{info['id']}{path}", headers=bearer(stranger)
        )
        assert status == 404


async def test_two_tenants_of_one_app_see_only_their_own_tasks_and_keys(
    edge: Edge, store: ApiKeys
) -> None:
    a = await store.create(Grant(name="tenant-a", apps=("worker",)))
    b = await store.create(Grant(name="tenant-b", apps=("worker",)))
    auditor = await store.create(Grant(name="auditor", apps=("worker",), read_all=True))
    key = {"Idempotency-Key": "order-1"}
    _, mine, _ = await edge.call(
        "POST", "/v1/apps/worker/nap?async=1", json={"seconds": 0.5}, headers={**bearer(a), **key}
    )
    task = f"/v1/tasks/{mine['id']}"
    # B can neither read, stream, fetch nor cancel A's task: it does not exist for B.
    for method, path in (("GET", ""), ("GET", "/events"), ("GET", "/result"), ("DELETE", "")):
        status, body, _ = await edge.call(method, task + path, headers=bearer(b))
        assert status == 404 and body["error"]["code"] == "not_found", (method, path)
    # B's "order-1" is B's own: a new task, not A's.
    _, theirs, _ = await edge.call(
        "POST", "/v1/apps/worker/nap?async=1", json={"seconds": 0.5}, headers={**bearer(b), **key}
    )
    assert theirs["id"] != mine["id"]
    # A retrying the same request gets the same task; the same key for another body is a 422.
    _, again, _ = await edge.call(
        "POST", "/v1/apps/worker/nap?async=1", json={"seconds": 0.5}, headers={**bearer(a), **key}
    )
    assert again["id"] == mine["id"]
    status, body, _ = await edge.call(
        "POST", "/v1/apps/worker/nap?async=1", json={"seconds": 9}, headers={**bearer(a), **key}
    )
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused"
    # A key granted read_all reads every tenant's tasks of its apps; A reads its own.
    assert (await edge.call("GET", task, headers=bearer(auditor)))[0] == 200
    assert (await edge.call("GET", f"{task}/result?wait=10", headers=bearer(a)))[0] == 200


async def test_keys_are_stored_hashed_and_a_revoked_key_stops_at_once(
    edge: Edge, store: ApiKeys, harness: Harness
) -> None:
    key = await store.create(Grant(name="temp", apps=("*",)))
    kv = await harness.clusters.control.get(keys.apikey(harness.clusters.root, digest(key)))
    assert kv is not None and key.encode() not in kv.value
    assert (await edge.call("GET", "/v1/apps/worker", headers=bearer(key)))[0] == 200
    await store.revoke("temp")

    async def refused() -> bool:  # the edge's copy follows etcd's watch: milliseconds
        return (await edge.call("GET", "/v1/apps/worker", headers=bearer(key)))[0] == 401

    await until(refused, timeout=5)


async def test_the_dashboards_data_needs_an_admin_key_and_its_page_holds_none(
    edge: Edge, store: ApiKeys
) -> None:
    user = await store.create(Grant(name="user", apps=("*",)))
    root = await store.create(Grant(name="root", admin=True))
    assert (await edge.call("GET", "/v1/federation/dashboard"))[0] == 401
    status, body, _ = await edge.call("GET", "/v1/federation/dashboard", headers=bearer(user))
    assert status == 403 and "the dashboard needs one" in body["error"]["message"]
    status, body, _ = await edge.call("GET", "/v1/federation/dashboard", headers=bearer(root))
    assert status == 200 and "us-east-1" in {r["name"] for r in body["regions"]}
    status, page, _ = await edge.call("GET", "/dashboard")  # static, open: the data is not
    assert status == 200 and b'<svg id="map"' in page
