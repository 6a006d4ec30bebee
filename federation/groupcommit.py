"""Group commit for enqueues and fenced settles: the writes that arrive while one txn is in
flight go to etcd together, as one txn of nested sub-txns (each compares on its own, so one
duplicate or stale claim does not fail the others).

One txn per task costs the edge a gRPC call (~0.25 ms of CPU in Python) and etcd a Raft entry
and fsync each; at 64 concurrent clients a batch holds ~10-16 tasks, so both are paid once per
batch. An idle edge sends a batch of one at once: single requests wait for nothing.

A txn that takes far longer than any healthy one (``stuck_after``) is taken for stuck: a member
forwarded it to a leader that died, and it waits for the client's timeout (5 s). The next batch
goes beside it, not behind it, once the cluster has a new leader that commits it; at most
``MAX_IN_FLIGHT`` txns are out at once.

etcd 3.4's space quota prices only a txn's top-level puts: a txn of nested puts costs nothing,
so it passes even while the NOSPACE alarm refuses every other write. Writes that grow etcd (new
tasks) therefore carry ``quota_key``: one tiny top-level put that makes etcd's own accounting see
the batch, and refuse it when the space is gone. Settles go without it: they let the queue drain.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from federation.errors import Rejected, SpilloverError, Unavailable
from federation.etcd import Compare, Etcd, Op, nested, put

# etcd's defaults: --max-txn-ops 128 (nested ops count; an enqueue has up to 4 puts and a get)
# and --max-request-bytes 1.5 MiB (bodies up to the 64 KiB inline limit ride along).
MAX_TASKS = 16
MAX_BYTES = 1 << 20
# A healthy commit takes milliseconds (a slow disk's fsync, tens); an election takes ~1 s.
STUCK_AFTER = 1.0
MAX_IN_FLIGHT = 4


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
    def __init__(
        self, etcd: Etcd, quota_key: bytes | None = None, *, stuck_after: float = STUCK_AFTER
    ) -> None:
        self.etcd = etcd
        self.quota_key = quota_key
        self.stuck_after = stuck_after
        self._pending: list[_Entry] = []
        self._out: dict[asyncio.Future[None], float] = {}  # txns on their way: when each went
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
        if self._out or self._flusher is not None:
            self._pending.append(entry)
            self._flush()
            return await entry.done
        # Idle: commit at once, in the caller's task (no hop through the flusher).
        loop = asyncio.get_running_loop()
        out = loop.create_future()
        self._out[out] = loop.time()
        try:
            await self._commit([entry])
        finally:
            del self._out[out]
            out.set_result(None)
        return entry.done.result()

    def _flush(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._drain(), name="group-commit")

    async def _drain(self) -> None:
        """Commit batches until nothing is pending, then stand down."""
        try:
            while self._pending:
                await self._room()
                if batch := self._take():
                    self._send(batch)
        finally:
            self._flusher = None

    async def _room(self) -> None:
        """Until no txn is on its way, or every one out has been out ``stuck_after`` and fewer
        than ``MAX_IN_FLIGHT`` are."""
        loop = asyncio.get_running_loop()
        while self._out:
            left = max(self._out.values()) + self.stuck_after - loop.time()
            if left <= 0 and len(self._out) < MAX_IN_FLIGHT:
                return
            await asyncio.wait(
                list(self._out), timeout=max(left, 0) or None, return_when=asyncio.FIRST_COMPLETED
            )

    def _send(self, batch: list[_Entry]) -> None:
        commit = asyncio.ensure_future(self._commit(batch))
        self._out[commit] = asyncio.get_running_loop().time()
        commit.add_done_callback(partial(self._sent, batch))

    def _sent(self, batch: list[_Entry], commit: asyncio.Future[None]) -> None:
        """A batch's txn ended: no caller of it may be left waiting, whatever ended it."""
        del self._out[commit]
        if commit.cancelled():
            _fail(batch, Unavailable("etcd txn cut short: the group commit stopped"))
        elif (error := commit.exception()) is not None:
            _fail(batch, error)

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


def _fail(batch: list[_Entry], e: BaseException) -> None:
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
