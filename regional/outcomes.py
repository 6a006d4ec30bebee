"""A task run's outcome, written fenced by its claim: the result, a failure, or the task given
back to the queue (its replica died). Only the claim's holder can write it, and only once.

Nothing is left claimed with nothing to move it. While our lease lives nobody else moves a task
we claimed, so a write lost to etcd being away would leave it ``running`` forever:

| the write ...                                   | then                                      |
|-------------------------------------------------|-------------------------------------------|
| fails, etcd away (Unavailable)                  | retried for ``SETTLE_DEADLINE`` s          |
| still fails after that                          | the claim is given up: the task is         |
|                                                 | released, else its claim key deleted       |
|                                                 | (the reaper requeues it)                   |
| is refused by etcd (too large; space used up)   | not retried: a result fails the task with  |
|                                                 | ``result_too_large``; if even that is      |
|                                                 | refused, the claim is given up             |
| is fenced off (NotClaimer) after a lost reply   | our earlier try may have applied: the      |
|                                                 | record says whether it did                 |
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from federation.blobs import BlobRef, BlobStore
from federation.claims import abandon
from federation.errors import NotClaimer, Rejected, StorageFull, Unavailable
from federation.queue import Claim, Claimer, Queue
from federation.retry import retried
from federation.task import ErrorCode, State, TaskError, TaskRecord
from regional.metrics import RegionMetrics

log = logging.getLogger(__name__)
SETTLE_DEADLINE = 30.0  # seconds an outcome's write (or a release) is retried while etcd is away
Refused = (Rejected, StorageFull)  # etcd refused the write itself: retrying cannot help


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
    ran: bool = True  # False: the task never reached a replica (its attempt is given back)


Outcome = Result | Failure | GiveBack


class Outcomes:
    def __init__(
        self, queue: Queue, blobs: BlobStore, metrics: RegionMetrics, claimer: Claimer
    ) -> None:
        self.queue = queue
        self.blobs = blobs
        self.metrics = metrics
        self.claimer = claimer

    async def settle(self, claim: Claim, outcome: Outcome) -> None:
        if isinstance(outcome, GiveBack):
            await self._give_back(claim, outcome)
            return
        try:
            done = await retried(self._write, claim, outcome, deadline=SETTLE_DEADLINE)
        except NotClaimer:  # cancelled, or our lease lapsed and the reaper requeued it
            log.info("task %s: claim lost before its outcome was written", claim.record.id)
            await self._drop(outcome)
        except Refused as e:
            log.warning("task %s: etcd refused its outcome: %s", claim.record.id, e)
            await self._drop(outcome)
            if isinstance(outcome, Result):
                await self.settle(claim, Failure("result_too_large", f"etcd refused it: {e}"))
            else:
                await self._let_go(claim, f"etcd refused its outcome: {e}")
        except Unavailable as e:
            log.warning("task %s: could not write its outcome: %s", claim.record.id, e)
            await self._let_go(claim, f"its outcome could not be written: {e}")
        else:
            self.metrics.finished(done)

    async def _write(self, claim: Claim, outcome: Result | Failure) -> TaskRecord:
        try:
            if isinstance(outcome, Failure):
                failure = TaskError(code=outcome.code, message=outcome.message)
                return await self.queue.fail(claim, failure)
            return await self.queue.complete(claim, outcome.body, outcome.content_type, outcome.ref)
        except NotClaimer:
            # After a try whose reply was lost, the fence also refuses us when it applied.
            if (ours := await self._applied(claim, outcome)) is not None:
                return ours
            raise

    async def _applied(self, claim: Claim, outcome: Result | Failure) -> TaskRecord | None:
        """The task's record if this claim's outcome is the one written, else None."""
        record, tried = await self.queue.get(claim.record.id), claim.record
        state = State.SUCCEEDED if isinstance(outcome, Result) else State.FAILED
        same = (record.claimer, record.attempts) == (tried.claimer, tried.attempts)
        return record if record.state is state and same else None

    async def _drop(self, outcome: Outcome) -> None:
        """A result that will not count: its blob goes (the sweeper would, much later)."""
        if isinstance(outcome, Result) and outcome.ref is not None:
            await self.blobs.delete(outcome.ref.name)

    async def _give_back(self, claim: Claim, outcome: GiveBack) -> None:
        """Requeue a task whose replica died, at once rather than after a lease timeout."""
        reason, ran = outcome.reason, outcome.ran
        try:
            await retried(self.queue.release, claim, reason, ran=ran, deadline=SETTLE_DEADLINE)
        except NotClaimer:
            pass  # already cancelled, or our lease lapsed and the reaper requeued it
        except (Unavailable, Rejected) as e:
            log.warning("task %s: could not requeue it: %s", claim.record.id, e)
            await self._let_go(claim, reason, ran=ran)

    async def _let_go(self, claim: Claim, reason: str, *, ran: bool = True) -> None:
        """Give the claim up so the task is requeued: released at once if etcd takes it, else
        only the claim key deleted for the reaper — retried for as long as our lease lives
        (once it is lost, the claim went with it)."""
        try:
            await self.queue.release(claim, reason, ran=ran)
            return
        except NotClaimer:
            return
        except (Unavailable, Rejected):
            pass
        session = self.claimer.sessions.get(self.queue.etcd(claim.record.partition).name)
        lost = session.lost if session is not None else None
        try:
            await retried(abandon, self.queue, claim, until=lost)
            log.warning("task %s: claim given up; the reaper requeues it", claim.record.id)
        except NotClaimer:
            pass
        except Unavailable as e:  # the lease was lost meanwhile: the claim went with it
            log.warning("task %s: claim not given up (%s); it lapses with the lease",
                        claim.record.id, e)  # fmt: skip
