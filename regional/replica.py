"""A replica: one process, the model loaded once, up to ``replica_concurrency`` tasks at a time
over gRPC (each a ``job.py`` Job): the agent's session, and a call per task whose payload is a
blob. Sync handlers share one model copy from a thread pool sized to the concurrency; async
handlers run on the loop.

    python -P -m regional.replica --handler spillover.demo.app:Model --concurrency 4 \
        --app-root . --socket /run/demo/r1.sock [--user spillover-demo]

With ``--user`` (an agent running as root) it becomes that user first (``sandbox.py``); the app's
directory is importable only then. It serves on the Unix socket and prints ``READY`` once
``load()`` has returned and the server listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import uvloop

from federation.aio import cancel_and_wait
from federation.proc import die_with_parent
from regional.handler import UnknownFunction, function_of, load_handler
from regional.job import Job
from regional.rpc import GRPC_OPTIONS
from regional.rpc import replica_pb2 as pb
from regional.rpc import replica_pb2_grpc as pb_grpc
from regional.sandbox import become
from regional.streams import Body

SLOT_WAIT = 5.0  # seconds a start waits for a slot that a cut RunStream call frees
_OUTGOING = 16  # messages waiting to be written to a session: a slow agent holds runs back


class ReplicaService(pb_grpc.ReplicaServicer):
    def __init__(
        self, handler: Any, concurrency: int, replica_id: str, functions: tuple[str, ...] | None
    ) -> None:
        self.handler = handler
        self.functions = functions  # the app's list, if it has one
        self.capacity = concurrency
        self.busy = 0
        self.freed = asyncio.Event()  # a slot came free (``Job``)
        self.replica_id = replica_id
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="handler")

    async def Status(self, request: pb.StatusRequest, context: Any) -> pb.StatusReply:
        return pb.StatusReply(
            ready=True, capacity=self.capacity, busy=self.busy, replica_id=self.replica_id
        )

    async def Session(self, inputs: AsyncIterator[pb.SessionInput], context: Any) -> None:
        """The agent's runs, until it ends the stream (a stop) or the stream breaks: then every
        run left is stopped. Messages of a run that ended (late cancels, credits) are moot."""
        # Now, before the writer runs: its first write and an abort racing to send them broke
        # the stream's end (the agent never heard the abort).
        await context.send_initial_metadata(())
        out: asyncio.Queue[pb.SessionEvent] = asyncio.Queue(maxsize=_OUTGOING)
        runs: dict[int, tuple[Job, asyncio.Task[None]]] = {}
        writer = asyncio.ensure_future(_write(out, context))
        try:
            async for message in inputs:
                kind, number = message.WhichOneof("kind"), message.run
                if kind == "start":
                    await self._room()
                    job = await self._job(message.start, Body.of(message.start.payload), context)
                    if isinstance(job, Job):
                        pump = asyncio.ensure_future(_pump(number, job, out))
                        pump.add_done_callback(partial(_forget, runs, number))
                        runs[number] = job, pump
                    else:
                        await out.put(pb.SessionEvent(run=number, event=job))
                elif number in runs:
                    job, pump = runs[number]
                    if kind == "credit":
                        job.credits.release()
                    else:  # cancel: the slot is free before the next message is read
                        job.stop()
                        pump.cancel()
        finally:
            for job, _ in runs.values():
                job.stop()
            await cancel_and_wait([writer, *(pump for _, pump in runs.values())])
            if not writer.cancelled():
                writer.exception()  # the stream broke: seen (the session ends either way)

    async def RunStream(
        self, inputs: AsyncIterator[pb.RunInput], context: Any
    ) -> AsyncIterator[pb.RunEvent]:
        first = await anext(inputs, None)
        if first is None or first.WhichOneof("kind") != "request":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "RunStream starts with a request")
            return
        request = first.request

        async def chunks() -> AsyncIterator[bytes]:
            async for message in inputs:
                yield message.chunk

        job = await self._job(request, Body(chunks(), request.size), context)
        if not isinstance(job, Job):
            yield job
            return
        try:
            async for event in job:
                yield event
                if event.WhichOneof("kind") == "chunk":
                    job.credits.release()  # the call's own flow control took it
        finally:
            job.stop()  # reached on completion and when the agent cancels the call

    async def _room(self) -> None:
        """Wait a moment for a slot, if none is free. The agent sends a start only into a slot
        it freed, and a cancel on the session comes before that start; but a ``RunStream`` call
        it cut frees its slot here only when that call's end comes through, on its own stream,
        maybe after the start. Past ``SLOT_WAIT`` the start is refused (``_job``): a broken
        session, the replica replaced."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SLOT_WAIT):
                while self.busy >= self.capacity:
                    self.freed.clear()
                    await self.freed.wait()

    async def _job(self, request: pb.RunRequest, body: Body, context: Any) -> Job | pb.RunEvent:
        """The task started, or the error that ends it at once (a function it may not call)."""
        if self.busy >= self.capacity:
            # The agent never sends more than the free slots; this guards the hard limit.
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "replica_concurrency reached")
        try:
            fn = function_of(self.handler, request.function, self.functions)
        except UnknownFunction as e:
            return pb.RunEvent(error=pb.Error(code="handler_error", message=str(e)))
        return Job(self, fn, request, body, self.pool)


