"""``GET /v1/tasks/{id}/events``: server-sent events — ``state`` on every state change,
``progress`` and ``log`` as the handler reports them, and the stream ends after the final
``state``.

Framing, the keep-alive comments (``: ping`` every ``sse_keepalive`` seconds, so proxies keep an
idle stream open) and the stalled-reader cut-off (``sse_send_timeout``) are aiohttp-sse's. The
pings run in their own task, beside the one that follows the task: nothing ever times out or
cancels the follow while the task runs, however long it runs. The follow ends at the final state
or when the client goes away (a ping that cannot be written ends the response's ping task).

A slow reader holds little: ``Queue.follow`` keeps at most the newest unread record and events
value, and a write that waits on a full socket blocks only this stream's forwarder.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from edge.keys import CONFIG, QUEUE
from edge.tasks import task_headers, task_of
from federation.aio import cancel_and_wait
from federation.events import Progress, TaskEvents
from federation.task import State, TaskRecord, TaskStatus

log = logging.getLogger(__name__)


async def events(request: web.Request) -> web.StreamResponse:
    record = await task_of(request)  # 404 / 403 as JSON, before the stream starts
    config = request.app[CONFIG]
    async with sse_response(
        request,
        headers=task_headers(record),
        sep="\n",
        ping_interval=config.sse_keepalive,
        send_timeout=config.sse_send_timeout,
    ) as stream:
        forward = asyncio.create_task(_forward(request, record.id, stream))
        gone = asyncio.create_task(stream.wait())  # ends when the client does
        try:
            await asyncio.wait([forward, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait([forward, gone])
        failed = forward.exception() if forward.done() and not forward.cancelled() else None
        # The status line is out: a failure can only end the stream early (the client sees no
        # final state and may reconnect). A client that went away is no failure.
        if failed is not None and not isinstance(failed, ConnectionError | TimeoutError):
            log.warning("events of task %s broke off: %r", record.id, failed)
    return stream


async def _forward(request: web.Request, task_id: str, stream: EventSourceResponse) -> None:
    state: State | None = None
    progress: Progress | None = None
    seen = 0
    async for item in request.app[QUEUE].follow(task_id):
        if isinstance(item, TaskRecord):
            if item.state != state:
                state = item.state
                body = TaskStatus.of(item, time.time()).model_dump_json()
                await stream.send(body, event="state")
            continue
        out, progress, seen = _new(item, progress, seen)
        for event, data in out:
            await stream.send(data, event=event)


def _new(
    events: TaskEvents, progress: Progress | None, seen: int
) -> tuple[list[tuple[str, str]], Progress | None, int]:
    """Events for what changed since the last value: new progress, lines after ``seen``."""
    out = []
    if events.progress is not None and events.progress != progress:
        out.append(("progress", events.progress.model_dump_json()))
    for line in events.lines_after(seen):
        out.append(("log", json.dumps({"seq": line.seq, "line": line.line})))
    return out, events.progress, max(seen, events.seq)
