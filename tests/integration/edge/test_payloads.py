"""Bodies and results over the inline limit, through a real edge, etcd, agent and replica: they
travel as blobs (edge disk → agent → replica over gRPC → agent disk → edge → client), limits
are enforced before anything is stored, and broken uploads or blobs leave nothing behind."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.keys import CONFIG
from federation import keys
from federation.blobs import BlobRef, payload_name
from federation.blobs.config import BlobConfig
from federation.task import new_ulid
from tests.integration.conftest import REGION, Harness, worker_spec
from tests.integration.edge.test_edge import Edge, serving, start_edge
from tests.waiting import until

pytestmark = pytest.mark.slow
MiB = 1 << 20
LIMIT = 32 * MiB


@pytest.fixture
async def edge(harness: Harness) -> AsyncIterator[Edge]:
    async with serving(harness, max_payload_bytes=LIMIT) as e:
        yield e


def blob_dir(edge: Edge) -> Path:
    return edge.runner.app[CONFIG].blobs.dir


async def raw(edge: Edge, head: str, body: bytes) -> bytes:
    """Send a request by hand (a declared length the body never reaches, say); the reply."""
    port = int(edge.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(65536), 30)
    writer.close()
    return reply


async def test_bodies_over_the_inline_limit_travel_as_blobs_both_ways(
    edge: Edge, harness: Harness
) -> None:
    data = os.urandom(3 * MiB + 7)
    status, body, headers = await edge.call("POST", "/v1/apps/worker/echo", data=data)
    assert status == 200 and body == data
    record = await harness.queue.get(headers["X-Spillover-Task-Id"])
    assert record.payload_ref is not None and record.payload_ref.size == len(data)
    assert record.result_ref is not None
    assert record.result_ref.sha256 == hashlib.sha256(data).hexdigest()
    stored = await harness.clusters.control.get(
        keys.payload(harness.clusters.root, REGION, record.id)
    )
    assert stored is None  # etcd held only the reference (the record's), and not past the end
    # The same result again, streamed from the agent's store; and a small body stays inline.
    status, again, _ = await edge.call("GET", f"/v1/tasks/{record.id}/result")
    assert again == data
    status, small, headers = await edge.call("POST", "/v1/apps/worker/echo", data=b"x" * 1000)
    assert small == b"x" * 1000
    record = await harness.queue.get(headers["X-Spillover-Task-Id"])
    assert record.payload_ref is None and record.result_ref is None


async def test_a_chunked_upload_streams_into_a_stream_handler(edge: Edge) -> None:
    data = os.urandom(5 * MiB)

    async def upload() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    status, body, _ = await edge.call("POST", "/v1/apps/worker/digest", data=upload())
    assert status == 200
    assert body == {"size": len(data), "declared": len(data),
                    "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip


async def test_a_stream_handler_that_fails_mid_body_fails_its_task_not_the_replica(
    edge: Edge, harness: Harness
) -> None:
    pool = harness.agents[0][0].runners["worker"].pool
    replicas = list(pool.replicas)
    status, body, _ = await edge.call("POST", "/v1/apps/worker/refuse", data=os.urandom(8 * MiB))
    assert status == 500 and "refused after one chunk" in body["error"]["message"]
    assert pool.replicas == replicas and all(not r.draining for r in replicas)
    status, body, _ = await edge.call("POST", "/v1/apps/worker/echo", data=b"next")
    assert (status, body) == (200, b"next")


async def test_bodies_over_the_apps_limit_are_413_before_anything_is_stored(edge: Edge) -> None:
    declared = f"POST /v1/apps/worker/echo HTTP/1.1\r\nHost: x\r\nContent-Length: {LIMIT + 1}\r\n"
    reply = await raw(edge, declared, b"only a little")
    assert reply.startswith(b"HTTP/1.1 413") and b"payload_too_large" in reply

    async def too_much() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // MiB + 2):
            yield b"\0" * MiB

    status, body, _ = await edge.call("POST", "/v1/apps/worker/echo", data=too_much())
    assert status == 413 and "limit" in body["error"]["message"]
    assert list(blob_dir(edge).iterdir()) == []


async def test_an_aborted_upload_leaves_no_blob_and_no_task(edge: Edge, harness: Harness) -> None:
    port = int(edge.url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /v1/apps/worker/echo HTTP/1.1\r\nHost: x\r\nContent-Length: {8 * MiB}\r\n\r\n"
    writer.write(head.encode() + os.urandom(3 * MiB))
    await writer.drain()
    await until(lambda: list(blob_dir(edge).iterdir()) != [], 10)  # the upload is being stored
    writer.close()  # the client goes away 3 MiB into 8
    await until(lambda: list(blob_dir(edge).iterdir()) == [], 10)
    _, writer = await asyncio.open_connection("127.0.0.1", port)  # and a small one, half sent
    writer.write(head.replace(str(8 * MiB), "1000").encode() + b"x" * 500)
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.5)
    prefix = keys.tasks(harness.clusters.root, REGION)
    stored, _ = await harness.clusters.control.range_all(prefix, keys.prefix_end(prefix))
    assert stored == []
    status, body, _ = await edge.call("POST", "/v1/apps/worker/echo", data=b"still fine")
    assert (status, body) == (200, b"still fine")


async def test_a_payload_blob_that_is_gone_fails_the_task_not_the_replica(
    edge: Edge, harness: Harness
) -> None:
    agent = harness.agents[0][0]
    replicas = list(agent.runners["worker"].pool.replicas)
    url = f"{edge.url}/internal/blobs/{payload_name(new_ulid())}"
    gone = BlobRef(url=url, size=10 * MiB, sha256="0" * 64)
    record = await harness.submit("worker", "echo", b"", payload_ref=gone)
    done = await harness.result(record)
    assert done.state == "failed" and done.error is not None
    assert done.error.code == "payload_unavailable" and "404" in done.error.message
    status, body, _ = await edge.call("GET", f"/v1/tasks/{record.id}/result")
    assert status == 502 and body["error"]["code"] == "payload_unavailable"
    assert agent.runners["worker"].pool.replicas == replicas
    status, body, _ = await edge.call("POST", "/v1/apps/worker/echo", data=json.dumps([1]))
    assert (status, body) == (200, b"[1]")


async def test_with_s3_bodies_and_results_go_through_the_bucket(
    harness: Harness, s3_blobs: BlobConfig
) -> None:
    await harness.apps.put(worker_spec(max_payload_bytes=LIMIT))
    agent = await harness.start_agent(blobs=s3_blobs)
    await harness.ready(agent, "worker", 1)
    edge = await start_edge(harness.etcd_config, blobs=s3_blobs)
    try:
        data = os.urandom(9 * MiB)  # two multipart parts
        status, body, headers = await edge.call("POST", "/v1/apps/worker/echo", data=data)
        assert (status, body) == (200, data)
        record = await harness.queue.get(headers["X-Spillover-Task-Id"])
        refs = (record.payload_ref, record.result_ref)
        assert all(r is not None and r.url.startswith(f"s3://{s3_blobs.bucket}/") for r in refs)
    finally:
        await edge.close()
