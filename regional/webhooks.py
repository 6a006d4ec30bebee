"""Delivering webhooks: the home region's agent POSTs each finished task's final status to the
URL the client gave (``X-Spillover-Webhook``), signed, retried with backoff, off the request
path. Delivery is at least once: receivers deduplicate by task id.

It follows its own partition's done index, so every way a task can end (succeeded, failed,
cancelled at an edge, expired by a reaper) is covered, whoever ended it. A marker key records
delivery, so a restarted agent does not send again.
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

from federation import keys, webhooks
from federation.errors import Unavailable
from federation.etcd import Etcd, Snapshot
from federation.task import TaskRecord, TaskStatus
from federation.topology import Clusters
from regional.egress import PublicOnlyResolver, check_literal

log = logging.getLogger(__name__)


class Retry(Exception):
    """The receiver answered with a status worth retrying (5xx, 408, 429)."""


class Refused(Exception):
    """The receiver answered with another 3xx/4xx: retrying will not help."""


class WebhookSender:
    def __init__(
        self,
        clusters: Clusters,
        partition: str,
        *,
        attempts: int = 8,
        backoff: float = 1.0,
        private_targets: bool = False,
    ) -> None:
        self.clusters = clusters
        self.partition = partition
        self.attempts = attempts
        self.backoff = backoff  # first retry after this many seconds, doubling, at most 60
        self.root = clusters.root
        self.etcd: Etcd = clusters.for_partition(partition)
        self.private_targets = private_targets  # local development: receivers on loopback
        self._sending: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        secret = await self._secret()
        timeout = aiohttp.ClientTimeout(total=10)
        resolver = None if self.private_targets else PublicOnlyResolver()
        connector = aiohttp.TCPConnector(resolver=resolver)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            async for item in self.etcd.list_watch(keys.done_all(self.root, self.partition)):
                kvs = item.kvs if isinstance(item, Snapshot) else [item.kv]
                if not isinstance(item, Snapshot) and item.kind != "put":
                    continue
                for kv in kvs:
                    if b'"webhook":null' in kv.value:
                        continue  # most tasks have none: skip decoding them
                    record = TaskRecord.model_validate_json(kv.value)
                    if record.webhook and record.id not in self._sending:
                        task = asyncio.create_task(self._deliver(http, secret, record))
                        self._sending[record.id] = task
                        task.add_done_callback(functools.partial(self._forget, record.id))

    def _forget(self, task_id: str, _: asyncio.Task[None]) -> None:
        self._sending.pop(task_id, None)

    async def _secret(self) -> bytes:
        while True:
            try:
                return await webhooks.secret(self.clusters.control, self.root)
            except Unavailable as e:
                log.warning("webhook secret unavailable: %s", e)
                await asyncio.sleep(1)

    async def _deliver(
        self, http: aiohttp.ClientSession, secret: bytes, record: TaskRecord
    ) -> None:
        assert record.webhook is not None
        marker = keys.hooked(self.root, self.partition, record.id)
        if await self.etcd.get(marker) is not None:
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
            await self.etcd.put(marker, outcome.encode())
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
