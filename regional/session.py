"""The agent's end of a replica's session: one bidirectional stream per replica that carries
every task with an inline payload (``replica.proto``), instead of a call per task, which cost
the agent more CPU than the task's own messages.

One reader hands what the replica sends to each run's queue; one writer sends what the runs ask
for, in order (grpc.aio takes one write at a time per call; and a cancel written before the next
start reaches the replica first, so the slot it frees is free there too). When the stream ends
or breaks, every run left ends without an outcome: the replica is taken for dead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from federation.aio import cancel_and_wait
from regional.rpc import replica_pb2 as pb
from regional.rpc import replica_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_CREDIT = pb.Credit()
_CANCEL = pb.Cancel()


class Session:
    def __init__(self, stub: pb_grpc.ReplicaStub) -> None:
        self.call: Any = stub.Session()
        self.runs: dict[int, asyncio.Queue[pb.RunEvent | None]] = {}
        self.open = True
        self.closed = False  # ended by the agent (a stop), not broken
        # Bounded by the runs: each sends a start, a cancel at most and a credit per chunk it
        # took (the replica sends no more chunks than its credits).
        self._out: asyncio.Queue[pb.SessionInput] = asyncio.Queue()
        self._numbers = itertools.count(1)

    def start(self, request: pb.RunRequest) -> Run:
        number = next(self._numbers)
        events: asyncio.Queue[pb.RunEvent | None] = asyncio.Queue()
        if self.open:
            self.runs[number] = events
            self.send(pb.SessionInput(run=number, start=request))
        else:
            events.put_nowait(None)  # the stream is gone: the run breaks at once
        return Run(self, number, events)

    def send(self, message: pb.SessionInput) -> None:
        self._out.put_nowait(message)

    def close(self) -> None:
        """End the stream (the replica stops what still runs on it), before a stop."""
        self.closed = True
        self.call.cancel()

    async def run(self) -> None:
        """Until the stream ends or breaks (or this is cancelled): then end every run left."""
        reader = asyncio.ensure_future(self._read())
        writer = asyncio.ensure_future(self._write())
        try:
            await asyncio.wait([reader, writer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.open = False
            self.call.cancel()
            await cancel_and_wait([reader, writer])
            for task in (reader, writer):
                if not task.cancelled() and task.exception() is not None:
                    log.warning("a replica session broke: %r", task.exception())
            for events in self.runs.values():
                events.put_nowait(None)
            self.runs.clear()

    async def _read(self) -> None:
        async for message in self.call:
            events = self.runs.get(message.run)
            if events is not None:  # else the run was given up: what it missed is moot
                events.put_nowait(message.event)

    async def _write(self) -> None:
        while True:
            await self.call.write(await self._out.get())


class Run:
    """One task on a session: its events, until its Result or Error (or the session's end).
    An iterator, not an async generator: one left at its outcome costs nothing to finalize."""

    def __init__(
        self, session: Session, number: int, events: asyncio.Queue[pb.RunEvent | None]
    ) -> None:
        self.session = session
        self.number = number
        self.events = events
        self.taken = False  # a chunk was handed out
        self.answered = False

    def __aiter__(self) -> Run:
        return self

    async def __anext__(self) -> pb.RunEvent:
        session = self.session
        if self.taken and self.number in session.runs:
            # The consumer took the chunk (it asks for more): the replica may send another.
            session.send(pb.SessionInput(run=self.number, credit=_CREDIT))
        event = None if self.answered else await self.events.get()
        if event is None:
            raise StopAsyncIteration
        kind = event.WhichOneof("kind")
        self.taken = kind == "chunk"
        if kind in ("result", "error"):
            self.answered = True
            session.runs.pop(self.number, None)  # over: nothing to cancel any more
        return event

    def cancel(self) -> None:
        """Stop the task on the replica; a no-op once it answered or the session ended."""
        if self.session.runs.pop(self.number, None) is not None:
            self.session.send(pb.SessionInput(run=self.number, cancel=_CANCEL))
