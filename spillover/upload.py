"""A request body as the client sends it: bytes as they are, a file streamed from disk in
chunks (a 1 GiB upload holds one chunk at a time), anything else as JSON.

A retry sends the body again, so a body must be replayable to be retried: bytes, JSON and paths
always are; a file object is when it can seek (it is rewound to where it stood); a pipe or
socket is sent once and never retried."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20
JSON = "application/json"
OCTETS = "application/octet-stream"


class Upload:
    """``payload``: bytes-like, an ``os.PathLike`` (a path: ``pathlib.Path``; a ``str`` is
    JSON like any other value), a binary file object, or a JSON-serialisable value."""

    def __init__(self, payload: Any, content_type: str | None = None) -> None:
        self.data: bytes | None = None
        self.path: Path | None = None
        self.file: BinaryIO | None = None
        self.start: int | None = None  # a seekable file's offset, to rewind to on a retry
        self.size: int | None = None
        if isinstance(payload, bytes | bytearray | memoryview):
            self.data = bytes(payload)
        elif isinstance(payload, os.PathLike):
            self.path = Path(payload)
            self.size = self.path.stat().st_size
        elif hasattr(payload, "read"):
            self.file = payload
            self.start, self.size = _extent(payload)
        else:
            self.data = json.dumps(payload).encode()
            content_type = content_type or JSON
        if self.data is not None:
            self.size = len(self.data)
        self.content_type = content_type or OCTETS
        self._sent = False

    @property
    def replayable(self) -> bool:
        return self.file is None or self.start is not None

    def headers(self) -> dict[str, str]:
        h = {"Content-Type": self.content_type}
        if self.size is not None:  # the edge checks the app's limit before storing a byte
            h["Content-Length"] = str(self.size)
        return h

    def content(self) -> bytes | Iterator[bytes]:
        """The body for a blocking client."""
        if self.data is not None:
            return self.data
        return self._chunks()

    def acontent(self) -> bytes | AsyncIterator[bytes]:
        """The body for an asyncio client: file reads run in a worker thread."""
        if self.data is not None:
            return self.data
        return self._achunks()

    def _opened(self) -> BinaryIO:
        if self._sent and not self.replayable:
            raise RuntimeError("a body from a file object that cannot seek is sent only once")
        self._sent = True
        if self.path is not None:
            return self.path.open("rb")
        assert self.file is not None
        if self.start is not None:
            self.file.seek(self.start)
        return self.file

    def _chunks(self) -> Iterator[bytes]:
        f = self._opened()
        try:
            while chunk := f.read(CHUNK):
                yield chunk
        finally:
            if self.path is not None:
                f.close()

    async def _achunks(self) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(self._opened)
        try:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                yield chunk
        finally:
            if self.path is not None:
                await asyncio.to_thread(f.close)


def _extent(f: BinaryIO) -> tuple[int | None, int | None]:
    """(where the file stands, bytes from there to its end), or (None, None) if it cannot seek."""
    try:
        start = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(start)
    except (OSError, AttributeError, ValueError):
        return None, None
    return start, end - start
