"""A replica: one process, the model loaded once, up to ``replica_concurrency`` tasks at a time
over gRPC. Sync handlers share one model copy from a thread pool sized to the concurrency; async
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
from pathlib import Path
from typing import Any

import grpc
import uvloop

from federation.blobs import CHUNK
from federation.proc import die_with_parent
from federation.task import truncated
from regional.handler import (
    Context,
    UnknownFunction,
    call,
    encode_result,
    function_of,
    load_handler,
    streamed,
)
from regional.rpc import GRPC_OPTIONS
from regional.rpc import replica_pb2 as pb
from regional.rpc import replica_pb2_grpc as pb_grpc
from regional.sandbox import become
from regional.streams import Body

_IN_FLIGHT = 4  # result chunks queued for the agent per task (4 MiB)


class ReplicaService(pb_grpc.ReplicaServicer):
    def __init__(
        self, handler: Any, concurrency: int, replica_id: str, functions: tuple[str, ...] | None
    ) -> None:
        self.handler = handler
        self.functions = functions  # the app's list, if it has one
        self.capacity = concurrency
        self.busy = 0
        self.replica_id = replica_id
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="handler")

    async def Status(self, request: pb.StatusRequest, context: Any) -> pb.StatusReply:
        return pb.StatusReply(
            ready=True, capacity=self.capacity, busy=self.busy, replica_id=self.replica_id
        )

    async def Run(self, request: pb.RunRequest, context: Any) -> AsyncIterator[pb.RunEvent]:
        async for event in self._run(request, Body.of(request.payload), context):
            yield event

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

        async for event in self._run(request, Body(chunks(), request.size), context):
            yield event

    async def _run(
        self, request: pb.RunRequest, body: Body, context: Any
    ) -> AsyncIterator[pb.RunEvent]:
        if self.busy >= self.capacity:
            # The agent never sends more than the free slots; this guards the hard limit.
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "replica_concurrency reached")
        try:
            fn = function_of(self.handler, request.function, self.functions)
        except UnknownFunction as e:
            yield pb.RunEvent(error=pb.Error(code="handler_error", message=str(e)))
            return
        # Progress and log lines come from handler threads (put_nowait); result chunks from
        # the handler's iterator, at most _IN_FLIGHT at a time so a fast producer waits for
        # the agent instead of filling memory.
        events: asyncio.Queue[Any] = asyncio.Queue()
        credits = asyncio.Semaphore(_IN_FLIGHT)
        ctx = Context(request.task_id, asyncio.get_running_loop(), events.put_nowait)
        self.busy += 1
        held = True
        work = asyncio.ensure_future(self._execute(fn, body, ctx, events, credits))
        work.add_done_callback(lambda _: events.put_nowait(None))
        try:
            while (event := await events.get()) is not None:
                yield _event(event)
                if event[0] == "chunk":
                    credits.release()
            outcome = _outcome(work)
            # The slot is free before the agent hears the outcome: it frees its count of this
            # slot then and may send the next task before this stream has ended.
            self.busy -= 1
            held = False
            yield outcome
        finally:
            # Reached on completion and when the agent cancels the call (cancel, max_runtime).
            ctx.cancel()
            work.cancel()
            if held:
                self.busy -= 1

    async def _execute(
        self,
        fn: Any,
        body: Body,
        ctx: Context,
        events: asyncio.Queue[Any],
        credits: asyncio.Semaphore,
    ) -> tuple[bytes, str]:
        result = await call(fn, body, ctx, self.pool)
        chunks = streamed(result)
        if chunks is None:
            whole, content_type = encode_result(result)
            if len(whole) <= CHUNK:
                return whole, content_type
            # Larger goes in chunks, as a streamed result does: one message of it could pass
            # gRPC's limit, failing the call as if the replica had died.
            await _send_chunks(whole, events, credits)
            return b"", content_type
        async for chunk in chunks:
            await _send_chunks(chunk, events, credits)
        return b"", "application/octet-stream"


async def _send_chunks(data: bytes, events: asyncio.Queue[Any], credits: asyncio.Semaphore) -> None:
    """``data`` to the agent in CHUNK pieces, each once a credit is free (_IN_FLIGHT at most)."""
    view = memoryview(data)
    for i in range(0, len(view), CHUNK):
        await credits.acquire()
        events.put_nowait(("chunk", bytes(view[i : i + CHUNK])))


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
