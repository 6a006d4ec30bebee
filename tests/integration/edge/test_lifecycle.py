"""The edge's transport and lifecycle: HTTPS with the intermediate profile, plain HTTP only on
loopback, and a shutdown that answers in-flight synchronous waits."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from pydantic import ValidationError

from edge.config import EdgeConfig
from tests.integration.conftest import REGION, Harness, worker_spec
from tests.integration.edge.test_edge import REGIONS, start_edge

pytestmark = pytest.mark.slow


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    return authority, chain, key


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
async def test_https_speaks_tls_12_and_13_and_refuses_older(
    harness: Harness, ca: tuple[trustme.CA, Path, Path]
) -> None:
    authority, chain, key = ca
    edge = await start_edge(harness.etcd_config, tls_cert=chain, tls_key=key)
    try:
        assert edge.url.startswith("https://")
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            client = ssl.create_default_context()
            authority.configure_trust(client)
            client.minimum_version = client.maximum_version = version
            async with edge.http.get(edge.url + "/healthz", ssl=client) as r:
                assert r.status == 200
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        authority.configure_trust(old)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")  # this client would speak TLS 1.1; the edge won't
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(aiohttp.ClientError):
            async with edge.http.get(edge.url + "/healthz", ssl=old):
                pass
    finally:
        await edge.close()


def test_plain_http_is_refused_off_loopback_and_tls_needs_cert_and_key(tmp_path: Path) -> None:
    base: dict[str, Any] = {"region": REGION, "regions": REGIONS}
    with pytest.raises(ValidationError, match="plain HTTP is for loopback only"):
        EdgeConfig(**base, host="0.0.0.0")
    with pytest.raises(ValidationError, match="give both or neither"):
        EdgeConfig(**base, host="0.0.0.0", tls_cert=tmp_path / "c.pem")
    assert EdgeConfig(**base, host="::1").url.startswith("http://")


async def test_shutdown_finishes_short_sync_waits_and_answers_long_ones_202(
    harness: Harness,
) -> None:
    await harness.apps.put(worker_spec())
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    edge = await start_edge(harness.etcd_config, drain_grace=1.0)
    try:

        async def sync(seconds: float) -> tuple[int, Any, Any]:
            return await edge.call("POST", "/v1/apps/worker/sleep", json={"seconds": seconds})

        short, long = asyncio.create_task(sync(0.5)), asyncio.create_task(sync(20))
        await asyncio.sleep(0.3)  # both are waiting
        stopping = asyncio.create_task(edge.runner.cleanup())  # what run_app does on SIGTERM
        (s1, body1, _), (s2, body2, h2) = await asyncio.gather(short, long)
        await stopping
        assert (s1, body1["slept"]) == (200, 0.5)
        assert s2 == 202 and body2["state"] == "running"
        assert h2["Location"] == f"/v1/tasks/{body2['id']}"
        # The task was never at risk: it carries on and finishes.
        done = await harness.waiters.wait(body2["id"], timeout=0.1)
        assert not done.state.terminal
        await harness.queue.cancel(body2["id"])
    finally:
        await edge.http.close()
        edge.blobs.cleanup()
