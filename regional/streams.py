"""Large bodies for handlers, as streams: a handler marked ``@stream`` gets its payload as a
:class:`Body` (chunks as they arrive) instead of bytes, and any handler may return an async
iterator of bytes to stream its result back, so a 1 GiB echo never holds 1 GiB::

    class Model:
        @stream
        async def echo(self, body: Body, ctx) -> AsyncIterator[bytes]:
            async for chunk in body:
                yield chunk
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__spillover_stream__"


def stream(fn: F) -> F:
    """Mark an ``async def`` (or async generator) handler to receive a :class:`Body`."""
    setattr(fn, _MARK, True)
    return fn


def wants_stream(fn: Callable[..., Any]) -> bool:
    return bool(getattr(fn, _MARK, False))


class Body:
    """A request body arriving in chunks. Iterate it once, or ``await read()`` it whole."""

    def __init__(self, chunks: AsyncIterator[bytes], size: int) -> None:
        self._chunks = chunks
        self.size = size  # bytes, as the client declared and the edge checked

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def read(self) -> bytes:
        return b"".join([c async for c in self._chunks])

    @classmethod
    def of(cls, data: bytes) -> Body:
        async def one() -> AsyncIterator[bytes]:
            if data:
                yield data

        return cls(one(), len(data))
