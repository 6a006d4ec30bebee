"""``python -m benchmarks.grpc_calls``: what a task's gRPC call to its replica costs, against a
message on one long-lived stream per replica (issue 17's second lever: the agent's ``Session``).

Two processes on a Unix socket, as agent and replica are; 4 tasks in flight; each task is one
request and one reply, no handler work. The agent used to open one server-streaming call per task
(``Replica.Run``); now it tags each request and reply with the run on a single bidirectional
stream. Raw bytes, no protobuf: the difference is the call, not the encoding.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import uvloop

RUN, SESSION = "/bench.Replica/Run", "/bench.Replica/Session"
IN_FLIGHT = 4


async def _run(request: bytes, context: object) -> AsyncIterator[bytes]:
    yield request  # the reply names the task, as a Result would


async def _session(requests: AsyncIterator[bytes], context: object) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


async def serve(socket: str) -> None:
    server = grpc.aio.server()
    handlers = {
        "Run": grpc.unary_stream_rpc_method_handler(_run),
        "Session": grpc.stream_stream_rpc_method_handler(_session),
    }
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("bench.Replica", handlers)]
    )
    server.add_insecure_port(f"unix:{socket}")
    await server.start()
    print("READY", flush=True)
    await server.wait_for_termination()


async def per_call(channel: grpc.aio.Channel, n: int) -> None:
    run = channel.unary_stream(RUN)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> None:
        async with gate:
            async for _ in run(str(i).encode(), timeout=30):
                pass

    await asyncio.gather(*(one(i) for i in range(n)))


async def one_stream(channel: grpc.aio.Channel, n: int) -> None:
    call = channel.stream_stream(SESSION)()
    waiting: dict[bytes, asyncio.Future[None]] = {}
    writing = asyncio.Lock()  # grpc.aio allows one write in flight per call

    async def replies() -> None:
        async for reply in call:
            waiting.pop(reply).set_result(None)

    reader = asyncio.create_task(replies())
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> None:
        async with gate:
            task_id = str(i).encode()
            reply = waiting[task_id] = asyncio.get_running_loop().create_future()
            async with writing:
                await call.write(task_id)
            await reply

    await asyncio.gather(*(one(i) for i in range(n)))
    await call.done_writing()
    await reader


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(server: int, socket: str, n: int, reps: int) -> list[str]:
    ways: dict[str, Callable[[grpc.aio.Channel, int], Awaitable[None]]] = {
        "a call per task (before)": per_call,
        "one stream per replica": one_stream,
    }
    rows = ["| per task | tasks/s | agent side CPU (µs) | replica side CPU (µs) |",
            "|---|---:|---:|---:|"]  # fmt: skip
    async with grpc.aio.insecure_channel(f"unix:{socket}") as channel:
        for name, way in ways.items():
            best: tuple[float, float, float] | None = None
            for _ in range(reps):
                mine, theirs, t0 = time.process_time(), _cpu(server), time.perf_counter()
                await way(channel, n)
                rate = n / (time.perf_counter() - t0)
                cpu = ((time.process_time() - mine) / n * 1e6, (_cpu(server) - theirs) / n * 1e6)
                best = max(best or (0.0, 0.0, 0.0), (rate, *cpu))
            assert best is not None
            rows.append(f"| {name} | {best[0]:,.0f} | {best[1]:.0f} | {best[2]:.0f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20_000, help="tasks per repetition")
    ap.add_argument("--reps", type=int, default=3, help="the fastest repetition is reported")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        socket = f"{d}/replica.sock"
        cmd = [sys.executable, "-m", "benchmarks.grpc_calls", "--serve", socket]
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == b"READY"
            print("\n".join(uvloop.run(measure(server.pid, socket, args.n, args.reps))))
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":  # the replica's side, started by main()
        uvloop.run(serve(sys.argv[2]))
    else:
        main()