def _forget(runs: dict[int, Any], number: int, _: object) -> None:
    runs.pop(number, None)


async def _pump(number: int, job: Job, out: asyncio.Queue[pb.SessionEvent]) -> None:
    """A run's events into the session's outgoing queue (its chunks held back by credits)."""
    try:
        async for event in job:
            await out.put(pb.SessionEvent(run=number, event=event))
    finally:
        job.stop()


async def _write(out: asyncio.Queue[pb.SessionEvent], context: Any) -> None:
    """The one writer of a session (grpc.aio takes one write at a time per call)."""
    while True:
        await context.write(await out.get())


async def serve(
    handler_path: str, concurrency: int, functions: tuple[str, ...] | None, socket: Path
) -> None:
    # load() before the server listens: a replica that accepts work has its model.
    handler = await asyncio.to_thread(load_handler, handler_path)
    server = grpc.aio.server(options=GRPC_OPTIONS)
    pb_grpc.add_ReplicaServicer_to_server(  # type: ignore[no-untyped-call]
        ReplicaService(handler, concurrency, f"{os.uname().nodename}-{os.getpid()}", functions),
        server,
    )
    server.add_insecure_port(f"unix:{socket}")
    await server.start()
    os.chmod(socket, 0o600)  # the agent (root) and the app's user only; its directory is 0700
    print("READY", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # The agent drains a replica before stopping it; a grace period covers stragglers.
    await server.stop(grace=5)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m regional.replica")
    ap.add_argument("--handler", required=True, help="import path, e.g. spillover.demo.app:Model")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--functions", help="comma list: the only functions tasks may call")
    ap.add_argument("--app-root", type=Path, required=True, help="where handlers are imported from")
    ap.add_argument("--socket", type=Path, required=True, help="the Unix socket to serve on")
    ap.add_argument("--user", help="the user to become (started as root)")
    args = ap.parse_args(argv)
    # A dead agent leaves no replica holding a model. SIGKILL, not a graceful stop: nobody can
    # take this replica's results any more, and its tasks are requeued and run again anyway.
    # Again once it is its user: a change of user clears the setting.
    agent = os.getppid()
    die_with_parent(agent, sig=signal.SIGKILL)
    become(args.user, args.app_root)
    die_with_parent(agent, sig=signal.SIGKILL)
    with contextlib.suppress(KeyboardInterrupt):
        functions = tuple(args.functions.split(",")) if args.functions else None
        uvloop.run(serve(args.handler, args.concurrency, functions, args.socket))


if __name__ == "__main__":
    main()
