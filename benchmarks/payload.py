"""Large bodies: echo round trips of 1 MiB, 64 MiB and 1 GiB (upload, the handler streams the
body back, download), in MiB of body per second of wall time, client to client.

Spillover: through an edge process (the body to the edge's blob store, streamed to the replica by
the agent over gRPC, the result to the agent's store, streamed back by the edge), the client
streaming both ways. Celery + Redis: the body base64-encoded in the JSON message (how bytes
travel with Celery's default serializer) and the result the same way; 1 GiB is over Redis's
512 MB limit for one value, so Celery has no figure there.

    spillover bench payload --out /tmp/payload.md
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from benchmarks.report import SLOTS, Report
from benchmarks.sides import Celery, Spillover, edge_process

MiB = 1 << 20
SIZES = {"1 MiB": (MiB, 10), "64 MiB": (64 * MiB, 3), "1 GiB": (1024 * MiB, 2)}  # size, reps
REDIS_LIMIT = 512 * MiB  # proto-max-bulk-len: the largest value Redis stores


async def payload(tmp: Path, report: Report) -> None:
    rows = {label: report.row(f"echo round trip of a {label} body", "MiB/s", better="higher")
            for label in SIZES}  # fmt: skip
    sp = await Spillover(tmp / "sp", SLOTS).start()
    try:
        async with edge_process(sp, tmp / "edge") as base:
            for label, (size, reps) in SIZES.items():
                for _ in range(reps):
                    rows[label].add(s=await _spillover_echo(base, size))
    finally:
        await sp.close()
    ce = Celery(tmp / "ce", SLOTS).start()
    try:
        for label, (size, reps) in SIZES.items():
            if size * 4 / 3 > REDIS_LIMIT:  # base64 grows it by a third
                rows[label].note = "Celery + Redis: refused (over Redis's 512 MB value limit)"
                continue
            for _ in range(reps):
                rows[label].add(c=await asyncio.to_thread(_celery_echo, ce, size))
    finally:
        ce.close()


def _body(size: int, sent: hashlib._Hash) -> AsyncIterator[bytes]:
    block = os.urandom(MiB)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, size, MiB):
            chunk = i.to_bytes(8, "big") + block[8 : min(MiB, size - i)]
            sent.update(chunk)
            yield chunk

    return chunks()


async def _spillover_echo(base: str, size: int) -> float:
    sent, got, received = hashlib.sha256(), hashlib.sha256(), 0
    headers = {"Content-Length": str(size), "X-Spillover-Timeout": "300"}
    t0 = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=900)
    url = f"{base}/v1/apps/bench/echo"
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(url, data=_body(size, sent), headers=headers) as r,
    ):
        if r.status != 200:
            raise RuntimeError(f"echo of {size} bytes: {r.status} {await r.text()}")
        async for chunk in r.content.iter_chunked(MiB):
            got.update(chunk)
            received += len(chunk)
    seconds = time.perf_counter() - t0
    if received != size or got.digest() != sent.digest():
        raise RuntimeError(f"echo of {size} bytes came back as {received} other bytes")
    return size / MiB / seconds


def _celery_echo(ce: Celery, size: int) -> float:
    data = os.urandom(size)
    t0 = time.perf_counter()
    encoded = base64.b64encode(data).decode()
    back = base64.b64decode(ce.app.send_task("echo", args=(encoded,)).get(timeout=600))
    seconds = time.perf_counter() - t0
    if back != data:
        raise RuntimeError(f"Celery echo of {size} bytes came back different")
    return size / MiB / seconds
