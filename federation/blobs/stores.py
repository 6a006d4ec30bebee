"""Opening the blob store a ``[blobs]`` config names, with what it needs (an HTTP client and the
URL-signing secret for fs; an S3 client for s3), closed when the context exits."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import aiohttp
from aiobotocore.session import get_session

from federation import keys
from federation.blobs import BlobStore
from federation.blobs.config import BlobConfig
from federation.blobs.fs import FsStore
from federation.blobs.s3 import S3Store
from federation.etcd import Etcd, get_or_create


@contextlib.asynccontextmanager
async def open_store(
    config: BlobConfig, control: Etcd, root: str, own_url: str
) -> AsyncIterator[BlobStore]:
    """``own_url``: where this node serves ``/internal/blobs/`` unless ``config.url`` says."""
    if config.backend == "s3":
        assert config.bucket is not None  # the config's validator
        session = get_session()
        async with session.create_client(
            "s3", region_name=config.s3_region, endpoint_url=config.endpoint_url
        ) as client:
            yield S3Store(client, config.bucket, config.prefix)
        return
    secret = await get_or_create(control, keys.blob_secret(root), secrets.token_hex(32).encode())
    # No total timeout: a 1 GiB blob takes a while. A stalled peer is caught by the read timeout.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        yield FsStore(config.dir, config.url or own_url, secret, http)
