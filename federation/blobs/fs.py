"""The default blob store: files on the writing node's disk, served to the other nodes over HTTP
(``GET /internal/blobs/{name}``, signed and expiring; see ``serve``).

A blob is written to a temporary file, fsynced (the edge acknowledges the task only after this:
a body it accepted survives a crash of the process) and renamed into place, so a reader never
sees half a blob and an aborted upload leaves only a temporary file that is removed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

import aiohttp
from aiohttp import web

from federation.blobs import CHUNK, BadBody, BlobRef, BlobUnavailable, rechunk, signing

_NAME = re.compile(r"^[0-9A-Za-z-]{1,100}$")
ROUTE = "/internal/blobs/{name}"
STALE_UPLOAD = 3600.0  # seconds without a write after which a temporary file is a crash's leftover


class FsStore:
    def __init__(
        self,
        directory: Path,
        base_url: str,
        secret: bytes,
        http: aiohttp.ClientSession,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``base_url``: how other nodes reach this node's blob route (``http://host:port``)."""
        self.dir = directory
        # Only this node's process reads its blobs (others fetch them over the signed route):
        # bodies and results are tenants' data, and a replica runs as another user.
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.http = http
        self.clock = clock

    def path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"blob name {name!r} is not [0-9A-Za-z-]{{1,100}}")
        return self.dir / name

    async def write(self, name: str, chunks: AsyncIterable[bytes], size: int | None) -> BlobRef:
        final = self.path(name)
        tmp = self.dir / f".tmp-{name}-{secrets.token_hex(4)}"
        h, written = hashlib.sha256(), 0
        f = await asyncio.to_thread(_create, tmp)
        try:
            try:
                async for chunk in rechunk(chunks):
                    written += len(chunk)
                    if size is not None and written > size:
                        raise BadBody(f"body is longer than its Content-Length of {size}")
                    h.update(chunk)
                    await asyncio.to_thread(f.write, chunk)
                if size is not None and written != size:
                    raise BadBody(f"body ended after {written} of its {size} bytes")
                await asyncio.to_thread(_sync_close, f)
            finally:
                f.close()
            await asyncio.to_thread(os.replace, tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return BlobRef(url=f"{self.base_url}/internal/blobs/{name}", size=written,
                       sha256=h.hexdigest())  # fmt: skip

    async def read(self, ref: BlobRef) -> AsyncIterator[bytes]:
        """Any fs node's blob, over HTTP (this node's too: one path, and it is cheap)."""
        url = signing.sign(self.secret, ref.url, self.clock())
        try:
            async with self.http.get(url) as response:
                if response.status != 200:
                    text = (await response.text())[:200]
                    raise BlobUnavailable(f"blob {ref.name}: {response.status} {text}")
                async for chunk in response.content.iter_chunked(CHUNK):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as e:
            raise BlobUnavailable(f"blob {ref.name}: {type(e).__name__}: {e}") from None

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self.path(name).unlink, missing_ok=True)

    async def listing(self) -> list[tuple[str, float]]:
        def scan() -> list[tuple[str, float]]:
            out = []
            for entry in os.scandir(self.dir):
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    mtime = entry.stat().st_mtime
                    if _NAME.match(entry.name):
                        out.append((entry.name, mtime))
                    elif entry.name.startswith(".tmp-") and self.clock() - mtime > STALE_UPLOAD:
                        # Left by a process killed mid-upload; a live upload writes every
                        # few seconds, so it never looks this old.
                        os.unlink(entry.path)
            return out

        return await asyncio.to_thread(scan)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """``GET /internal/blobs/{name}?exp=&sig=``: the file, sent with sendfile."""
        q = request.query
        if not signing.valid(
            self.secret, request.path, q.get("exp", ""), q.get("sig", ""), self.clock()
        ):
            raise web.HTTPForbidden(
                text='{"error": {"code": "forbidden", "message": "blob URL signature is '
                'missing, wrong or expired"}}',
                content_type="application/json",
            )
        try:
            path = self.path(request.match_info["name"])
        except ValueError:
            path = None
        if path is None or not path.is_file():
            raise web.HTTPNotFound(
                text='{"error": {"code": "not_found", "message": "no such blob"}}',
                content_type="application/json",
            )
        return web.FileResponse(path, chunk_size=CHUNK)


def _create(path: Path) -> BinaryIO:
    """A new file only its owner may read (0600, whatever the umask)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _sync_close(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())
