"""The edge over a real socket, with real etcd, a real agent and real replica subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edge.app import create_app
from edge.config import EdgeConfig, RegionPoint
from edge.tls import server_context
from spillover.local.etcd import LocalEtcd, free_port
from tests.integration.conftest import REGION, Harness, worker_spec
from tests.waiting import until

pytestmark = pytest.mark.slow
REGIONS = (
    RegionPoint(name=REGION, lat=39.0, lon=-77.5),
    RegionPoint(name="eu-west-1", lat=53.3, lon=-6.3),
)


class Edge:
    def __init__(
        self, runner: web.AppRunner, url: str, blobs: tempfile.TemporaryDirectory[str]
    ) -> None:
        self.runner, self.url, self.blobs = runner, url, blobs
        self.http = aiohttp.ClientSession()

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, Any]:
        async with self.http.request(method, self.url + path, **kw) as r:
            body = await r.json() if r.content_type == "application/json" else await r.read()
            return r.status, body, r.headers

    async def close(self) -> None:
        await self.http.close()
        await self.runner.cleanup()
        self.blobs.cleanup()


async def start_edge(harness_config: Any, **settings: Any) -> Edge:
    blobs = tempfile.TemporaryDirectory(prefix="edge-blobs-")
    config = EdgeConfig(
        region=REGION, etcd=harness_config, port=free_port(),
        **{"auth": False, "blobs": {"dir": blobs.name}, "regions": REGIONS, **settings},
    )  # fmt: skip
    runner = web.AppRunner(create_app(config), keepalive_timeout=config.idle_timeout)
    await runner.setup()
    tls = server_context(config)
    site = web.TCPSite(runner, "127.0.0.1", config.port, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "http" if tls is None else "https"
    edge = Edge(runner, f"{scheme}://127.0.0.1:{port}", blobs)

    async def ready() -> bool:  # as a load balancer would wait (with auth: the keys are read)
        return (await edge.call("GET", "/readyz", ssl=False))[0] == 200

    await until(ready)
    return edge


@contextlib.asynccontextmanager
async def serving(harness: Harness, **scaling: Any) -> AsyncIterator[Edge]:
    """An edge in front of an agent serving the worker app with these scaling settings."""
    await harness.apps.put(worker_spec(**scaling))
    agent = await harness.start_agent()
    await harness.ready(agent, "worker", 1)
    e = await start_edge(harness.etcd_config)
    try:
        yield e
    finally:
        await e.close()


@pytest.fixture
async def edge(harness: Harness) -> AsyncIterator[Edge]:
    async with serving(harness, max_payload_bytes=1000) as e:
        yield e


async def test_sync_submit_answers_with_the_handlers_result_and_headers(edge: Edge) -> None:
    status, body, headers = await edge.call("POST", "/v1/apps/worker/echo", data=b"hi there")
    assert (status, body) == (200, b"hi there")
    assert headers["X-Spillover-Region"] == REGION == headers["X-Spillover-Home-Region"]
    assert (
        headers["Server-Timing"].startswith("queue;dur=") and "run;dur=" in headers["Server-Timing"]
    )
    task_id = headers["X-Spillover-Task-Id"]
    status, info, _ = await edge.call("GET", f"/v1/tasks/{task_id}")
    assert status == 200 and info["state"] == "succeeded" and info["attempts"] == 1


@pytest.mark.parametrize(
    "how", [{"params": {"async": "true"}}, {"headers": {"Prefer": "respond-async"}}]
)
async def test_async_submit_is_202_with_location_then_result_waits(
    edge: Edge, how: dict[str, Any]
) -> None:
    status, info, headers = await edge.call(
        "POST", "/v1/apps/worker/sleep", json={"seconds": 0.3}, **how
    )
    assert status == 202 and info["state"] == "queued"
    assert headers["Location"] == f"/v1/tasks/{info['id']}"
    status, body, _ = await edge.call("GET", headers["Location"] + "/result", params={"wait": "10"})
    assert status == 200 and body["slept"] == 0.3


async def test_result_without_waiting_is_202_with_retry_after(edge: Edge) -> None:
    _, info, _ = await edge.call("POST", "/v1/apps/worker/sleep?async=1", json={"seconds": 5})
    status, body, headers = await edge.call("GET", f"/v1/tasks/{info['id']}/result")
    assert status == 202 and headers["Retry-After"] == "1" and body["id"] == info["id"]
    status, cancelled, _ = await edge.call("DELETE", f"/v1/tasks/{info['id']}")
    assert status == 200 and cancelled["state"] == "cancelled"
    status, err, _ = await edge.call("DELETE", f"/v1/tasks/{info['id']}")
    assert status == 409 and err["error"]["code"] == "conflict"
    status, err, _ = await edge.call("GET", f"/v1/tasks/{info['id']}/result")
    assert status == 409 and err["error"]["code"] == "cancelled"


@pytest.mark.parametrize(
    ("path", "kw", "code", "words"),
    [
        ("/v1/apps/nope/echo", {}, 404, "not deployed"),
        (
            "/v1/apps/worker/echo",
            {"headers": {"X-Spillover-Priority": "10"}},
            400,
            "X-Spillover-Priority",
        ),
        ("/v1/apps/worker/echo", {"headers": {"X-Spillover-Region": "mars-1"}}, 400, "mars-1"),
        (
            "/v1/apps/worker/echo",
            {"headers": {"X-Spillover-Timeout": "soon"}},
            400,
            "X-Spillover-Timeout",
        ),
        ("/v1/apps/worker/echo", {"data": b"x" * 5000}, 413, "limit of 1000"),
        ("/v1/apps/worker/9lives", {}, 400, "not a valid name"),
    ],
)
async def test_bad_requests_get_json_errors_naming_what_was_wrong(
    edge: Edge, path: str, kw: dict[str, Any], code: int, words: str
) -> None:
    status, body, _ = await edge.call("POST", path, **kw)
    assert status == code and words in body["error"]["message"]


async def test_a_function_the_apps_list_does_not_name_is_a_404_and_stores_nothing(
    harness: Harness,
) -> None:
    await harness.apps.put(worker_spec(functions=["echo"]))
    e = await start_edge(harness.etcd_config)  # no agent: the edge alone refuses it
    try:
        status, body, _ = await e.call("POST", "/v1/apps/worker/boom?async=true", data=b"x")
        assert status == 404 and body["error"]["code"] == "not_found"
        message = "app 'worker' has no function 'boom' (its functions: echo)"
        assert body["error"]["message"] == message
        stored = f"{harness.etcd_config.root}/q/".encode()
        assert await harness.queue.etcd(REGION).count(stored) == 0
        assert (await e.call("POST", "/v1/apps/worker/echo?async=true", data=b"x"))[0] == 202
    finally:
        await e.close()


async def test_unknown_tasks_and_routes_are_json_404s(edge: Edge) -> None:
    for path in (
        "/v1/tasks/not-an-id",
        "/v1/tasks/01JD3ZZZZZZZZZZZZZZZZZZZZZ.us-east-1",
        "/nowhere",
    ):
        status, body, _ = await edge.call("GET", path)
        assert status == 404 and body["error"]["code"] == "not_found"


async def test_handler_errors_are_500s_with_the_message(edge: Edge) -> None:
    status, body, headers = await edge.call("POST", "/v1/apps/worker/boom", data=b"bad")
    assert status == 500 and body["error"] == {
        "code": "handler_error",
        "message": "ValueError: bad input: bad",
    }
    assert "X-Spillover-Task-Id" in headers


async def test_idempotent_retries_return_the_same_task(edge: Edge) -> None:
    key = {"Idempotency-Key": "order-7"}
    ids = set()
    for _ in range(3):
        status, info, _ = await edge.call(
            "POST", "/v1/apps/worker/echo?async=1", data=b"x", headers=key
        )
        assert status == 202
        ids.add(info["id"])
    assert len(ids) == 1


async def test_deploy_list_inspect_delete(edge: Edge) -> None:
    toml = (
        '[app]\nname = "other"\nhandler = "tests.apps.worker:Worker"\n[scaling]\nmin_replicas = 0\n'
    )
    assert (await edge.call("PUT", "/v1/apps/other", data=toml))[0] == 201
    assert (await edge.call("PUT", "/v1/apps/other", data=toml))[0] == 200
    status, body, _ = await edge.call("PUT", "/v1/apps/other", data=toml.replace("0\n", "-1\n"))
    assert status == 422 and "scaling.min_replicas = -1: must be ≥ 0" in body["error"]["message"]
    status, body, _ = await edge.call("PUT", "/v1/apps/wrong", data=toml)
    assert status == 422 and "must match" in body["error"]["message"]
    status, listing, _ = await edge.call("GET", "/v1/apps")
    assert {a["spec"]["app"]["name"] for a in listing["apps"]} == {"worker", "other"}
    await asyncio.sleep(0.5)  # a heartbeat or two
    status, worker, _ = await edge.call("GET", "/v1/apps/worker")
    assert worker["regions"][0]["name"] == REGION and worker["regions"][0]["slots"] == 4
    assert (await edge.call("DELETE", "/v1/apps/other"))[0] == 204
    assert (await edge.call("GET", "/v1/apps/other"))[0] == 404


async def test_health_ready_and_metrics(edge: Edge) -> None:
    assert (await edge.call("GET", "/healthz"))[0] == 200
    assert (await edge.call("GET", "/readyz"))[0] == 200
    await edge.call("POST", "/v1/apps/worker/echo", data=b"x")
    status, text, _ = await edge.call("GET", "/metrics")
    assert status == 200
    assert b'spillover_tasks_submitted_total{app="worker",region="us-east-1"} 1.0' in text
    assert b'spillover_etcd_request_seconds_count{op="txn"}' in text
    assert b'spillover_region_up{region="us-east-1"} 1.0' in text  # the agent beats
    assert b'spillover_region_up{region="eu-west-1"} 0.0' in text  # configured, no agent


async def test_etcd_down_is_503_with_retry_after_and_nothing_acknowledged(
    fresh_etcd: LocalEtcd, root: str
) -> None:
    harness = Harness(fresh_etcd, root)
    await harness.apps.put(worker_spec())
    e = await start_edge(harness.etcd_config)
    try:
        await asyncio.sleep(0.3)  # the edge has seen the app
        fresh_etcd.stop(0)
        status, body, headers = await e.call("POST", "/v1/apps/worker/echo?async=1", data=b"x")
        assert status == 503 and headers["Retry-After"] and body["error"]["code"] == "unavailable"
        assert (await e.call("GET", "/readyz"))[0] == 503
        fresh_etcd.start_member(0)
        fresh_etcd.wait_healthy()
        for _ in range(50):
            status, _, _ = await e.call("POST", "/v1/apps/worker/echo?async=1", data=b"x")
            if status == 202:
                break
            await asyncio.sleep(0.1)
        assert status == 202
    finally:
        await e.close()
        await harness.close()


async def test_federation_health_shows_the_live_region_the_silent_one_and_this_edge(
    edge: Edge,
) -> None:
    """us-east-1's agent heartbeats; eu-west-1 is configured but has none: down, so degraded."""

    async def health() -> dict[str, Any]:
        status, body, _ = await edge.call("GET", "/v1/federation/health")
        assert status == 200
        return body  # type: ignore[no-any-return]

    async def listed() -> bool:  # this edge, and a heartbeat sent since the replica is ready
        h = await health()
        loads = [a for r in h["regions"] for a in r["apps"]]
        return bool(h["edges"]) and [a["ready_replicas"] for a in loads] == [1]

    await until(listed)
    h = await health()
    assert h["status"] == "degraded" and h["etcd"]["healthy"] and h["etcd"]["members"] == 1
    regions = {r["name"]: r for r in h["regions"]}
    assert regions["eu-west-1"] == {
        "name": "eu-west-1", "status": "down", "last_heartbeat": None, "apps": []
    }  # fmt: skip
    assert regions[REGION]["status"] == "ok"
    [worker] = regions[REGION]["apps"]
    assert worker["app"] == "worker" and worker["ready_replicas"] == 1 and worker["slots"] == 4
    assert h["edges"][0]["region"] == REGION


