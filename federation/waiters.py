"""Waiting for tasks without polling: one stream of finished tasks per partition
(``finished.py``), fanned out in memory to every waiter, instead of one watch per request."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable

from federation.errors import NotFound, Unreachable
from federation.finished import Finished, finished
from federation.queue import Queue
from federation.task import TaskRecord, partition_of


class TaskWaiters:
    def __init__(self, queue: Queue, partitions: Iterable[str]) -> None:
        self.queue = queue
        self.partitions = tuple(partitions)
        self._subscribers: dict[str, set[asyncio.Queue[TaskRecord]]] = defaultdict(set)
        self._watching: dict[str, asyncio.Event] = {p: asyncio.Event() for p in self.partitions}

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for p in self.partitions:
                tg.create_task(self._follow(p))

    async def _follow(self, partition: str) -> None:
        async for item in finished(self.queue, partition):
            if isinstance(item, Finished):
                # Decode only what someone waits for: most tasks have no waiter here.
                if item.task_id in self._subscribers:
                    self._publish(item.record())
                continue
            self._watching[partition].set()
            if item.gap:  # finishes were missed: give every waiter here the current record
                for task_id in [t for t in self._subscribers if t.endswith("." + partition)]:
                    with contextlib.suppress(Exception):
                        self._publish(await self.queue.get(task_id))

    def _publish(self, record: TaskRecord) -> None:
        for q in self._subscribers.get(record.id, ()):
            q.put_nowait(record)

    @contextlib.asynccontextmanager
    async def subscribe(self, task_id: str) -> AsyncIterator[asyncio.Queue[TaskRecord]]:
        """The task's final record once it finishes. Subscribe *before* writing or reading the
        task: an end between the two then reaches the subscriber either way."""
        try:
            watching = self._watching[partition_of(task_id)]
        except (ValueError, KeyError):
            raise NotFound(f"task {task_id} not found") from None
        q: asyncio.Queue[TaskRecord] = asyncio.Queue()
        self._subscribers[task_id].add(q)
        try:
            if not watching.is_set():  # the partition's cluster was never reached yet
                try:
                    async with asyncio.timeout(self.queue.clusters.config.timeout):
                        await watching.wait()
                except TimeoutError:
                    raise Unreachable(f"the etcd of partition {partition_of(task_id)} is not "
                                      "reachable") from None  # fmt: skip
            yield q
        finally:
            self._subscribers[task_id].discard(q)
            if not self._subscribers[task_id]:
                del self._subscribers[task_id]

    async def wait(self, task_id: str, timeout: float) -> TaskRecord:
        """The task's record once it is finished, or its current record after ``timeout`` s."""
        async with self.subscribe(task_id) as q:
            return await until_finished(q, await self.queue.get(task_id), timeout)


async def until_finished(
    updates: asyncio.Queue[TaskRecord], record: TaskRecord, timeout: float
) -> TaskRecord:
    """Follow ``updates`` from ``record`` until the task finishes or ``timeout`` s pass."""
    try:
        async with asyncio.timeout(timeout):
            while not record.state.terminal:
                record = await updates.get()
    except TimeoutError:
        pass
    return record
