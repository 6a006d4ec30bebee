"""Clients of the edges, as a careful user writes them: every submit carries an
``Idempotency-Key``; a 429 or 503 is retried after its ``Retry-After``, a broken connection at
once on the next edge, with the same key, so no retry can store a task twice. Every answer is
counted; a 5xx that is not a 503 and not a task's own outcome is a server error."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.chaos.harness import APP


@dataclass
class Submit:
    key: str
    sent_at: float
    sync: bool
    task_id: str | None = None
    acked_at: float | None = None
    status: int | None = None  # the acknowledging answer's
    result: dict[str, Any] | None = None  # a sync submit's result body
    # (when, status, error code) of each try; status 0: the connection broke
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)


@dataclass
class Http:
    """Every answer the edges gave, by status and error code."""

    answers: Counter[str] = field(default_factory=Counter)  # "202", "503 unavailable", ...
    server_errors: list[str] = field(default_factory=list)  # 5xx ≠ 503, not a task's outcome
    no_retry_after: int = 0  # 429 and 503 without Retry-After
    broken: int = 0  # connections that broke or timed out before an answer

    def count(self, status: int, code: str | None, headers: Any, what: str) -> None:
        self.answers[f"{status} {code}" if code else str(status)] += 1
        if status in (429, 503) and "Retry-After" not in headers:
            self.no_retry_after += 1
        task_outcome = "X-Spillover-Task-Id" in headers
        if status >= 500 and status != 503 and not task_outcome:
            self.server_errors.append(f"{what}: {status} {code}")


class Load:
    def __init__(self, http: aiohttp.ClientSession, edges: list[str]) -> None:
        self.session = http
        self.edges = edges
        self.http = Http()
        self.submits: list[Submit] = []
        self._next = itertools.count()

    @property
    def acknowledged(self) -> dict[str, Submit]:
        return {s.task_id: s for s in self.submits if s.task_id is not None}

    async def submit(
        self,
        function: str,
        args: dict[str, Any],
        *,
        sync: bool = False,
        headers: dict[str, str] | None = None,
        edge: int | None = None,
        patience: float = 60.0,
        key: str | None = None,
        on_broken: Callable[[Submit], Awaitable[None]] | None = None,
    ) -> Submit:
        """Submit until acknowledged or ``patience`` s pass. ``edge``: the first edge to try
        (default: round robin); after a broken connection the next one is tried."""
        s = Submit(key or uuid.uuid4().hex, time.time(), sync)
        self.submits.append(s)
        i = next(self._next) if edge is None else edge
        url = "/v1/apps/{}/{}{}".format(APP, function, "" if sync else "?async=true")
        h = {"Idempotency-Key": s.key, "Content-Type": "application/json", **(headers or {})}
        body = json.dumps(args).encode()
        deadline = time.monotonic() + patience
        while True:  # at least once; retried until acknowledged or out of patience
            base = self.edges[i % len(self.edges)]
            try:
                async with self.session.post(base + url, data=body, headers=h) as r:
                    raw = await r.read()
                    code = _error_code(r.status, raw)
                    s.answers.append((time.time(), r.status, code))
                    self.http.count(r.status, code, r.headers, f"POST {url}")
                    if task_id := r.headers.get("X-Spillover-Task-Id"):
                        s.task_id, s.acked_at, s.status = task_id, time.time(), r.status
                        if r.status == 200 and sync:
                            s.result = json.loads(raw)
                        return s
                    if r.status not in (429, 503) or time.monotonic() > deadline:
                        return s  # refused for good, or out of patience
                    await asyncio.sleep(min(float(r.headers.get("Retry-After", 1)), 2.0))
            except (aiohttp.ClientError, TimeoutError):
                self.http.broken += 1
                s.answers.append((time.time(), 0, None))
                if time.monotonic() > deadline:
                    return s
                if on_broken is not None:
                    await on_broken(s)
                i += 1
                await asyncio.sleep(0.1)


def _error_code(status: int, raw: bytes) -> str | None:
    if status < 400:
        return None
    try:
        return str(json.loads(raw)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "not-json"


async def steady(
    rate: float, seconds: float, one: Callable[[int], Awaitable[Any]], limit: int = 400
) -> None:
    """Start ``one(i)`` ``rate`` times a second for ``seconds`` s (open loop: a slow answer does
    not slow the load), at most ``limit`` at a time; then wait for all of them."""
    gate = asyncio.Semaphore(limit)

    async def bounded(i: int) -> None:
        try:
            await one(i)
        finally:
            gate.release()

    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.TaskGroup() as tg:
        for i in itertools.count():
            due = start + i / rate
            if due - start >= seconds:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            await gate.acquire()
            tg.create_task(bounded(i))
