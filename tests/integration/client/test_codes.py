"""Answers the real edge cannot give on demand (429 queue_full and rate_limited, 503
storage_full, 422 idempotency_key_reused, tasks that expired, lost their replica or made too
large a result, results cut short, event streams that end early), from a scripted edge on
loopback: how the client types them, when it retries, and how long it waits."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import spillover
from spillover import LogEvent, ProgressEvent, StateEvent
from spillover.local.etcd import free_port

TID = "01J00000000000000000000000.us-east-1"
STATUS = {"id": TID, "app": "demo", "function": "f", "state": "running", "home_region": "us-east-1"}


@dataclass
class Answer:
    status: int
    body: Any = None  # JSON, or bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None  # send this many bytes of the body, then drop the connection

    @staticmethod
    def error(status: int, code: str, **headers: str) -> Answer:
        return Answer(status, {"error": {"code": code, "message": f"{code}!"}}, headers)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    at: float


class Scripted:
    """An edge that answers each request with the next scripted answer (the last one again
    when the script runs out) and remembers what it was asked."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.seen: list[Seen] = []
        self.streams: list[list[bytes]] = []  # event streams, one per connection

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers),
                              time.monotonic()))  # fmt: skip
        if request.path.endswith("/events"):
            return await self._events(request)
        a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        body = a.body if isinstance(a.body, bytes) else json.dumps(a.body).encode()
        ctype = "application/octet-stream" if isinstance(a.body, bytes) else "application/json"
        response = web.StreamResponse(status=a.status, headers={"Content-Type": ctype, **a.headers})
        response.content_length = len(body)
        await response.prepare(request)
        if a.cut_after is not None:
            await response.write(body[: a.cut_after])
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(body)
        return response

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for frame in self.streams.pop(0):
            await response.write(frame)
        return response  # the stream ends here, final state or not


@pytest.fixture
async def edge() -> AsyncIterator[tuple[Scripted, str]]:
    scripted = Scripted(Answer(200, {"ok": True}))
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield scripted, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("answer", "cls", "code"),
    [
        (Answer.error(429, "queue_full", **{"Retry-After": "1"}), spillover.QueueFull, None),
        (Answer.error(429, "rate_limited", **{"Retry-After": "1"}), spillover.RateLimited, None),
        (Answer.error(503, "storage_full", **{"Retry-After": "1"}), spillover.StorageFull, None),
        (Answer.error(422, "idempotency_key_reused"), spillover.IdempotencyKeyReused, None),
        (Answer.error(504, "expired", **{"X-Spillover-Task-Id": TID}), spillover.TaskFailed,
         "expired"),
        (Answer.error(502, "replica_lost", **{"X-Spillover-Task-Id": TID}), spillover.TaskFailed,
         "replica_lost"),
        (Answer.error(500, "result_too_large", **{"X-Spillover-Task-Id": TID}),
         spillover.TaskFailed, "result_too_large"),
    ],
)  # fmt: skip
async def test_codes_the_edge_cannot_produce_yet_are_typed(
    edge: tuple[Scripted, str], answer: Answer, cls: type[spillover.SpilloverError], code: str
) -> None:
    scripted, url = edge
    scripted.answers = [answer]
    async with spillover.AsyncClient(url, retry_for=0) as client:
        with pytest.raises(cls) as caught:
            await client.run("demo", "f", b"x")
    assert type(caught.value) is cls and caught.value.code == (code or answer.body["error"]["code"])
    if answer.status in (429, 503):
        assert caught.value.retry_after == 1.0
    if code is not None:
        assert getattr(caught.value, "task_id", None) == TID


async def test_429_and_503_are_retried_after_retry_after_with_the_same_key(
    edge: tuple[Scripted, str],
) -> None:
    scripted, url = edge
    scripted.answers = [Answer.error(429, "queue_full", **{"Retry-After": "1"}),
                        Answer.error(503, "storage_full", **{"Retry-After": "1"}),
                        Answer(200, {"ok": True})]  # fmt: skip
    with spillover.Client(url, retry_for=30) as client:  # the blocking client, in a thread
        assert await asyncio.to_thread(client.run, "demo", "f", {"n": 1}) == {"ok": True}
    posts = [s for s in scripted.seen if s.method == "POST"]
    assert len(posts) == 3
    assert len({s.headers["Idempotency-Key"] for s in posts}) == 1
    gaps = [b.at - a.at for a, b in itertools.pairwise(posts)]
    assert all(g >= 0.95 for g in gaps), gaps  # never sooner than the edge asked


