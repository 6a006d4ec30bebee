"""Group commit for enqueues and fenced settles: the writes that arrive while one txn is in
flight go to etcd together, as one txn of nested sub-txns (each compares on its own, so one
duplicate or stale claim does not fail the others).

One txn per task costs the edge a gRPC call (~0.25 ms of CPU in Python) and etcd a Raft entry
and fsync each; at 64 concurrent clients a batch holds ~10-16 tasks, so both are paid once per
batch. An idle edge sends a batch of one at once: single requests wait for nothing.

etcd 3.4's space quota prices only a txn's top-level puts: a txn of nested puts costs nothing,
so it passes even while the NOSPACE alarm refuses every other write. Writes that grow etcd (new
tasks) therefore carry ``quota_key``: one tiny top-level put that makes etcd's own accounting see
the batch, and refuse it when the space is gone. Settles go without it: they let the queue drain.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from federation.errors import Rejected, SpilloverError
from federation.etcd import Compare, Etcd, Op, nested, put

# etcd's defaults: --max-txn-ops 128 (nested ops count; an enqueue has up to 4 puts and a get)
# and --max-request-bytes 1.5 MiB (bodies up to the 64 KiB inline limit ride along).
MAX_TASKS = 16
MAX_BYTES = 1 << 20


@dataclass
class _Entry:
    compare: list[Compare]
    success: list[Op]
    failure: list[Op]
    keys: frozenset[bytes]  # a txn may not name a key twice
    size: int
    done: asyncio.Future[tuple[bool, list[Any]]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit:
    def __init__(self, etcd: Etcd, quota_key: bytes | None = None) -> None:
        self.etcd = etcd
        self.quota_key = quota_key
        self._pending: list[_Entry] = []
        self._busy = False  # a txn is on its way: newcomers wait for the next batch
        self._flusher: asyncio.Task[None] | None = None

    async def txn(
        self,
        compare: list[Compare],
        success: list[Op],
        failure: list[Op],
        keys: frozenset[bytes],
        size: int,
    ) -> tuple[bool, list[Any]]:
        """Like ``Etcd.txn`` for one sub-txn: (succeeded, the raw responses of the branch that
        ran). Errors of the batch's txn are every member's."""
        entry = _Entry(compare, success, failure, keys, size)
        if self._busy:
            self._pending.append(entry)
            return await entry.done
        # Idle: commit at once, in the caller's task (no hop through the flusher).
        self._busy = True
        try:
            await self._commit([entry])
        finally:
            self._busy = False
            if self._pending:
                self._busy = True
                self._flusher = asyncio.create_task(self._drain(), name="group-commit")
        return entry.done.result()

    async def _drain(self) -> None:
        """Commit batches until nothing is pending, then stand down."""
        try:
            while self._pending:
                if batch := self._take():
                    await self._commit(batch)
        finally:
            self._busy = False

    async def _commit(self, batch: list[_Entry]) -> None:
        try:
            result = await self.etcd.txn([], self._ops(batch))
        except Rejected as e:
            if len(batch) > 1:  # one entry may be at fault (too large): the rest must not pay
                for entry in batch:
                    await self._commit([entry])
            else:
                _fail(batch, e)
            return
        except Exception as e:
            _fail(batch, e)
            return
        responses = result.responses[1:] if self.quota_key is not None else result.responses
        for entry, response in zip(batch, responses, strict=True):
            sub = response.response_txn
            if not entry.done.done():
                entry.done.set_result((bool(sub.succeeded), list(sub.responses)))

    def _ops(self, batch: list[_Entry]) -> list[Op]:
        subs = [nested(e.compare, e.success, e.failure) for e in batch]
        return subs if self.quota_key is None else [put(self.quota_key, b""), *subs]

    def _take(self) -> list[_Entry]:
        """The next batch, oldest first, within the limits and without a key twice; callers
        that gave up meanwhile are dropped (they were never acknowledged)."""
        batch: list[_Entry] = []
        rest: list[_Entry] = []
        seen: set[bytes] = set()
        size = 0
        for e in self._pending:
            if e.done.done():
                continue
            fits = len(batch) < MAX_TASKS and (not batch or size + e.size <= MAX_BYTES)
            if fits and not e.keys & seen:
                batch.append(e)
                seen |= e.keys
                size += e.size
            else:
                rest.append(e)
        self._pending = rest
        return batch


def _fail(batch: list[_Entry], e: Exception) -> None:
    """Each caller gets the batch's error as its own (a fresh instance: raising one exception
    object in many tasks would tangle their tracebacks)."""
    for entry in batch:
        if not entry.done.done():
            own = (
                type(e)(e.message, retry_after=e.retry_after)
                if isinstance(e, SpilloverError)
                else e
            )
            entry.done.set_exception(own)
