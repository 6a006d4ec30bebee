"""A result arriving from a replica in pieces: kept in memory up to the inline limit, and past
it streamed into the region's blob store (the edge streams it to the client from there); never
more than the app's ``max_payload_bytes``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from federation.aio import cancel_and_wait
from federation.blobs import BlobRef, BlobStore


class ResultTooLarge(Exception):
    """The result passed the app's max_payload_bytes: the task fails, the replica is fine."""


class ResultSink:
    def __init__(self, store: BlobStore, inline_limit: int, name: str, limit: int) -> None:
        self.store = store
        self.inline_limit = inline_limit
        self.name = name
        self.limit = limit  # bytes in all
        self.size = 0
        self._buf = bytearray()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=2)
        self._writer: asyncio.Task[BlobRef] | None = None

    async def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise ResultTooLarge(f"the result is over max_payload_bytes = {self.limit}")
        if self._writer is None:
            if len(self._buf) + len(data) <= self.inline_limit:
                self._buf += data
                return
            data, self._buf = bytes(self._buf) + data, bytearray()
            self._writer = asyncio.create_task(
                self.store.write(self.name, self._drain(), None), name=f"result-{self.name}"
            )
        await self._put(data)

    async def _put(self, item: bytes | None) -> None:
        """Queue for the writer; if the writer failed (disk full, S3 down), raise its error
        instead of waiting forever on a queue nobody drains."""
        assert self._writer is not None
        put = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait([put, self._writer], return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            await cancel_and_wait([put])
            await self._writer  # raises the writer's error
            raise RuntimeError("result writer finished before the result did")

    async def _drain(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    async def finish(self) -> tuple[bytes, BlobRef | None]:
        """``(body, None)`` when it stayed small, else ``(b"", ref)`` once the blob is whole."""
        if self._writer is None:
            return bytes(self._buf), None
        await self._put(None)
        return b"", await self._writer

    async def abort(self) -> None:
        """The run failed: drop what was written (a cancelled store write leaves nothing)."""
        if self._writer is not None:
            await cancel_and_wait([self._writer])
