"""One delivery chain per webhook across agents (``federation/deliveries.py``), with agents of
their own processes (``spillover region``): two racing for the same webhooks deliver each once,
and a sender SIGKILLed mid-chain is taken over by the other, which goes on counting."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from federation import deliveries, keys
from federation.queue import Queue
from tests.integration.conftest import REGION, Harness, Receiver, region_toml
from tests.waiting import until

pytestmark = pytest.mark.slow


@pytest.fixture
async def agents(
    harness: Harness, tmp_path: Path
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Two agents of the same region, each its own process; no app is deployed, so they run no
    replicas: only their webhook senders matter here."""
    started = []
    for i in range(2):
        config = region_toml(harness, tmp_path / f"region-{i}.toml", webhook_private_targets=True,
                             webhook_backoff=1.5, webhook_attempts=5, heartbeat_interval=0.2,
                             blobs={"dir": str(tmp_path / f"blobs-{i}")})  # fmt: skip
        started.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "regional.main", "--config", str(config)))  # fmt: skip
    try:
        heartbeats = keys.regions(harness.etcd_config.root)
        await until(lambda: _count(harness, heartbeats, 2), timeout=30)
        yield started
    finally:
        for p in started:
            if p.returncode is None:
                p.kill()
                await p.wait()


async def _count(harness: Harness, prefix: bytes, wanted: int) -> bool:
    return await harness.clusters.control.count(prefix) >= wanted


async def _finished_with_webhooks(harness: Harness, url: str, n: int) -> list[str]:
    """``n`` tasks with a webhook, ended by a cancel (no replica needed)."""
    ids = []
    for _ in range(n):
        record = await harness.submit("worker", "echo", b"x", webhook=url)
        await harness.queue.cancel(record.id)
        ids.append(record.id)
    return ids


async def _all_final(queue: Queue, ids: list[str]) -> bool:
    return all([(await deliveries.delivery(queue, i)).final for i in ids])


async def test_two_agents_racing_deliver_each_webhook_once(
    harness: Harness, agents: Any, receiver: tuple[Receiver, str]
) -> None:
    r, url = receiver
    ids = await _finished_with_webhooks(harness, url, 20)
    await until(lambda: _all_final(harness.queue, ids), timeout=30)
    await asyncio.sleep(1.0)  # time for a second sender, had there been one
    sent = [json.loads(body)["task"]["id"] for _, body, _ in r.got]
    assert sorted(sent) == sorted(ids)  # each once, none twice
    for task_id in ids:
        state = await deliveries.delivery(harness.queue, task_id)
        assert (state.delivered, state.attempts, state.last_error) == (True, 1, None)
        hold = keys.hook_claim(harness.etcd_config.root, REGION, task_id)
        assert await harness.queue.etcd(REGION).get(hold) is None  # let go with the end


async def test_a_sender_killed_mid_chain_is_taken_over_and_the_count_goes_on(
    harness: Harness, agents: list[asyncio.subprocess.Process], receiver: tuple[Receiver, str]
) -> None:
    r, url = receiver
    r.script = [503, 503]  # delivered on the third attempt
    (task_id,) = await _finished_with_webhooks(harness, url, 1)

    async def tried_once() -> bool:
        return (await deliveries.delivery(harness.queue, task_id)).attempts == 1

    await until(tried_once, timeout=30)
    # The claim names its holder, whose id ends with its pid: kill that one, within the 1.5 s
    # before its next attempt.
    hold = await harness.queue.etcd(REGION).get(keys.hook_claim(harness.etcd_config.root,
                                                                REGION, task_id))  # fmt: skip
    assert hold is not None
    pid = int(hold.value.decode().rsplit("-", 1)[1])
    (holder,) = [p for p in agents if p.pid == pid]
    os.kill(pid, signal.SIGKILL)
    await holder.wait()
    # Its lease lapses (2 s), the other agent claims the chain and goes on from attempt 2.
    await until(lambda: _all_final(harness.queue, [task_id]), timeout=30)
    state = await deliveries.delivery(harness.queue, task_id)
    assert state.delivered and state.last_error == "503 Service Unavailable"
    assert [status for status, _, _ in r.got] == [503, 503, 200] and state.attempts == 3