async def sse_text(edge: Edge, task_id: str) -> str:
    """The task's whole event stream, until the edge ends it."""
    async with edge.http.get(f"{edge.url}/v1/tasks/{task_id}/events") as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        return (await r.read()).decode()


async def sse(edge: Edge, task_id: str) -> list[tuple[str, Any]]:
    """Every event of the task's stream, until the edge ends it."""
    return parse_sse(await sse_text(edge, task_id))


def parse_sse(text: str) -> list[tuple[str, Any]]:
    frames = text.strip().split("\n\n")
    events = []
    for f in frames:
        fields = dict(line.split(": ", 1) for line in f.splitlines() if not line.startswith(":"))
        if fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_events_stream_state_progress_and_logs_then_the_final_state(edge: Edge) -> None:
    _, info, _ = await edge.call("POST", "/v1/apps/worker/nap?async=true", json={"seconds": 1})
    events = await sse(edge, info["id"])
    kinds = [k for k, _ in events]
    assert kinds[0] == "state" and kinds[-1] == "state"
    assert events[-1][1]["state"] == "succeeded"
    progress = [d["fraction"] for k, d in events if k == "progress"]
    assert progress and progress == sorted(progress) and progress[-1] == 1.0
    # A late reader still gets the last progress, then the final state.
    late = await sse(edge, info["id"])
    last = next(d for k, d in reversed(events) if k == "progress")
    assert late[-1][1]["state"] == "succeeded" and ("progress", last) in late

    _, info, _ = await edge.call("POST", "/v1/apps/worker/sleep?async=true", json={"seconds": 0.3})
    events = await sse(edge, info["id"])
    assert ("log", {"seq": 1, "line": "sleeping 0.3"}) in events
    assert [d["state"] for k, d in events if k == "state"][-1] == "succeeded"


