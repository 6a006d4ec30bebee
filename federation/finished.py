"""Finished tasks, as a stream per partition: each task once, when it ends (succeeded, failed,
cancelled, expired; whoever ended it). Waiters at the edges follow every finished task, and the
agents that deliver webhooks only those with a webhook: the indexes (``keys.done``,
``keys.hook``) are the queue's business.

The stream follows an index with a watch: one event per task, not one per write of its
record. Items are :class:`Finished` (the record, still encoded: most consumers look at a few
of them) and :class:`Following`, once the watch is placed and again after a gap (the watch fell
behind compaction), when a consumer must re-read whatever it waits for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from federation import keys
from federation.etcd import KV, Compacted
from federation.queue import Queue, decode
from federation.retry import retried
from federation.task import TaskRecord


@dataclass(frozen=True, slots=True)
class Finished:
    task_id: str
    value: bytes  # the terminal record, encoded

    def record(self) -> TaskRecord:
        return decode(self.value)

    @property
    def has_webhook(self) -> bool:
        """Whether the record names a webhook, without decoding it (records are encoded
        without their defaults, so one without a webhook has no such field)."""
        return b'"webhook":' in self.value


@dataclass(frozen=True, slots=True)
class Following:
    """From here on every finish arrives. ``gap``: finishes since the last item may have been
    missed (the watch fell behind compaction): re-read what you wait for."""

    gap: bool


async def finished(
    queue: Queue, partition: str, *, replay: bool = False, webhooks: bool = False
) -> AsyncIterator[Finished | Following]:
    """The partition's finished tasks from now on (``webhooks``: only those with a webhook);
    with ``replay`` first every one still kept (a restarted consumer catches up on what it
    missed; again after a gap)."""
    root = queue.root
    prefix = keys.hooks(root, partition) if webhooks else keys.done_all(root, partition)
    etcd = queue.etcd(partition)
    end = keys.prefix_end(prefix)
    gap = False
    while True:
        kvs: list[KV] = []
        if replay:
            kvs, revision = await retried(etcd.range_all, prefix, end)
        else:  # only the revision to watch from
            _, revision, _ = await retried(etcd.range, prefix, end, limit=1,
                                                    keys_only=True)  # fmt: skip
        for kv in kvs:
            yield Finished(keys.task_id_of(kv.key), kv.value)
        yield Following(gap)
        try:
            async for ev in etcd.watch(prefix, revision + 1):
                if ev.kind == "put":
                    yield Finished(keys.task_id_of(ev.kv.key), ev.kv.value)
        except Compacted:
            gap = True
