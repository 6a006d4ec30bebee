"""Waiting for tasks without polling: one watch per partition on the task records, fanned out in
memory to every waiter, instead of one watch per request."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable

from federation import keys
from federation.etcd import Compacted
from federation.queue import Queue, decode
from federation.task import TaskRecord


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
        etcd = self.queue.clusters.for_partition(partition)
        prefix = keys.tasks(self.queue.root, partition)
        while True:
            _, revision, _ = await etcd.range(
                prefix, keys.prefix_end(prefix), limit=1, keys_only=True
            )
            self._watching[partition].set()
            try:
                async for ev in etcd.watch(prefix, revision + 1):
                    if ev.kind == "put":
                        self._publish(decode(ev.kv.value))
            except Compacted:
                # Events were missed: give every waiter of this partition the current record.
                for task_id in [t for t in self._subscribers if t.endswith("." + partition)]:
                    with contextlib.suppress(Exception):
                        self._publish(await self.queue.get(task_id))

    def _publish(self, record: TaskRecord) -> None:
        for q in self._subscribers.get(record.id, ()):
            q.put_nowait(record)

    @contextlib.asynccontextmanager
    async def subscribe(self, task_id: str) -> AsyncIterator[asyncio.Queue[TaskRecord]]:
        """Every change of the task's record from now on (the current one first)."""
        q: asyncio.Queue[TaskRecord] = asyncio.Queue()
        self._subscribers[task_id].add(q)
        try:
            # Subscribe first, then read: a change between the two reaches us either way.
            await self._watching[(await self.queue.get(task_id)).partition].wait()
            q.put_nowait(await self.queue.get(task_id))
            yield q
        finally:
            self._subscribers[task_id].discard(q)
            if not self._subscribers[task_id]:
                del self._subscribers[task_id]

    async def wait(self, task_id: str, timeout: float) -> TaskRecord:
        """The task's record once it is finished, or its current record after ``timeout`` s."""
        async with self.subscribe(task_id) as q:
            record = await q.get()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not record.state.terminal:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    record = await asyncio.wait_for(q.get(), remaining)
                except TimeoutError:
                    break
            return record
