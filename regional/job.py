"""One task running in a replica (``replica.py``): its handler's work, the events it reports on
the way, and its outcome, whichever call or stream carries them to the agent.

Progress and log lines come from handler threads (put_nowait); result chunks from the handler's
iterator, each once a credit is free: at most ``IN_FLIGHT`` wait for the agent, so a fast
producer waits instead of filling memory. Whoever carries the events gives a credit back once
the agent took a chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from federation.blobs import CHUNK
from federation.task import truncated
from regional.handler import Context, call, encode_result, streamed
from regional.rpc import replica_pb2 as pb
from regional.streams import Body

IN_FLIGHT = 4  # result chunks queued for the agent per task (4 MiB)


class Slots(Protocol):
    """The replica's count of busy slots, and what a freed one sets."""

    busy: int
    freed: asyncio.Event


class Job:
    def __init__(
        self, slots: Slots, fn: Any, request: pb.RunRequest, body: Body, pool: ThreadPoolExecutor
    ) -> None:
        self.slots = slots
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.credits = asyncio.Semaphore(IN_FLIGHT)
        self.ctx = Context(request.task_id, asyncio.get_running_loop(), self.events.put_nowait)
        slots.busy += 1
        self.held = True
        self.work = asyncio.ensure_future(self._execute(fn, body, pool))
        self.work.add_done_callback(lambda _: self.events.put_nowait(None))

    async def __aiter__(self) -> AsyncIterator[pb.RunEvent]:
        """The events, then the outcome."""
        while (event := await self.events.get()) is not None:
            yield _event(event)
        outcome = _outcome(self.work)
        # The slot is free before the agent hears the outcome: it frees its count of this slot
        # then and may send the next task at once.
        self._release()
        yield outcome

    def stop(self) -> None:
        """On completion, and when the agent gives up on the task (cancel, max_runtime)."""
        self.ctx.cancel()
        self.work.cancel()
        self._release()

    def _release(self) -> None:
        if self.held:
            self.slots.busy -= 1
            self.held = False
            self.slots.freed.set()

    async def _execute(self, fn: Any, body: Body, pool: ThreadPoolExecutor) -> tuple[bytes, str]:
        result = await call(fn, body, self.ctx, pool)
        chunks = streamed(result)
        if chunks is None:
            whole, content_type = encode_result(result)
            if len(whole) <= CHUNK:
                return whole, content_type
            # Larger goes in chunks, as a streamed result does: one message of it could pass
            # gRPC's limit, failing the call as if the replica had died.
            await self._send_chunks(whole)
            return b"", content_type
        async for chunk in chunks:
            await self._send_chunks(chunk)
        return b"", "application/octet-stream"

    async def _send_chunks(self, data: bytes) -> None:
        """``data`` to the agent in CHUNK pieces, each once a credit is free."""
        view = memoryview(data)
        for i in range(0, len(view), CHUNK):
            await self.credits.acquire()
            self.events.put_nowait(("chunk", bytes(view[i : i + CHUNK])))


def _event(event: tuple[Any, ...]) -> pb.RunEvent:
    """A handler's report (a result chunk, progress, a log line) as the agent receives it."""
    if event[0] == "chunk":
        return pb.RunEvent(chunk=event[1])
    if event[0] == "progress":
        return pb.RunEvent(progress=pb.Progress(fraction=event[1], message=event[2]))
    return pb.RunEvent(log=pb.Log(line=event[1]))


def _outcome(work: asyncio.Future[tuple[bytes, str]]) -> pb.RunEvent:
    try:
        body, content_type = work.result()
    except Exception as e:  # the user's code failed: a failed task, not a dead replica
        message = truncated(f"{type(e).__name__}: {e}")  # the stored message is cut anyway
        return pb.RunEvent(error=pb.Error(code="handler_error", message=message))
    return pb.RunEvent(result=pb.Result(body=body, content_type=content_type))
