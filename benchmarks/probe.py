"""The benchmark workload, the same on both sides: Spillover calls these methods in a replica;
``benchmarks/celery_app.py`` registers the same functions as Celery tasks.

Each returns when it started (dispatch latency and waits are measured from the handler's own
clock) and, when ``BENCH_RUNS`` names a file, appends its task key there on completion, so a
benchmark can count tasks run twice."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from spillover import Body, stream


def run(key: str, seconds: float) -> dict[str, float]:
    started = time.time()
    if seconds:
        time.sleep(seconds)
    if log := os.environ.get("BENCH_RUNS"):
        with open(log, "a") as f:  # one short write: atomic under O_APPEND
            f.write(f"{key}\n")
    return {"started": started}


class Probe:
    @stream
    async def echo(self, body: Body, ctx: Any) -> AsyncIterator[bytes]:
        """The body back, streamed (the payload benchmark)."""
        async for chunk in body:
            yield chunk

    def stamp(self, payload: bytes, ctx: Any) -> dict[str, float]:
        return {"started": time.time()}

    def work(self, payload: bytes, ctx: Any) -> dict[str, float]:
        """JSON ``{"key": str, "seconds": float}``."""
        args = json.loads(payload)
        return run(args.get("key", ""), float(args.get("seconds", 0)))
