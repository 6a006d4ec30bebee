"""The task routes: submit (sync and async), status, result, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from typing import Any

from aiohttp import web

from edge import bodies, headers
from edge.auth import may_read, may_use
from edge.keys import (
    BLOBS,
    CLIENTS,
    CLUSTERS,
    CONFIG,
    DEPTHS,
    DRAINING,
    GRANT,
    METRICS,
    QUEUE,
    STORAGE,
    VIEW,
    WAITERS,
)
from edge.routing import fallbacks, place
from federation import deliveries
from federation.aio import cancel_and_wait
from federation.appspec import AppSpec
from federation.blobs import BlobRef
from federation.errors import (
    BadRequest,
    NotFound,
    QueueFull,
    SpilloverError,
    StorageFull,
    Unavailable,
    Unreachable,
)
from federation.geo import Point
from federation.task import (
    State,
    TaskRecord,
    TaskStatus,
    WebhookDelivery,
    new_task_id,
    new_ulid,
)
from federation.waiters import until_finished

log = logging.getLogger(__name__)
_FUNCTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# How a finished task that did not succeed answers GET .../result (and a sync submit).
# result_too_large: the handler answered, but with more than can be delivered (over the app's
# max_payload_bytes, or more than etcd takes inline): a bad answer from upstream, so 502.
_FAILURE_STATUS = {"handler_error": 500, "replica_lost": 502, "timeout": 504, "expired": 504,
                   "payload_unavailable": 502, "result_too_large": 502,
                   "cancelled": 409}  # fmt: skip


def task_headers(r: TaskRecord, status: TaskStatus | None = None) -> dict[str, str]:
    h = {"X-Spillover-Task-Id": r.id, "X-Spillover-Home-Region": r.home_region}
    if r.region:
        h["X-Spillover-Region"] = r.region
    status = status or TaskStatus.of(r, time.time())
    timing = [f"queue;dur={status.queue_ms}"]
    if status.run_ms is not None:
        timing.append(f"run;dur={status.run_ms}")
    h["Server-Timing"] = ", ".join(timing)
    return h


def status_response(
    r: TaskRecord,
    code: int = 200,
    headers: dict[str, str] | None = None,
    webhook: WebhookDelivery | None = None,
) -> web.Response:
    status = TaskStatus.of(r, time.time(), webhook)  # once: it is most of an async submit's CPU
    return web.Response(status=code, body=status.model_dump_json(),
                        content_type="application/json",
                        headers={**task_headers(r, status), **(headers or {})})  # fmt: skip


async def outcome(request: web.Request, r: TaskRecord) -> web.StreamResponse:
    """A finished task's answer: its result, or its error; a running one's status with 202."""
    if not r.state.terminal:
        location = f"/v1/tasks/{r.id}"
        return status_response(r, 202, {"Location": location, "Retry-After": "1"})
    if r.state is State.SUCCEEDED:
        content_type = r.result_content_type or "application/octet-stream"
        headers = {**task_headers(r), "Content-Type": content_type}
        if r.result_ref is not None:
            return await bodies.send(request, request.app[BLOBS], r.result_ref, headers)
        body = await request.app[QUEUE].result(r)
        return web.Response(body=body, headers=headers)
    code = r.error.code if r.error else "internal"
    message = r.error.message if r.error else f"task {r.state.value}"
    return web.json_response(
        {"error": {"code": code, "message": message}},
        status=_FAILURE_STATUS.get(code, 500),
        headers=task_headers(r),
    )


async def submit(request: web.Request) -> web.StreamResponse:
    config, view = request.app[CONFIG], request.app[VIEW]
    app_name, function = request.match_info["app"], request.match_info["function"]
    may_use(request, app_name)
    # The followed copy may lag a deploy by a moment: on a miss, ask etcd.
    spec = view.apps.get(app_name) or await view.registry.get(app_name)
    if not _FUNCTION.fullmatch(function):
        raise BadRequest(f"function {function!r} is not a valid name")
    listed = spec.app.functions
    if listed is not None and function not in listed:  # refused before anything is stored
        raise NotFound(f"app {app_name!r} has no function {function!r} "
                       f"(its functions: {', '.join(listed)})")  # fmt: skip
    h = request.headers
    priority = headers.priority(h)
    wait = headers.seconds(h, "X-Spillover-Timeout", config.default_sync_timeout,
                           config.max_sync_timeout)  # fmt: skip
    webhook = headers.webhook(h, config.allow_http_webhooks)
    idem = headers.idempotency_key(h)
    content_type = headers.content_type(h)
    known: dict[str, Point] = {r.name: (r.lat, r.lon) for r in config.regions}
    placed = place(
        pin=headers.regions(h, "X-Spillover-Region"),
        prefer=headers.regions(h, "X-Spillover-Prefer-Region"),
        client=request.app[CLIENTS].locate(request),
        edge_region=config.region, known=known,
        healthy=frozenset(view.heartbeats), app_regions=spec.placement.regions,
    )  # fmt: skip
    asynchronous = headers.respond_async(h, request.query)
    await _admit(request, spec, placed.home)
    # Every header and limit is checked before the body is read: a refused request stores
    # nothing.
    ulid, store = new_ulid(), request.app[BLOBS]
    reader = bodies.Body(request, config.body_timeout, config.body_min_rate)
    body, ref = await bodies.receive(
        request, reader, spec.scaling.max_payload_bytes, config.blobs.inline_limit, store, ulid
    )
    # The home partition first; if its etcd cannot be reached (the task was certainly not
    # stored), the nearest other region the task may run in. Pinned to one region: 503.
    homes = _one_per_cluster(
        request, (placed.home, *fallbacks(placed, known, spec.placement.regions))
    )
    owner = request[GRANT].name if config.auth else None
    updates: asyncio.Queue[TaskRecord] | None = None  # a sync submit's: its end
    async with contextlib.AsyncExitStack() as stack:
        for i, home in enumerate(homes):
            now = time.time()
            record = TaskRecord(
                id=new_task_id(home, ulid), app=app_name, function=function,
                home_region=home, allowed_regions=placed.allowed, priority=priority,
                max_attempts=spec.scaling.max_attempts, created_at=now,
                deadline=now + spec.scaling.response_grace_period, idempotency_key=idem,
                retention=spec.queue.result_retention, owner=owner,
                fingerprint=_fingerprint(app_name, function, body, ref) if idem else None,
                webhook=webhook, payload_ref=ref,
                content_type=content_type,
            )  # fmt: skip
            try:
                request.app[STORAGE].check(request.app[QUEUE].etcd(home))
                if not asynchronous:  # subscribed first: the task may finish before we look
                    subscription = request.app[WAITERS].subscribe(record.id)
                    updates = await stack.enter_async_context(subscription)
                stored, created = await request.app[QUEUE].enqueue(record, body)
                break
            except (Unreachable, StorageFull) as e:  # certainly not stored: try the next home
                first = (
                    await request.app[QUEUE].idempotent(record)
                    if isinstance(e, StorageFull)
                    else None
                )
                if first is not None:
                    stored, created = first, False  # a retry: the first try is stored here
                    break
                if i == len(homes) - 1:
                    if ref is not None:  # not stored anywhere
                        await store.delete(ref.name)
                    request.app[METRICS].refused.labels(app_name, e.code).inc()
                    raise
                log.warning("partition %s: %s; storing in %s", home, e.message, homes[i + 1])
        # Other failures may have stored the task (a timeout after etcd applied it): its blob
        # is left for the sweeper, which deletes it only if the task does not exist.
        if created:
            request.app[METRICS].submitted.labels(app_name, home).inc()
            request.app[DEPTHS].added(home, app_name)
        elif ref is not None and stored.id != record.id:  # an idempotent retry: the first
            await store.delete(ref.name)  # task has its own body
        if asynchronous:
            return status_response(stored, 202, {"Location": f"/v1/tasks/{stored.id}"})
        if stored.id != record.id:  # an idempotent retry: answer with the first task as it is
            return await outcome(request, await request.app[QUEUE].get(stored.id))
        assert updates is not None
        final = await wait_finished(request, updates, stored, wait)
    return await outcome(request, final)


async def _admit(request: web.Request, spec: AppSpec, home: str) -> None:
    """429 queue_full once the app's queue in its home partition is at ``[queue] max_depth``;
    Retry-After from the rate its regions have been taking its tasks at."""
    beats = request.app[VIEW].heartbeats.values()
    rate = sum(a.requests_per_second for b in beats for a in b.apps if a.app == spec.name)
    try:
        await request.app[DEPTHS].admit(home, spec.name, spec.queue.max_depth, rate)
    except QueueFull as e:
        request.app[METRICS].refused.labels(spec.name, e.code).inc()
        raise
    except Unavailable:
        pass  # the depth is unknown: the enqueue finds out whether the partition can be reached


def _fingerprint(app: str, function: str, body: bytes, ref: BlobRef | None) -> str:
    digest = ref.sha256 if ref is not None else hashlib.sha256(body).hexdigest()
    return hashlib.sha256(f"{app}\n{function}\n{digest}".encode()).hexdigest()


def _one_per_cluster(request: web.Request, regions: tuple[str, ...]) -> tuple[str, ...]:
    """The first region of each etcd cluster: another partition of an unreachable cluster is
    just as unreachable."""
    seen: set[str] = set()
    out = []
    for r in regions:
        cluster = request.app[CLUSTERS].name_of(r)
        if cluster not in seen:
            seen.add(cluster)
            out.append(r)
    return tuple(out)


async def wait_finished(
    request: web.Request, updates: asyncio.Queue[TaskRecord], record: TaskRecord, wait: float
) -> TaskRecord:
    """Wait up to ``wait`` s for the task to finish — cut short when the edge shuts down: after
    ``drain_grace`` more seconds the caller gets the task as it stands (202 + Location)."""
    grace = request.app[CONFIG].drain_grace
    draining = request.app[DRAINING]

    async def cut_short() -> None:
        await draining.wait()
        await asyncio.sleep(grace)

    waiting = asyncio.create_task(until_finished(updates, record, wait))
    cutter = asyncio.create_task(cut_short())
    try:
        await asyncio.wait([waiting, cutter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait([cutter])
    if waiting.done():
        return waiting.result()
    await cancel_and_wait([waiting])
    return await request.app[QUEUE].get(record.id)


async def task_of(request: web.Request) -> TaskRecord:
    """The task named in the path, if it is the caller's (or its key may read them all)."""
    record = await request.app[QUEUE].get(request.match_info["id"])
    may_read(request, record)
    return record


async def status(request: web.Request) -> web.Response:
    record = await task_of(request)
    webhook = None
    if record.webhook is not None and record.state.terminal:  # how its delivery goes
        webhook = await deliveries.delivery(request.app[QUEUE], record.id)
    return status_response(record, webhook=webhook)


async def result(request: web.Request) -> web.StreamResponse:
    task_id = request.match_info["id"]
    wait = _wait_param(request)
    async with request.app[WAITERS].subscribe(task_id) as updates:
        record = await wait_finished(request, updates, await task_of(request), wait)
    return await outcome(request, record)


def _wait_param(request: web.Request) -> float:
    raw = request.query.get("wait", "0")
    try:
        value = float(raw)
    except ValueError:
        value = -1
    limit = request.app[CONFIG].max_sync_timeout
    if not 0 <= value <= limit:
        raise BadRequest(f"wait = {raw!r}: must be a number of seconds from 0 to {limit:g}")
    return value


async def cancel(request: web.Request) -> web.Response:
    record = await task_of(request)
    return status_response(await request.app[QUEUE].cancel(record.id))


def error_body(e: SpilloverError) -> dict[str, Any]:
    return {"error": {"code": e.code, "message": e.message}}
