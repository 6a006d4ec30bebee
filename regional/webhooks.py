"""Delivering webhooks: the home region's agent POSTs each finished task's final status to the
URL the client gave (``X-Spillover-Webhook``), signed, retried with backoff, off the request
path. Delivery is at least once: receivers deduplicate by task id.

It follows its own partition's finished tasks (``federation/finished.py``), so every way a task
can end (succeeded, failed, cancelled at an edge, expired by a reaper) is covered, whoever ended
it. A marker records delivery, so a restarted agent, which replays them, does not send again.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from federation import webhooks
from federation.errors import Unavailable
from federation.finished import Finished, finished
from federation.queue import Queue
from federation.retry import retried
from federation.task import TaskRecord, TaskStatus
from regional.egress import PublicOnlyResolver, check_literal

log = logging.getLogger(__name__)


class Retry(Exception):
    """The receiver answered with a status worth retrying (5xx, 408, 429)."""


class Refused(Exception):
    """The receiver answered with another 3xx/4xx: retrying will not help."""


class WebhookSender:
    def __init__(
        self,
        queue: Queue,
        partition: str,
        *,
        attempts: int = 8,
        backoff: float = 1.0,
        private_targets: bool = False,
    ) -> None:
        self.queue = queue
        self.partition = partition
        self.attempts = attempts
        self.backoff = backoff  # first retry after this many seconds, doubling, at most 60
        self.private_targets = private_targets  # local development: receivers on loopback
        self._sending: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        control = self.queue.clusters.control
        secret = await retried(webhooks.secret, control, self.queue.root)
        timeout = aiohttp.ClientTimeout(total=10)
        resolver = None if self.private_targets else PublicOnlyResolver()
        connector = aiohttp.TCPConnector(resolver=resolver)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            async for item in finished(self.queue, self.partition, replay=True):
                # Most tasks have no webhook: skip them without decoding.
                if not isinstance(item, Finished) or not item.has_webhook:
                    continue
                record = item.record()
                if record.webhook and record.id not in self._sending:
                    task = asyncio.create_task(self._deliver(http, secret, record))
                    self._sending[record.id] = task
                    task.add_done_callback(functools.partial(self._forget, record.id))

    def _forget(self, task_id: str, _: asyncio.Task[None]) -> None:
        self._sending.pop(task_id, None)

    async def _deliver(
        self, http: aiohttp.ClientSession, secret: bytes, record: TaskRecord
    ) -> None:
        assert record.webhook is not None
        if await webhooks.delivered(self.queue, self.partition, record.id):
            return
        status = TaskStatus.of(record, time.time()).model_dump(mode="json")
        body = json.dumps({"task": status, "result": f"/v1/tasks/{record.id}/result"}).encode()
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((Retry, aiohttp.ClientError, TimeoutError)),
            wait=wait_exponential(multiplier=self.backoff, max=60),
            stop=stop_after_attempt(self.attempts),
            reraise=True,
        )
        outcome = "delivered"
        try:
            async for attempt in retrying:
                with attempt:
                    await self._post(http, secret, record, body)
        except Exception as e:  # gave up: say so, and do not try again after a restart
            outcome = f"gave up: {type(e).__name__}: {e}"
            log.warning("webhook of task %s to %s %s", record.id, record.webhook, outcome)
        try:
            await webhooks.mark_delivered(self.queue, self.partition, record.id, outcome)
        except Unavailable as e:
            log.warning("task %s: webhook marker not written (%s): may be resent", record.id, e)

    async def _post(
        self, http: aiohttp.ClientSession, secret: bytes, record: TaskRecord, body: bytes
    ) -> None:
        assert record.webhook is not None
        headers = {
            "Content-Type": "application/json",
            "X-Spillover-Task-Id": record.id,
            webhooks.HEADER: webhooks.sign(secret, body, int(time.time())),
        }
        if not self.private_targets:
            check_literal(record.webhook)
        # No redirects: a public receiver must not bounce the agent to a private address.
        async with http.post(record.webhook, data=body, headers=headers,
                             allow_redirects=False) as r:  # fmt: skip
            if r.status >= 500 or r.status in (408, 429):
                raise Retry(f"{r.status} {r.reason}")
            if r.status >= 300:
                raise Refused(f"{r.status} {r.reason}")
