"""Webhooks end to end: an edge takes the URL, the home region's agent POSTs the final status to
a real receiver over a socket, signed, retried after a 5xx, once per task."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from federation import keys
from federation.webhooks import HEADER, secret, verify
from tests.integration.conftest import Harness, worker_spec
from tests.integration.edge.test_edge import Edge, start_edge
from tests.waiting import until

pytestmark = pytest.mark.slow


class Receiver:
    """Answers the statuses in ``script`` in turn, then 200; records what it got."""

    def __init__(self, *script: int) -> None:
        self.script = list(script)
        self.got: list[tuple[int, bytes, dict[str, str]]] = []  # (status answered, body, headers)

    async def handle(self, request: web.Request) -> web.Response:
        status = self.script.pop(0) if self.script else 200
        self.got.append((status, await request.read(), dict(request.headers)))
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield r, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    await runner.cleanup()


@pytest.fixture
async def edge(harness: Harness) -> AsyncIterator[Edge]:
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent(
        webhook_backoff=0.05, webhook_attempts=3, webhook_private_targets=True
    )
    await harness.ready(agent, "worker", 1)
    e = await start_edge(harness.etcd_config, allow_http_webhooks=True)
    yield e
    await e.http.close()
    await e.runner.cleanup()


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
    key = await secret(harness.clusters.control, harness.clusters.root)
    assert verify(key, body, got_headers[HEADER], now=time.time())
    sent = json.loads(body)
    assert sent["task"]["id"] == task_id and sent["task"]["state"] == "succeeded"
    assert sent["result"] == f"/v1/tasks/{task_id}/result"
    marker = keys.hooked(harness.clusters.root, "us-east-1", task_id)

    async def marked() -> bool:
        return await harness.clusters.control.get(marker) is not None

    await until(marked, timeout=5)
    assert len(r.got) == 2  # not sent again


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
    marker = keys.hooked(harness.clusters.root, "us-east-1", record.id)

    async def marked() -> bytes | None:
        kv = await harness.clusters.control.get(marker)
        return kv.value if kv else None

    await until(marked, timeout=10)
    assert b"gave up: PrivateTarget" in (await marked() or b"")
    assert r.got == []


@pytest.mark.parametrize("url", ["ftp://x/y", "/relative", "http://", "x" * 3000])
async def test_a_bad_webhook_url_is_a_400_naming_the_header(edge: Edge, url: str) -> None:
    status, body, _ = await edge.call(
        "POST", "/v1/apps/worker/echo", data=b"x", headers={"X-Spillover-Webhook": url}
    )
    assert status == 400 and "X-Spillover-Webhook" in body["error"]["message"]
