"""Webhooks end to end: an edge takes the URL, an agent of the home region POSTs the final status
to a real receiver over a socket, signed with the app's secret, retried after a 5xx, once per
task; how it went is on the task's status."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from federation import deliveries, keys
from federation.queue import encode, ns
from federation.task import State
from federation.webhooks import HEADER, app_secrets, verify
from tests.factories import task
from tests.integration.conftest import REGION, Harness, Receiver, worker_spec
from tests.integration.edge.test_edge import Edge, start_edge
from tests.waiting import until

pytestmark = pytest.mark.slow


@pytest.fixture
async def edge(harness: Harness) -> AsyncIterator[Edge]:
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent(
        webhook_backoff=0.05, webhook_attempts=3, webhook_private_targets=True
    )
    await harness.ready(agent, "worker", 1)
    e = await start_edge(harness.etcd_config, allow_http_webhooks=True)
    yield e
    await e.close()


async def test_a_signed_webhook_is_retried_after_a_5xx_and_delivered_once(
    edge: Edge, receiver: tuple[Receiver, str], harness: Harness
) -> None:
    r, url = receiver
    r.script = [503]
    status, _, headers = await edge.call(
        "POST", "/v1/apps/worker/echo", data=b"hi", headers={"X-Spillover-Webhook": url}
    )
    assert status == 200
    task_id = headers["X-Spillover-Task-Id"]
    await until(lambda: len(r.got) == 2, timeout=10)
    assert [s for s, _, _ in r.got] == [503, 200]
    _, body, got_headers = r.got[-1]
    found = await app_secrets(harness.clusters.control, harness.clusters.root, "worker")
    assert verify([found.current.encode()], body, got_headers[HEADER], now=time.time())
    assert not verify([b"another app's secret"], body, got_headers[HEADER], now=time.time())
    sent = json.loads(body)
    assert sent["task"]["id"] == task_id and sent["task"]["state"] == "succeeded"
    assert sent["result"] == f"/v1/tasks/{task_id}/result"

    async def webhook() -> Any:
        return (await edge.call("GET", f"/v1/tasks/{task_id}"))[1]["webhook"]

    await until(lambda: _delivered(webhook), timeout=5)
    assert await webhook() == {
        "delivered": True, "attempts": 2, "last_error": "503 Service Unavailable",
        "gave_up": False,
    }  # fmt: skip
    await asyncio.sleep(0.3)
    assert len(r.got) == 2  # not sent again


async def _delivered(webhook: Any) -> bool:
    return bool((await webhook())["delivered"])


async def test_a_cancelled_task_notifies_too_and_a_4xx_is_not_retried(
    edge: Edge, receiver: tuple[Receiver, str]
) -> None:
    r, url = receiver
    r.script = [410]
    _, info, _ = await edge.call(
        "POST", "/v1/apps/worker/sleep?async=true", json={"seconds": 30},
        headers={"X-Spillover-Webhook": url},
    )  # fmt: skip
    assert (await edge.call("DELETE", f"/v1/tasks/{info['id']}"))[0] == 200
    await until(lambda: bool(r.got), timeout=10)
    assert json.loads(r.got[0][1])["task"]["state"] == "cancelled"
    await asyncio.sleep(0.5)  # two more backoff rounds (0.05 s, 0.1 s), had it retried
    assert len(r.got) == 1


async def test_a_failing_receiver_shows_on_the_tasks_status_never_silently(
    edge: Edge, receiver: tuple[Receiver, str]
) -> None:
    r, url = receiver
    r.script = [500] * 10
    status, info, _ = await edge.call("POST", "/v1/apps/worker/echo?async=true", data=b"x",
                                      headers={"X-Spillover-Webhook": url})  # fmt: skip
    assert status == 202
    assert info["webhook"] == {"delivered": False, "attempts": 0, "last_error": None,
                               "gave_up": False}  # fmt: skip

    async def webhook() -> Any:
        return (await edge.call("GET", f"/v1/tasks/{info['id']}"))[1]["webhook"]

    await until(lambda: _gave_up(webhook), timeout=10)
    assert await webhook() == {"delivered": False, "attempts": 3, "gave_up": True,
                               "last_error": "500 Internal Server Error"}  # fmt: skip
    assert len(r.got) == 3  # webhook_attempts
    plain = (await edge.call("POST", "/v1/apps/worker/echo?async=true", data=b"x"))[1]
    assert plain["webhook"] is None  # a task without one


async def _gave_up(webhook: Any) -> bool:
    return bool((await webhook())["gave_up"])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254"])
async def test_webhooks_to_private_addresses_are_refused_without_a_try(
    harness: Harness, receiver: tuple[Receiver, str], host: str
) -> None:
    r, url = receiver
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent(webhook_backoff=0.05, webhook_attempts=3)
    await harness.ready(agent, "worker", 1)
    target = url.replace("127.0.0.1", host)
    record = await harness.submit("worker", "echo", b"x", webhook=target)

    async def ended() -> bool:
        return (await deliveries.delivery(harness.queue, record.id)).final

    await until(ended, timeout=10)
    state = await deliveries.delivery(harness.queue, record.id)
    assert state.gave_up and not state.delivered and state.attempts == 1  # never retried
    assert state.last_error is not None and state.last_error.startswith("PrivateTarget: ")
    assert r.got == []


@pytest.mark.parametrize("url", ["ftp://x/y", "/relative", "http://", "x" * 3000])
async def test_a_bad_webhook_url_is_a_400_naming_the_header(edge: Edge, url: str) -> None:
    status, body, _ = await edge.call(
        "POST", "/v1/apps/worker/echo", data=b"x", headers={"X-Spillover-Webhook": url}
    )
    assert status == 400 and "X-Spillover-Webhook" in body["error"]["message"]


async def test_a_webhook_of_a_task_finished_before_the_webhook_index_is_still_delivered(
    receiver: tuple[Receiver, str], harness: Harness
) -> None:
    """A task that an earlier release finished wrote no entry in the webhook index; an agent
    that starts finds it in the done index (its catch-up) and delivers it."""
    r, url = receiver
    await harness.apps.put(worker_spec())
    now = time.time()
    done = task(REGION, app="worker", webhook=url, state=State.SUCCEEDED, attempts=1,
                started_at=now, finished_at=now, region=REGION)  # fmt: skip
    q, etcd = harness.queue, harness.queue.etcd(REGION)
    await etcd.put(keys.task(q.root, REGION, done.id), encode(done))
    expires = ns(now + done.retention)
    await etcd.put(keys.done(q.root, REGION, expires, done.id), encode(done))
    await harness.start_agent(webhook_backoff=0.05, webhook_private_targets=True)
    await until(lambda: len(r.got) == 1, timeout=20)
    assert json.loads(r.got[0][1])["task"]["id"] == done.id
