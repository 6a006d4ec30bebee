"""The agent's blob store, for results over the inline limit. With ``fs`` the agent serves it
itself on ``blob_host:blob_port`` (``/internal/blobs/``, signed URLs), where edges fetch
results from; with ``s3`` there is nothing to serve."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

from aiohttp import web

from federation.blobs import BlobStore
from federation.blobs.fs import ROUTE, FsStore
from federation.blobs.stores import open_store
from federation.topology import Clusters
from regional.config import RegionConfig

_STORE = web.AppKey("store", FsStore)


async def _serve(request: web.Request) -> web.StreamResponse:
    return await request.app[_STORE].serve(request)


@contextlib.asynccontextmanager
async def serve_blobs(config: RegionConfig, clusters: Clusters) -> AsyncIterator[BlobStore]:
    if config.blobs.backend != "fs":
        async with open_store(config.blobs, clusters.control, clusters.root, "") as store:
            yield store
        return
    # Bound first: the store's URL names the port, and the app is complete before it starts.
    sock = socket.create_server((config.blob_host, config.blob_port))
    url = f"http://{config.blob_host}:{sock.getsockname()[1]}"
    async with open_store(config.blobs, clusters.control, clusters.root, url) as store:
        assert isinstance(store, FsStore)
        app = web.Application()
        app[_STORE] = store
        app.router.add_get(ROUTE, _serve)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            yield store
        finally:
            await runner.cleanup()
