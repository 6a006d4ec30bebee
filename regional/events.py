"""Publishing one running task's progress and log lines to etcd for SSE clients."""

from __future__ import annotations

import asyncio
import logging

from federation.aio import cancel_and_wait
from federation.errors import Unavailable
from federation.events import TaskEvents
from federation.queue import Queue

log = logging.getLogger(__name__)


class EventPublisher:
    """Writes the task's events at most every ``interval`` seconds: a handler may report
    progress thousands of times a second, and etcd only needs the latest state."""

    def __init__(self, queue: Queue, task_id: str, interval: float = 0.25) -> None:
        self.queue = queue
        self.task_id = task_id
        self.interval = interval
        self.events = TaskEvents()
        self._written = self.events
        self._dirty = asyncio.Event()
        self._writer = asyncio.get_running_loop().create_task(self._run())

    def progress(self, fraction: float, message: str) -> None:
        self.events = self.events.with_progress(fraction, message)
        self._dirty.set()

    def line(self, text: str) -> None:
        self.events = self.events.with_line(text)
        self._dirty.set()

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._write()
            await asyncio.sleep(self.interval)

    async def _write(self) -> None:
        events = self.events
        if events == self._written:
            return
        try:
            await self.queue.put_events(self.task_id, events)
            self._written = events
        except Unavailable as e:  # events are best effort; the outcome is what must not be lost
            log.info("task %s: events not written: %s", self.task_id, e)

    async def close(self) -> None:
        """Stop, writing what is still unwritten (before the outcome, so readers see it)."""
        await cancel_and_wait([self._writer])
        await self._write()
