"""The blob stores for real: fs served over HTTP with signed URLs, S3 against moto's server
mode (the S3 HTTP API), and the sweeper against etcd."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from federation.blobs import BadBody, BlobStore, BlobUnavailable, checked, payload_name, signing
from federation.blobs.config import BlobConfig
from federation.blobs.fs import ROUTE, FsStore
from federation.blobs.stores import open_store
from federation.blobs.sweep import sweep
from federation.queue import Queue
from federation.task import new_ulid
from federation.topology import Clusters
from spillover.local.etcd import LocalEtcd, free_port
from tests.conftest import make_config
from tests.factories import task

MiB = 1 << 20


async def chunks(data: bytes, size: int = 300_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def broken(data: bytes) -> AsyncIterator[bytes]:
    """An upload whose client went away half-way."""
    yield data[: len(data) // 2]
    raise ConnectionResetError("client went away")


async def read_all(store: BlobStore, ref: object) -> bytes:
    return b"".join([c async for c in checked(ref, store.read(ref))])  # type: ignore[arg-type]


@pytest.fixture
async def fs(tmp_path: Path, etcd1: LocalEtcd, root: str) -> AsyncIterator[FsStore]:
    """An fs store served by a real aiohttp server, as an edge or agent serves it."""
    port = free_port()
    clusters = Clusters(make_config(etcd1, root))
    config = BlobConfig(dir=tmp_path / "blobs")
    async with open_store(config, clusters.control, root, f"http://127.0.0.1:{port}") as store:
        assert isinstance(store, FsStore)
        app = web.Application()
        app.router.add_get(ROUTE, store.serve)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield store
        await runner.cleanup()
    await clusters.close()


@pytest.fixture
async def s3(s3_blobs: BlobConfig) -> AsyncIterator[BlobStore]:
    async with open_store(s3_blobs, None, "/", "") as store:  # type: ignore[arg-type]
        yield store


@pytest.fixture(params=["fs", "s3"])
def store(request: pytest.FixtureRequest) -> BlobStore:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


async def test_a_blob_reads_back_whole_with_its_size_and_sha256(store: BlobStore) -> None:
    data = os.urandom(17 * MiB + 5)  # over two S3 parts, and not a whole number of chunks
    ref = await store.write(payload_name(new_ulid()), chunks(data), len(data))
    assert (ref.size, ref.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert await read_all(store, ref) == data
    small = await store.write(payload_name(new_ulid()), chunks(b"tiny"), None)
    assert await read_all(store, small) == b"tiny"
    assert {ref.name, small.name} <= {name for name, _ in await store.listing()}
    await store.delete(ref.name)
    assert ref.name not in {name for name, _ in await store.listing()}


async def test_fs_blobs_are_readable_by_their_owner_only(fs: FsStore) -> None:
    """Tenants' bodies and results: no other user of the node (a replica's) may read them."""
    old = os.umask(0)  # even under a permissive umask
    try:
        ref = await fs.write(payload_name(new_ulid()), chunks(b"secret"), None)
    finally:
        os.umask(old)
    assert fs.path(ref.name).stat().st_mode & 0o777 == 0o600
    assert fs.dir.stat().st_mode & 0o777 == 0o700


async def test_an_upload_that_breaks_or_misses_its_length_leaves_nothing(store: BlobStore) -> None:
    data = os.urandom(10 * MiB)
    with pytest.raises(ConnectionResetError):
        await store.write(payload_name(new_ulid()), broken(data), len(data))
    with pytest.raises(BadBody, match="ended after"):
        await store.write(payload_name(new_ulid()), chunks(data[:-1]), len(data))
    with pytest.raises(BadBody, match="longer"):
        await store.write(payload_name(new_ulid()), chunks(data + b"x"), len(data))
    assert await store.listing() == []
    if isinstance(store, FsStore):
        assert list(store.dir.iterdir()) == []  # no temporary file either
    else:
        uploads = await store.client.list_multipart_uploads(Bucket=store.bucket)  # type: ignore[attr-defined]
        assert uploads.get("Uploads", []) == []


async def test_fs_urls_need_a_valid_signature_and_a_vanished_blob_is_unavailable(
    fs: FsStore,
) -> None:
    ref = await fs.write(payload_name(new_ulid()), chunks(b"secret body"), None)
    now = time.time()
    async with aiohttp.ClientSession() as http:
        for url in (ref.url, signing.sign(b"not the federation's", ref.url, now),
                    signing.sign(fs.secret, ref.url, now - 3600)):  # fmt: skip
            async with http.get(url) as r:
                assert r.status == 403, url
                assert (await r.json())["error"]["code"] == "forbidden"
        async with http.get(signing.sign(fs.secret, ref.url, now)) as r:
            assert await r.read() == b"secret body"
    (fs.dir / ref.name).write_bytes(b"altered bod")  # same size, other bytes
    with pytest.raises(BlobUnavailable, match="sha256"):
        await read_all(fs, ref)
    await fs.delete(ref.name)
    with pytest.raises(BlobUnavailable, match="404"):
        await read_all(fs, ref)


async def test_the_sweeper_deletes_blobs_whose_task_is_gone_and_keeps_the_rest(
    fs: FsStore, etcd1: LocalEtcd, root: str
) -> None:
    clusters = Clusters(make_config(etcd1, root))
    queue = Queue(clusters)
    record = task("us-east-1")
    await queue.enqueue(record, b"")
    ulid = record.id.partition(".")[0]
    kept = await fs.write(payload_name(ulid), chunks(b"its body"), None)
    orphan = await fs.write(payload_name(new_ulid()), chunks(b"no task"), None)
    young = await fs.write(payload_name(new_ulid()), chunks(b"being enqueued"), None)
    crashed = fs.dir / ".tmp-01J00000000000000000000000-payload-1234"  # killed mid-upload
    crashed.write_bytes(b"half")
    os.utime(crashed, (0, 0))
    os.utime(fs.dir / orphan.name, (0, 0))
    os.utime(fs.dir / kept.name, (0, 0))
    now = (fs.dir / young.name).stat().st_mtime
    assert await sweep(fs, clusters, ["us-east-1", "eu-west-1"], now, grace=60) == 1
    assert {n for n, _ in await fs.listing()} == {kept.name, young.name}
    assert not crashed.exists()
    await clusters.close()
