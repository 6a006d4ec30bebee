"""A task run's outcome, written fenced by its claim: the result, a failure, or the task given
back to the queue (its replica died). Only the claim's holder can write it, and only once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from federation.blobs import BlobRef, BlobStore
from federation.errors import NotClaimer, Unavailable
from federation.queue import Claim, Queue
from federation.retry import retried
from federation.task import ErrorCode, TaskError, TaskRecord
from regional.metrics import RegionMetrics

log = logging.getLogger(__name__)
GIVE_BACK_DEADLINE = 30.0  # seconds a release is retried while etcd is away


@dataclass(frozen=True)
class Result:
    body: bytes  # inline, or empty with ``ref``
    content_type: str
    ref: BlobRef | None = None


@dataclass(frozen=True)
class Failure:
    code: ErrorCode
    message: str


@dataclass(frozen=True)
class GiveBack:
    reason: str


Outcome = Result | Failure | GiveBack


class Outcomes:
    def __init__(self, queue: Queue, blobs: BlobStore, metrics: RegionMetrics) -> None:
        self.queue = queue
        self.blobs = blobs
        self.metrics = metrics

    async def settle(self, claim: Claim, outcome: Outcome) -> None:
        if isinstance(outcome, GiveBack):
            await self._give_back(claim, outcome.reason)
            return
        try:
            done = await self._write(claim, outcome)
        except NotClaimer:
            log.info("task %s: claim lost before its outcome was written", claim.record.id)
        except Unavailable as e:
            # etcd down: our lease will lapse and the reaper requeues the task elsewhere.
            log.warning("task %s: could not write its outcome: %s", claim.record.id, e)
        else:
            self.metrics.finished(done)

    async def _write(self, claim: Claim, outcome: Result | Failure) -> TaskRecord:
        if isinstance(outcome, Failure):
            failure = TaskError(code=outcome.code, message=outcome.message)
            return await self.queue.fail(claim, failure)
        try:
            return await self.queue.complete(claim, outcome.body, outcome.content_type, outcome.ref)
        except BaseException:
            if outcome.ref is not None:  # fenced off (or unknown): not the result that counts
                await self.blobs.delete(outcome.ref.name)
            raise

    async def _give_back(self, claim: Claim, reason: str) -> None:
        """Requeue a task whose replica died. Retried: while our lease lives, nobody else would
        requeue it, so a release lost to a short etcd outage would strand the task."""
        try:
            await retried(self.queue.release, claim, reason, deadline=GIVE_BACK_DEADLINE)
        except NotClaimer:
            pass  # already cancelled, or our lease lapsed and the reaper requeued it
        except Unavailable as e:
            log.warning("task %s: could not requeue it: %s", claim.record.id, e)
