"""Request bodies in, result bodies out, without holding a large one in memory.

Up to the inline limit a body is read into memory and rides in etcd with the task. A larger one
(or one of unknown length that turns out larger) is streamed into the blob store as it arrives;
the app's ``max_payload_bytes`` is enforced before the first byte is stored when the length is
declared, and as the bytes come when it is not. A result in a blob streams back the same way,
checked against its size and sha256.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from federation.blobs import CHUNK, BadBody, BlobRef, BlobStore, checked, payload_name
from federation.errors import PayloadTooLarge

log = logging.getLogger(__name__)


async def receive(
    request: web.Request, limit: int, inline: int, store: BlobStore, ulid: str
) -> tuple[bytes, BlobRef | None]:
    """The body inline, or ``(b"", ref)`` once it is stored whole in a blob."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"body of {length} bytes is over the app's limit of {limit}")
    head = b""
    if length is None or length <= inline:
        head = await _read_up_to(request, min(inline, limit) + 1)
        if len(head) > limit:
            raise PayloadTooLarge(f"body is over the app's limit of {limit} bytes")
        if len(head) <= inline:
            if length is not None and len(head) != length:  # the client went away early
                raise BadBody(f"body ended after {len(head)} of its {length} bytes")
            return head, None
    return b"", await store.write(payload_name(ulid), _rest(request, head, limit), length)


async def _read_up_to(request: web.Request, n: int) -> bytes:
    chunks, size = [], 0
    while size < n and (chunk := await request.content.read(n - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _rest(request: web.Request, head: bytes, limit: int) -> AsyncIterator[bytes]:
    size = len(head)
    if head:
        yield head
    async for chunk in request.content.iter_chunked(CHUNK):
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
