"""Delivering webhooks: an agent of the home region POSTs each finished task's final status to
the URL the client gave (``X-Spillover-Webhook``), signed with the app's secrets, retried with
backoff, off the request path.

Every agent of the region follows its partition's finished tasks that have a webhook
(``federation/finished.py``), so every way a task can end (succeeded, failed, cancelled at an
edge, expired by a reaper) is covered, whoever ended it; exactly one of them delivers each
webhook, the one that claimed it (``federation/deliveries.py``). Each attempt is recorded on the
task (``webhook`` in its status). A restarted agent replays those finished tasks and skips those
whose chain ended; an agent takes over a chain whose sender died, from the attempts it recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp

from federation import deliveries, webhooks
from federation.errors import NotFound, SpilloverError
from federation.finished import Finished, Following, finished
from federation.queue import Claimer, Queue
from federation.retry import retried
from federation.task import TaskRecord, TaskStatus, WebhookDelivery
from regional.egress import PrivateTarget, PublicOnlyResolver, check_literal

log = logging.getLogger(__name__)


class Retry(Exception):
    """The receiver answered with a status worth retrying (5xx, 408, 429)."""


class Refused(Exception):
    """The receiver answered with another 3xx/4xx: retrying will not help."""


def delay(attempts: int, backoff: float) -> float:
    """Seconds before the attempt after ``attempts`` failed ones: ``backoff``, doubling, at
    most a minute."""
    return float(min(60.0, backoff * 2 ** (attempts - 1)))


class WebhookSender:
    def __init__(
        self,
        queue: Queue,
        partition: str,
        claimer: Claimer,
        *,
        attempts: int = 8,
        backoff: float = 1.0,
        private_targets: bool = False,
    ) -> None:
        self.queue = queue
        self.partition = partition
        self.claimer = claimer  # the chains it claims hang off its lease
        self.attempts = attempts
        self.backoff = backoff
        self.private_targets = private_targets  # local development: receivers on loopback
        self._sending: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        resolver = None if self.private_targets else PublicOnlyResolver()
        connector = aiohttp.TCPConnector(resolver=resolver)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._catch_up(http))
                    tg.create_task(self._follow_finished(http))
                    tg.create_task(self._follow_released(http))
            finally:
                for task in list(self._sending.values()):
                    task.cancel()
                await asyncio.gather(*self._sending.values(), return_exceptions=True)

    async def _catch_up(self, http: aiohttp.ClientSession) -> None:
        """Once, at start: every finished task still kept that has a webhook, from the done
        index. The webhook index covers what ends from now on, but not what ended before it
        existed (an agent of an earlier release was stopped in a chain's backoff)."""
        async for item in finished(self.queue, self.partition, replay=True):
            if isinstance(item, Following):
                return
            if item.has_webhook:
                self._offer(http, item.task_id, item.record())

    async def _follow_finished(self, http: aiohttp.ClientSession) -> None:
        async for item in finished(self.queue, self.partition, replay=True, webhooks=True):
            if isinstance(item, Finished):
                self._offer(http, item.task_id, item.record())

    async def _follow_released(self, http: aiohttp.ClientSession) -> None:
        """A chain whose claim went: ended (its state is final), or its sender died."""
        async for task_id in deliveries.released(self.queue, self.partition):
            self._offer(http, task_id, None)

    def _offer(self, http: aiohttp.ClientSession, task_id: str, record: TaskRecord | None) -> None:
        if task_id not in self._sending:
            task = asyncio.create_task(self._take(http, task_id, record))
            self._sending[task_id] = task
            task.add_done_callback(lambda _: self._sending.pop(task_id, None))

    async def _take(
        self, http: aiohttp.ClientSession, task_id: str, record: TaskRecord | None
    ) -> None:
        """Deliver the task's webhook if its chain has not ended and no other agent holds it."""
        try:
            if (await retried(deliveries.delivery, self.queue, task_id, deadline=30)).final:
                return
            if record is None:
                record = await retried(self.queue.get, task_id, deadline=30)
            session = await self.claimer.session(self.queue.etcd(self.partition))
            me = self.claimer.id
            state = await deliveries.claim(self.queue, task_id, me, session.lease)
            if state is None or state.final:
                return
            await Chain(self, http, record, state, session.lost).run()
        except NotFound:
            return  # swept meanwhile
        except SpilloverError as e:  # etcd away for long: the next replay or release retries
            log.warning("webhook of task %s not taken up now: %s", task_id, e)


class Chain:
    """One webhook's attempts, from where its record says they are, by the claim's holder."""

    def __init__(
        self,
        sender: WebhookSender,
        http: aiohttp.ClientSession,
        record: TaskRecord,
        state: WebhookDelivery,
        lost: asyncio.Event,
    ) -> None:
        self.sender, self.http, self.record = sender, http, record
        self.state = state  # as recorded: a chain taken over goes on from its attempts
        self.lost = lost  # the claimer's lease is gone, and the claim with it
        # The status as the task ended; its delivery is what this chain is doing.
        status = TaskStatus.of(record, time.time()).model_dump(mode="json", exclude={"webhook"})
        self.body = json.dumps({"task": status, "result": f"/v1/tasks/{record.id}/result"}).encode()

    async def run(self) -> None:
        s = self.sender
        while not self.state.final:
            if self.state.attempts:
                await asyncio.sleep(delay(self.state.attempts, s.backoff))
            n, error, refused = self.state.attempts + 1, None, False
            try:
                await self._post()
            except (Retry, aiohttp.ClientError, TimeoutError, SpilloverError) as e:
                error = f"{type(e).__name__}: {e}" if not isinstance(e, Retry) else str(e)
            except (Refused, PrivateTarget) as e:
                error, refused = f"{type(e).__name__}: {e}", True
            self.state = WebhookDelivery(
                delivered=error is None, attempts=n, last_error=error or self.state.last_error,
                gave_up=error is not None and (refused or n >= s.attempts),
            )  # fmt: skip
            if error is not None:
                log.info("webhook of task %s, attempt %d: %s", self.record.id, n, error)
            # Until the lease is lost: then the claim went with it, and another agent goes on.
            held = await retried(deliveries.record, s.queue, self.record.id, s.claimer.id,
                                 self.state, until=self.lost)  # fmt: skip
            if not held:
                log.info("webhook of task %s: the claim went; its new holder goes on",
                         self.record.id)  # fmt: skip
                return

    async def _post(self) -> None:
        s, url = self.sender, self.record.webhook
        assert url is not None
        control = s.queue.clusters.control
        found = await webhooks.app_secrets(control, s.queue.root, self.record.app)
        t = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Spillover-Task-Id": self.record.id,
            webhooks.HEADER: webhooks.sign(found.signing(t), self.body, t),
        }
        if not s.private_targets:
            check_literal(url)
        # No redirects: a public receiver must not bounce the agent to a private address.
        async with self.http.post(url, data=self.body, headers=headers,
                                  allow_redirects=False) as r:  # fmt: skip
            if r.status >= 500 or r.status in (408, 429):
                raise Retry(f"{r.status} {r.reason}")
            if r.status >= 300:
                raise Refused(f"{r.status} {r.reason}")
