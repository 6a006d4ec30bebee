"""Request bodies in, result bodies out, without holding a large one in memory.

Up to the inline limit a body is read into memory and rides in etcd with the task. A larger one
(or one of unknown length that turns out larger) is streamed into the blob store as it arrives;
the app's ``max_payload_bytes`` is enforced before the first byte is stored when the length is
declared, and as the bytes come when it is not. A result in a blob streams back the same way,
checked against its size and sha256.

A body must keep coming: it is read under a deadline of ``body_timeout`` seconds from the first
read plus one second per ``body_min_rate`` bytes received, so a client that trickles a byte now
and then gets 408 after ``body_timeout`` s and frees its slot, while a large upload on a slow but
honest link gets the time its size needs (1 GiB at the default 16 KiB/s minimum: ~18 h).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from edge.errors import BodyTimeout
from federation.blobs import CHUNK, BadBody, BlobRef, BlobStore, checked, payload_name
from federation.errors import PayloadTooLarge

log = logging.getLogger(__name__)


class Body:
    """A request's body, read under a deadline that grows with each byte received."""

    def __init__(self, request: web.Request, timeout: float, min_rate: float) -> None:
        self.content = request.content
        self.timeout = timeout
        self.min_rate = min_rate
        self.started = asyncio.get_running_loop().time()
        self.received = 0

    @property
    def deadline(self) -> float:
        return self.started + self.timeout + self.received / self.min_rate

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (as soon as some are there); empty at the end of the body."""
        try:
            async with asyncio.timeout_at(self.deadline):
                chunk = await self.content.read(n)
        except TimeoutError:
            raise BodyTimeout(
                f"the body stopped coming: {self.received} bytes in "
                f"{asyncio.get_running_loop().time() - self.started:.0f} s (it must start "
                f"within {self.timeout:g} s and keep up {self.min_rate:g} bytes/s)"
            ) from None
        self.received += len(chunk)
        return chunk


async def receive(
    request: web.Request, body: Body, limit: int, inline: int, store: BlobStore, ulid: str
) -> tuple[bytes, BlobRef | None]:
    """The body inline, or ``(b"", ref)`` once it is stored whole in a blob."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"body of {length} bytes is over the app's limit of {limit}")
    head = b""
    if length is None or length <= inline:
        head = await _read_up_to(body, min(inline, limit) + 1)
        if len(head) > limit:
            raise PayloadTooLarge(f"body is over the app's limit of {limit} bytes")
        if len(head) <= inline:
            if length is not None and len(head) != length:  # the client went away early
                raise BadBody(f"body ended after {len(head)} of its {length} bytes")
            return head, None
    return b"", await store.write(payload_name(ulid), _rest(body, head, limit), length)


async def read_whole(body: Body, limit: int) -> bytes:
    """A small body (an app spec) in memory; 413 past ``limit``."""
    data = await _read_up_to(body, limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
    return data


async def _read_up_to(body: Body, n: int) -> bytes:
    chunks, size = [], 0
    while size < n and (chunk := await body.read(n - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _rest(body: Body, head: bytes, limit: int) -> AsyncIterator[bytes]:
    size = len(head)
    if head:
        yield head
    while chunk := await body.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the app's limit of {limit} bytes")
        yield chunk


async def send(
    request: web.Request, store: BlobStore, ref: BlobRef, headers: dict[str, str]
) -> web.StreamResponse:
    """Stream a result blob. Its first chunk is fetched before the status line goes out, so an
    unreachable blob is a 502 JSON error; a failure later cuts the connection short (the client
    sees fewer bytes than Content-Length, never a wrong body presented as whole)."""
    chunks = checked(ref, store.read(ref))
    first = await anext(chunks, b"")
    response = web.StreamResponse(headers=headers)
    response.content_length = ref.size
    await response.prepare(request)
    await response.write(first)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except Exception as e:
        log.warning("result blob %s broke off mid-stream: %s", ref.name, e)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