async def test_retrying_stops_before_the_deadline_and_after_retry_for(
    edge: tuple[Scripted, str],
) -> None:
    scripted, url = edge
    scripted.answers = [Answer.error(429, "queue_full", **{"Retry-After": "5"})]
    async with spillover.AsyncClient(url, retry_for=60) as client:
        t0 = time.monotonic()
        with pytest.raises(spillover.QueueFull):
            await client.run("demo", "f", b"x", timeout=2)  # a 5 s wait would end past it
        assert time.monotonic() - t0 < 1 and len(scripted.seen) == 1
    scripted.answers = [Answer.error(503, "unavailable", **{"Retry-After": "1"})]
    scripted.seen.clear()
    async with spillover.AsyncClient(url, retry_for=2.5) as client:
        with pytest.raises(spillover.Unavailable):
            await client.submit("demo", "f", b"x")
    assert 2 <= len(scripted.seen) <= 3


async def test_connection_failures_are_retried_until_the_edge_listens(tmp_path: Path) -> None:
    port = free_port()
    async with spillover.AsyncClient(f"http://127.0.0.1:{port}", retry_for=30) as client:
        call = asyncio.create_task(client.run("demo", "f", b"x"))
        await asyncio.sleep(0.5)  # refused meanwhile: nothing listens yet
        assert not call.done()
        app = web.Application()

        async def late(request: web.Request) -> web.Response:
            return web.json_response({"late": True})

        app.router.add_post("/v1/apps/demo/f", late)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            assert await call == {"late": True}
        finally:
            await runner.cleanup()
    with (
        spillover.Client(f"http://127.0.0.1:{port}", retry_for=0.5) as client,
        pytest.raises(spillover.Unavailable, match="cannot reach the edge"),
    ):
        await asyncio.to_thread(client.run, "demo", "f", b"x")


async def test_a_body_from_a_pipe_is_not_sent_twice(edge: tuple[Scripted, str]) -> None:
    scripted, url = edge
    scripted.answers = [Answer.error(503, "unavailable", **{"Retry-After": "1"})]
    r, w = os.pipe()
    os.write(w, b"once")
    os.close(w)
    with (
        os.fdopen(r, "rb") as pipe,
        spillover.Client(url, retry_for=30) as client,
        pytest.raises(spillover.Unavailable),
    ):
        await asyncio.to_thread(client.run, "demo", "f", pipe)
    assert len(scripted.seen) == 1


async def test_a_result_cut_short_is_fetched_again_and_never_left_as_a_file(
    edge: tuple[Scripted, str], tmp_path: Path
) -> None:
    scripted, url = edge
    data = os.urandom(200_000)
    task = {"X-Spillover-Task-Id": TID}
    scripted.answers = [Answer(200, data, task, cut_after=50_000), Answer(200, data, task)]
    with spillover.Client(url, retry_for=10) as client:
        got = await asyncio.to_thread(client.task(TID).result, 5, tmp_path / "r")
    assert got == tmp_path / "r" and (tmp_path / "r").read_bytes() == data
    assert len(scripted.seen) == 2
    scripted.answers = [Answer(200, data, task, cut_after=50_000)]
    async with spillover.AsyncClient(url, retry_for=1) as aclient:
        with pytest.raises(spillover.Unavailable):
            await aclient.task(TID).result(timeout=5, to=tmp_path / "s")
    assert sorted(await asyncio.to_thread(os.listdir, tmp_path)) == ["r"]  # no "s", no part of it


def frame(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def test_an_event_stream_that_ends_early_is_opened_again_without_repeats(
    edge: tuple[Scripted, str],
) -> None:
    scripted, url = edge
    running, progress = frame("state", STATUS), frame("progress", {"fraction": 0.5})
    scripted.streams = [
        [running, progress, b": keep-alive\n\n"],  # ends before the final state
        [running, progress, frame("log", {"seq": 1, "line": "hi"}),
         frame("state", {**STATUS, "state": "succeeded"})],
    ]  # fmt: skip
    async with spillover.AsyncClient(url) as client:
        events = [e async for e in client.task(TID).events()]
    assert [type(e) for e in events] == [StateEvent, ProgressEvent, LogEvent, StateEvent]
    assert isinstance(events[-1], StateEvent) and events[-1].status.state == "succeeded"
    assert len([s for s in scripted.seen if s.path.endswith("/events")]) == 2