async def test_a_stream_outlives_many_keepalives_and_carries_every_event(
    harness: Harness, edge: Edge
) -> None:
    """A 4 s task reporting progress every 0.4 s, read with a keep-alive every 0.2 s: the
    stream goes on past ~20 keep-alives (it used to end at the first one) and carries each of
    the ten progress values, then the final state."""
    fast = await start_edge(harness.etcd_config, sse_keepalive=0.2)
    try:
        _, info, _ = await fast.call("POST", "/v1/apps/worker/nap?async=true", json={"seconds": 4})
        text = await sse_text(fast, info["id"])
    finally:
        await fast.close()
    assert text.count(": ping") >= 5
    events = parse_sse(text)
    progress = [d["fraction"] for k, d in events if k == "progress"]
    assert progress == [(i + 1) / 10 for i in range(10)]
    assert events[-1][0] == "state" and events[-1][1]["state"] == "succeeded"


async def test_events_of_an_unknown_task_is_a_json_404(edge: Edge) -> None:
    status, body, _ = await edge.call(
        "GET", "/v1/tasks/01J00000000000000000000000.us-east-1/events"
    )
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_priority_and_sync_timeout_headers(edge: Edge) -> None:
    status, info, _ = await edge.call(
        "POST", "/v1/apps/worker/echo?async=true", data=b"x",
        headers={"X-Spillover-Priority": "9"},
    )  # fmt: skip
    assert status == 202 and info["priority"] == 9
    started = asyncio.get_running_loop().time()
    status, info, headers = await edge.call(
        "POST", "/v1/apps/worker/sleep", json={"seconds": 5},
        headers={"X-Spillover-Timeout": "0.3"},
    )  # fmt: skip
    assert status == 202 and headers["Location"] == f"/v1/tasks/{info['id']}"
    assert asyncio.get_running_loop().time() - started < 4  # answered, not run to the end
    await edge.call("DELETE", f"/v1/tasks/{info['id']}")


