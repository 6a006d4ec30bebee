"""What the client costs: one synchronous call (submit a no-op task and wait for its result)
through ``spillover.Client``, ``spillover.AsyncClient`` and a bare aiohttp request, against the
same edge process and agent, one call at a time, interleaved in blocks so that drift in the
machine's load falls on all three alike. Each round's medians make one repetition; the ratio to
bare aiohttp is the client's overhead (its Idempotency-Key, retry policy, typed errors, JSON).

    spillover bench client --out /tmp/client.md
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import aiohttp

import spillover
from benchmarks.report import SLOTS, Report
from benchmarks.sides import Spillover, edge_process

ROUNDS, BLOCKS, BLOCK = 3, 10, 20  # 200 calls of each kind per round, after one round of warm-up


async def client(tmp: Path, report: Report) -> None:
    per_call = report.row("client: one sync call through spillover.Client (no-op task)", "ms")
    sync_ratio = report.row("client overhead: spillover.Client ÷ bare aiohttp, per sync call",
                            "×", note="the same edge, one call at a time")  # fmt: skip
    async_ratio = report.row("client overhead: spillover.AsyncClient ÷ bare aiohttp", "×")
    sp = await Spillover(tmp / "sp", SLOTS).start()
    bare_ms = []
    try:
        async with (
            edge_process(sp, tmp / "edge") as base,
            aiohttp.ClientSession() as http,
            spillover.AsyncClient(base) as aclient,
        ):
            with spillover.Client(base) as sclient:
                for i in range(ROUNDS + 1):
                    bare, sync, aio = await _round(base, http, sclient, aclient)
                    if i == 0:
                        continue  # warm-up: connections, imports, the replica's first calls
                    bare_ms.append(bare)
                    per_call.add(sync)
                    sync_ratio.add(sync / bare)
                    async_ratio.add(aio / bare)
    finally:
        await sp.close()
    per_call.note = f"a bare aiohttp request to the same edge: {statistics.median(bare_ms):.2f} ms"


async def _round(
    base: str,
    http: aiohttp.ClientSession,
    sclient: spillover.Client,
    aclient: spillover.AsyncClient,
) -> tuple[float, float, float]:
    """Medians in ms: bare aiohttp, the blocking client, the asyncio client."""
    url = f"{base}/v1/apps/bench/stamp"
    bare: list[float] = []
    sync: list[float] = []
    aio: list[float] = []
    for _ in range(BLOCKS):
        for _ in range(BLOCK):
            t0 = time.perf_counter()
            async with http.post(url, data=b"{}") as r:
                await r.json()
            bare.append(time.perf_counter() - t0)
        sync += await asyncio.to_thread(_sync_block, sclient)  # its own thread, as a script's
        for _ in range(BLOCK):
            t0 = time.perf_counter()
            await aclient.run("bench", "stamp", {})
            aio.append(time.perf_counter() - t0)
    b, s, a = (statistics.median(x) * 1000 for x in (bare, sync, aio))
    return b, s, a


def _sync_block(sclient: spillover.Client) -> list[float]:
    out = []
    for _ in range(BLOCK):
        t0 = time.perf_counter()
        sclient.run("bench", "stamp", {})
        out.append(time.perf_counter() - t0)
    return out
