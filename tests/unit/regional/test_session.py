"""The agent's end of a replica's session against a scripted stream (no process): each run gets
its own events, what it sends goes out in order, and a broken stream ends every run."""

from __future__ import annotations

import asyncio
from typing import Any

from federation.aio import cancel_and_wait
from regional.rpc import replica_pb2 as pb
from regional.session import Run, Session


class Call:
    """The stream: what the agent wrote, and what the replica sends (None ends it)."""

    def __init__(self) -> None:
        self.written: list[pb.SessionInput] = []
        self.incoming: asyncio.Queue[Any] = asyncio.Queue()

    async def write(self, message: pb.SessionInput) -> None:
        self.written.append(message)

    def __aiter__(self) -> Call:
        return self

    async def __anext__(self) -> pb.SessionEvent:
        message = await self.incoming.get()
        if message is None:
            raise StopAsyncIteration
        if isinstance(message, BaseException):
            raise message
        return message  # type: ignore[no-any-return]

    def cancel(self) -> None:
        self.incoming.put_nowait(None)

    def sent(self) -> list[tuple[int, str]]:
        return [(m.run, m.WhichOneof("kind")) for m in self.written]


class Stub:
    def __init__(self, call: Call) -> None:
        self.call = call

    def Session(self) -> Call:
        return self.call


def request(task_id: str) -> pb.RunRequest:
    return pb.RunRequest(task_id=task_id, function="echo", payload=b"x", size=1)


def event(run: int, **kind: Any) -> pb.SessionEvent:
    return pb.SessionEvent(run=run, event=pb.RunEvent(**kind))


async def drained() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_each_run_gets_its_events_and_what_it_sends_goes_out_in_order() -> None:
    call = Call()
    session = Session(Stub(call))  # type: ignore[arg-type]
    serving = asyncio.create_task(session.run())
    try:
        first, second = session.start(request("a")), session.start(request("b"))
        call.incoming.put_nowait(event(2, chunk=b"part"))
        call.incoming.put_nowait(event(1, result=pb.Result(body=b"one")))
        call.incoming.put_nowait(event(7, log=pb.Log(line="a run given up")))  # dropped
        assert (await anext(first)).result.body == b"one"
        assert (await anext(second)).chunk == b"part"
        first.cancel()  # answered: nothing to stop
        assert [e async for e in first] == []
        call.incoming.put_nowait(event(2, result=pb.Result(body=b"two")))
        assert (await anext(second)).result.body == b"two"  # asked for more: the chunk taken
        await drained()
        assert call.sent() == [(1, "start"), (2, "start"), (2, "credit")]
        assert call.written[0].start.task_id == "a" and not session.runs
        third = session.start(request("c"))
        third.cancel()
        third.cancel()
        await drained()
        assert call.sent()[-2:] == [(3, "start"), (3, "cancel")]
    finally:
        await cancel_and_wait([serving])


async def test_a_broken_stream_ends_every_run_without_an_outcome() -> None:
    call = Call()
    session = Session(Stub(call))  # type: ignore[arg-type]
    serving = asyncio.create_task(session.run())
    runs = [session.start(request(t)) for t in "ab"]
    call.incoming.put_nowait(event(1, progress=pb.Progress(fraction=0.5)))
    call.incoming.put_nowait(RuntimeError("the replica died"))
    await serving
    assert not session.open and not session.closed  # broken, not closed
    got: list[list[pb.RunEvent]] = [[e async for e in r] for r in runs]
    assert [len(g) for g in got] == [1, 0]  # what came, then the end: no outcome
    late: Run = session.start(request("c"))
    assert [e async for e in late] == []
    assert call.sent() == [(1, "start"), (2, "start")]
