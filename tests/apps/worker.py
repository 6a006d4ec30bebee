"""A handler for agent tests: no torch, so replicas start in a fraction of a second."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

from spillover import Body, stream


class Worker:
    def load(self) -> None:
        self.started = 0

    def sleep(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        seconds = float(json.loads(payload)["seconds"])
        ctx.log(f"sleeping {seconds}")
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if ctx.cancelled:
                return {"cancelled": True}
            time.sleep(min(left, 0.02))
        return {"slept": seconds, "pid": os.getpid(), "region": os.environ["SPILLOVER_REGION"]}

    async def nap(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        seconds = float(json.loads(payload)["seconds"])
        for i in range(10):
            ctx.progress((i + 1) / 10)
            await asyncio.sleep(seconds / 10)
        return {"napped": seconds}

    async def steps(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        """JSON ``{"n": int, "seconds": float}``: n steps, each reported as progress and a log
        line."""
        args = json.loads(payload)
        n = int(args["n"])
        for i in range(1, n + 1):
            await asyncio.sleep(float(args["seconds"]) / n)
            ctx.progress(i / n, f"step {i} of {n}")
            ctx.log(f"finished step {i}")
        return {"steps": n}

    def echo(self, payload: bytes, ctx: Any) -> bytes:
        return payload

    @stream
    async def pipe(self, body: Body, ctx: Any) -> AsyncIterator[bytes]:
        """The body back as a stream: a large echo that never holds the body."""
        async for chunk in body:
            yield chunk

    @stream
    async def digest(self, body: Body, ctx: Any) -> dict[str, Any]:
        """The body's size and sha256, read as a stream (never whole)."""
        h, size = hashlib.sha256(), 0
        async for chunk in body:
            h.update(chunk)
            size += len(chunk)
        return {"size": size, "declared": body.size, "sha256": h.hexdigest()}

    @stream
    async def refuse(self, body: Body, ctx: Any) -> bytes:
        """Fails after the first chunk, the rest of the body still on its way."""
        async for _ in body:
            break
        raise ValueError("refused after one chunk")

    def poison(self, payload: bytes, ctx: Any) -> bytes:
        """Kills the replica that runs it, every time."""
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    def boom(self, payload: bytes, ctx: Any) -> bytes:
        raise ValueError("bad input: " + payload.decode())

    def shout(self, payload: bytes, ctx: Any) -> bytes:
        """Fails with an exception message of ``{"size": n}`` bytes."""
        raise ValueError("x" * int(json.loads(payload)["size"]))

    def big(self, payload: bytes, ctx: Any) -> bytes:
        """``{"size": n}``: n bytes of a repeating pattern (:func:`pattern`), returned whole."""
        return pattern(int(json.loads(payload)["size"]))


def pattern(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]