async def test_pins_reach_the_task_record(edge: Edge) -> None:
    pinned = {"X-Spillover-Region": REGION}
    _, info, _ = await edge.call(
        "POST", "/v1/apps/worker/echo?async=true", data=b"x", headers=pinned
    )
    assert info["pinned"] is True and info["home_region"] == REGION
    outside = {"X-Spillover-Region": "eu-west-1"}  # worker runs in us-east-1 only
    status, body, _ = await edge.call("POST", "/v1/apps/worker/echo", data=b"x", headers=outside)
    assert status == 400 and "eu-west-1" in body["error"]["message"]


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


async def test_an_oversized_streamed_body_is_413_without_being_buffered(edge: Edge) -> None:
    """256 MiB, chunked (no Content-Length to refuse up front): the edge stops reading at the
    app's limit, so this process's peak RSS does not grow by anything like the body."""
    before = peak_rss_mib()

    async def body() -> Any:
        chunk = b"x" * (1 << 20)
        for _ in range(256):
            yield chunk

    try:
        status, err, _ = await edge.call("POST", "/v1/apps/worker/echo", data=body())
        assert status == 413 and err["error"]["code"] == "payload_too_large"
    except aiohttp.ClientError:
        pass  # the edge may close the connection while the client is still sending
    assert peak_rss_mib() - before < 64
