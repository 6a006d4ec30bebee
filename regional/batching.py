"""Dynamic batching for handlers: concurrent calls become one call over a list, so a torch model
does one forward pass for many requests instead of one each.

    class Model:
        @batch(max_batch_size=16, max_batch_wait_ms=2)
        def predict(self, payloads: list[bytes], ctxs: list[Context]) -> list[dict]: ...

The decorated method is called by the replica once per task, like any other; the batcher waits
up to ``max_batch_wait_ms`` after the first call for more (or until ``max_batch_size``), then calls
the list method once (sync methods in a worker thread) and hands each caller its own result.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

ListFn = Callable[[Any, list[bytes], list[Any]], Any]


def batch(max_batch_size: int = 8, max_batch_wait_ms: float = 5.0) -> Callable[[ListFn], Any]:
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size = {max_batch_size}, must be ≥ 1")
    if max_batch_wait_ms < 0:
        raise ValueError(f"max_batch_wait_ms = {max_batch_wait_ms}, must be ≥ 0")

    def decorate(fn: ListFn) -> Any:
        attr = f"_batcher_{fn.__name__}"

        @functools.wraps(fn)
        async def one(self: Any, payload: bytes, ctx: Any) -> Any:
            batcher = self.__dict__.get(attr)
            if batcher is None:
                batcher = Batcher(fn, self, max_batch_size, max_batch_wait_ms)
                self.__dict__[attr] = batcher
            return await batcher.submit(payload, ctx)

        return one

    return decorate


class Batcher:
    def __init__(self, fn: ListFn, owner: Any, max_size: int, max_wait_ms: float) -> None:
        self.fn = fn
        self.owner = owner
        self.is_async = inspect.iscoroutinefunction(fn)
        self.max_size = max_size
        self.max_wait = max_wait_ms / 1000
        self.pending: asyncio.Queue[tuple[bytes, Any, asyncio.Future[Any]]] = asyncio.Queue()
        self._loop_task: asyncio.Task[None] | None = None

    async def submit(self, payload: bytes, ctx: Any) -> Any:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="batcher")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.pending.put((payload, ctx, done))
        return await done

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.pending.get()]
            deadline = loop.time() + self.max_wait
            while len(items) < self.max_size:
                try:
                    async with asyncio.timeout_at(deadline):
                        items.append(await self.pending.get())
                except TimeoutError:
                    break
            live = [it for it in items if not it[2].done()]  # a cancelled caller left
            if live:
                await self._call(live)

    async def _call(self, items: list[tuple[bytes, Any, asyncio.Future[Any]]]) -> None:
        payloads, ctxs = [it[0] for it in items], [it[1] for it in items]
        try:
            if self.is_async:
                results = await self.fn(self.owner, payloads, ctxs)
            else:
                results = await asyncio.to_thread(self.fn, self.owner, payloads, ctxs)
            if len(results) != len(items):
                raise ValueError(f"a batch of {len(items)} returned {len(results)} results")
        except Exception as e:  # every caller of this batch fails with the handler's error
            for _, _, done in items:
                if not done.done():
                    done.set_exception(e)
            return
        for (_, _, done), result in zip(items, results, strict=True):
            if not done.done():
                done.set_result(result)
