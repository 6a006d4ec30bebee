"""``GET /v1/tasks/{id}/events``: server-sent events — ``state`` on every state change,
``progress`` and ``log`` as the handler reports them, and the stream ends after the final
``state``. Comment lines keep idle connections open through proxies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from aiohttp import web

from edge.keys import QUEUE
from edge.tasks import task_headers, task_of
from federation.events import Progress, TaskEvents
from federation.task import State, TaskRecord, TaskStatus

KEEPALIVE = 15.0


def frame(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    record = await task_of(request)  # 404 / 403 as JSON, before the stream starts
    response = web.StreamResponse(
        headers={
            **task_headers(record),
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    await response.prepare(request)
    state: State | None = None
    progress: Progress | None = None
    seen = 0
    stream = request.app[QUEUE].follow(record.id)
    try:
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE):
                    item = await anext(stream)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            except StopAsyncIteration:
                break
            if isinstance(item, TaskRecord):
                if item.state != state:
                    state = item.state
                    body = TaskStatus.of(item, time.time()).model_dump_json()
                    await response.write(frame("state", body))
                continue
            out, progress, seen = _new(item, progress, seen)
            for chunk in out:
                await response.write(chunk)
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]
    await response.write_eof()
    return response


def _new(
    events: TaskEvents, progress: Progress | None, seen: int
) -> tuple[list[bytes], Progress | None, int]:
    """Frames for what changed since the last value: new progress, lines after ``seen``."""
    out = []
    if events.progress is not None and events.progress != progress:
        out.append(frame("progress", events.progress.model_dump_json()))
    for line in events.lines_after(seen):
        out.append(frame("log", json.dumps({"seq": line.seq, "line": line.line})))
    return out, events.progress, max(seen, events.seq)
