"""Bodies and results too large for etcd travel beside the queue, not in it.

Up to ``inline_limit`` (64 KiB by default) a body rides in the task's etcd keys. A larger one is
streamed into a blob store as it arrives and the task carries a :class:`BlobRef` (where, size,
sha256). Every reader checks the size and the sha256 as it streams, so a truncated or altered
blob fails the task instead of feeding a model garbage.

Stores: ``fs`` (the default: the writing node's disk, served to the others on
``GET /internal/blobs/{name}`` with signed, expiring URLs) and ``s3``. Names start with the
task's ULID, so a sweeper can tell whether the task still exists (``sweep.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from federation.errors import SpilloverError

CHUNK = 1 << 20  # 1 MiB: the unit of every blob write, read and gRPC message


class BlobRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str  # http(s)://<node>/internal/blobs/<name> (fs) or s3://<bucket>/<key>
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


class BadBody(SpilloverError):
    """The client's upload ended before its Content-Length, or ran past it."""

    status = 400
    code = "bad_request"


class BlobUnavailable(SpilloverError):
    """A blob could not be read whole: its node is unreachable, it is gone, or its bytes do not
    match the reference's size or sha256."""

    status = 502
    code = "blob_unavailable"


class BlobStore(Protocol):
    async def write(self, name: str, chunks: AsyncIterable[bytes], size: int | None) -> BlobRef:
        """Store the chunks under ``name``; with ``size``, exactly that many bytes or
        :class:`BadBody`. A write that fails leaves nothing behind."""

    def read(self, ref: BlobRef) -> AsyncIterator[bytes]:
        """The blob's bytes, in chunks, unchecked (:func:`checked` checks them)."""

    async def delete(self, name: str) -> None: ...

    async def listing(self) -> list[tuple[str, float]]:
        """(name, last modified as epoch seconds) of every blob this store wrote."""


async def checked(ref: BlobRef, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Pass ``chunks`` on; raise :class:`BlobUnavailable` at the end unless size and sha256
    match ``ref`` (a reader that acts on the bytes as they come must undo on that error)."""
    h, size = hashlib.sha256(), 0
    async for chunk in chunks:
        size += len(chunk)
        if size > ref.size:
            raise BlobUnavailable(f"blob {ref.name} is longer than its {ref.size} bytes")
        h.update(chunk)
        yield chunk
    if size != ref.size or h.hexdigest() != ref.sha256:
        raise BlobUnavailable(
            f"blob {ref.name}: {size} bytes with sha256 {h.hexdigest()[:12]}…, expected "
            f"{ref.size} bytes with sha256 {ref.sha256[:12]}…"
        )


async def rechunk(chunks: AsyncIterable[bytes], size: int = CHUNK) -> AsyncIterator[bytes]:
    """Coalesce small chunks (a socket hands out whatever arrived) into ``size``-byte ones."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def payload_name(ulid: str) -> str:
    return f"{ulid}-payload"


def result_name(ulid: str, attempt: int) -> str:
    """Per attempt: a task run twice (its first claimer presumed dead) writes two results, and
    the fenced-off one must not overwrite the one that counts."""
    return f"{ulid}-result-{attempt}"


def owner_ulid(name: str) -> str:
    """The ULID of the task a blob belongs to."""
    return name.split("-", 1)[0]
