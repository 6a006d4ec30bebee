"""``create_app(config, registry)``: the edge as aiohttp's docs ask — state under AppKeys, every
client and background task in a cleanup context, errors as the spec's JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from edge import bodies, dashboard, events, openapi, tasks
from edge.auth import admin, authenticate, may_use
from edge.client import Geolocator
from edge.config import EdgeConfig
from edge.errors import HTTP_CODES, BodyTimeout, Overloaded
from edge.grants import ApiKeyFollower
from edge.keys import (
    API_KEYS,
    BLOBS,
    CLIENTS,
    CLUSTERS,
    CONFIG,
    DEPTHS,
    DRAINING,
    GRANT,
    IN_FLIGHT,
    METRICS,
    QUEUE,
    RATES,
    STORAGE,
    VIEW,
    WAITERS,
    Clients,
    Handler,
    InFlight,
)
from edge.limits import cap_requests
from edge.metrics import EdgeMetrics
from edge.ratelimit import Buckets
from edge.state import FederationView
from federation import keys
from federation.admission import Depths
from federation.aio import cancel_and_wait
from federation.appspec import AppSpec, parse_spec, parse_toml
from federation.blobs.fs import ROUTE as FS_ROUTE
from federation.blobs.fs import FsStore
from federation.blobs.stores import open_store
from federation.blobs.sweep import run_sweeper
from federation.errors import (
    Forbidden,
    InvalidConfig,
    PermissionDenied,
    SpilloverError,
    Unauthorized,
    Unavailable,
)
from federation.health import visible
from federation.heartbeat import EdgeHeartbeat
from federation.metrics import FederationMetrics
from federation.queue import Queue
from federation.storage import StorageGuard
from federation.topology import Clusters
from federation.waiters import TaskWaiters

log = logging.getLogger(__name__)
# Task bodies are streamed (edge/bodies.py); app specs are read whole, up to this.
MAX_SPEC_BYTES = 1 << 20


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is ``{"error": {"code", "message"}}`` with a fitting status."""
    try:
        return await handler(request)
    except SpilloverError as e:
        headers = {}
        if e.retry_after is not None or e.status in (429, 503):
            headers["Retry-After"] = retry_after(e.retry_after)
        if isinstance(e, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="spillover"'
        response = web.json_response(tasks.error_body(e), status=e.status, headers=headers)
        if isinstance(e, BodyTimeout | Overloaded):
            response.force_close()  # Connection: close; the slot and the socket are freed
        return response
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = HTTP_CODES.get(e.status, "http_error")
        kept = {
            k: v
            for k, v in e.headers.items()
            if k.lower() not in ("content-type", "content-length")
        }
        body = {"error": {"code": code, "message": e.reason}}
        return web.json_response(body, status=e.status, headers=kept)  # keeps 405's Allow
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        body = {"error": {"code": "internal", "message": "internal error; it has been logged"}}
        return web.json_response(body, status=500)


def retry_after(seconds: float | None) -> str:
    """Retry-After in whole seconds (RFC 9110 allows no fraction), at least 1."""
    return str(max(1, math.ceil(seconds or 1)))


async def _federation(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    stack = contextlib.AsyncExitStack()
    federation_metrics = FederationMetrics(app[METRICS].registry)
    clusters = Clusters(config.etcd, federation_metrics)
    queue = Queue(clusters)
    storage = StorageGuard(clusters, federation_metrics)
    view = FederationView(clusters.control, clusters.root)
    waiters = TaskWaiters(queue, [r.name for r in config.regions])
    geo = Geolocator.open(config.geoip_db)
    app[CLUSTERS], app[QUEUE], app[VIEW], app[WAITERS] = clusters, queue, view, waiters
    app[STORAGE], app[DEPTHS] = storage, Depths(queue)
    app[CLIENTS] = Clients(config, geo)
    blobs = await stack.enter_async_context(
        open_store(config.blobs, clusters.control, clusters.root, config.url)
    )
    app[BLOBS] = blobs
    b, regions = config.blobs, lambda: [r.name for r in config.regions]
    me = EdgeHeartbeat(id=config.id, region=config.region, url=config.url, at=0)
    background = [
        asyncio.create_task(view.follow_apps()),
        asyncio.create_task(view.follow_regions()),
        asyncio.create_task(view.follow_edges()),
        asyncio.create_task(view.publish(me)),
        asyncio.create_task(waiters.run()),
        asyncio.create_task(storage.run()),
        asyncio.create_task(run_sweeper(blobs, clusters, regions, b.sweep_interval, b.sweep_grace)),
    ]
    if config.auth:
        app[API_KEYS] = ApiKeyFollower(
            clusters.control, clusters.root, resync=config.keys_resync,
            stale_after=config.keys_stale_after, unknown_ttl=config.unknown_key_ttl,
        )  # fmt: skip
        background.append(asyncio.create_task(app[API_KEYS].run()))
    yield
    await cancel_and_wait(background)
    await stack.aclose()
    geo.close()
    await clusters.close()


async def _drain(app: web.Application) -> None:
    """Shutdown, after the listener closed and before in-flight handlers are awaited: cut
    synchronous waits short (they answer 202 with the task id after ``drain_grace``)."""
    app[DRAINING].set()


async def deploy(request: web.Request) -> web.Response:
    admin(request, "deploying")
    name = request.match_info["app"]
    config = request.app[CONFIG]
    body = bodies.Body(request, config.body_timeout, config.body_min_rate)
    try:
        text = (await bodies.read_whole(body, MAX_SPEC_BYTES)).decode()
    except UnicodeDecodeError as e:
        raise InvalidConfig(f"body is not UTF-8 text: {e}") from None
    if request.content_type == "application/json":
        try:
            spec = parse_spec(json.loads(text))
        except json.JSONDecodeError as e:
            raise InvalidConfig(f"body is not valid JSON: {e}") from None
    else:
        spec = parse_toml(text)
    if spec.name != name:
        raise InvalidConfig(f"app.name = {spec.name!r}: must match the path's app {name!r}")
    with _app_writes():
        created = await request.app[VIEW].registry.put(spec)
    return web.json_response(spec.model_dump(mode="json"), status=201 if created else 200)


@contextlib.contextmanager
def _app_writes() -> Iterator[None]:
    """With etcd RBAC on, edges may not write apps (a compromised edge must not choose the code
    GPU nodes run): deploys are the admin's, straight to etcd."""
    try:
        yield
    except PermissionDenied:
        raise Forbidden(
            "this federation's edges may not change apps (etcd RBAC): deploy with the etcd "
            "admin certificate, `spillover deploy --etcd` (docs/security.md)"
        ) from None


def _app_json(request: web.Request, spec: AppSpec) -> dict[str, object]:
    regions = []
    for beat in request.app[VIEW].heartbeats.values():
        for load in beat.apps:
            if load.app == spec.name:
                regions.append({"name": beat.name, **load.model_dump(exclude={"app"})})
    return {"spec": spec.model_dump(mode="json"), "regions": regions}


async def list_apps(request: web.Request) -> web.Response:
    grant = request[GRANT]
    specs = [s for s in await request.app[VIEW].registry.list() if grant.may_use(s.name)]
    return web.json_response({"apps": [_app_json(request, s) for s in specs]})


async def get_app(request: web.Request) -> web.Response:
    may_use(request, request.match_info["app"])
    spec = await request.app[VIEW].registry.get(request.match_info["app"])
    return web.json_response(_app_json(request, spec))


async def delete_app(request: web.Request) -> web.Response:
    admin(request, "removing an app")
    with _app_writes():
        await request.app[VIEW].registry.delete(request.match_info["app"])
    return web.Response(status=204)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when etcd answers and (with auth) the API keys are current: an edge that cannot
    store a task, or check who sent it, must not be sent any."""
    clusters = request.app[CLUSTERS]
    try:
        # A key the edge may read when etcd RBAC is on (``etcd_rbac.py``); absent or not, the
        # answer proves a linearizable read went through.
        await clusters.control.get(keys.apps(clusters.root))
        if request.app[CONFIG].auth and not request.app[API_KEYS].ready():
            raise Unavailable("the API keys are not current (etcd's key list is out of reach)")
    except Unavailable as e:
        return web.json_response({"status": "unavailable", "reason": e.message}, status=503,
                                 headers={"Retry-After": "1"})  # fmt: skip
    return web.json_response({"status": "ready"})


async def federation_health(request: web.Request) -> web.Response:
    """From etcd alone (heartbeats and edges this edge follows), never from calls to regions."""
    regions = [r.name for r in request.app[CONFIG].regions]
    health = await request.app[VIEW].health(regions, request.app[STORAGE].reasons())
    return web.json_response(visible(health, request[GRANT].may_use).model_dump(mode="json"))


async def openapi_json(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    regions = [r.name for r in config.regions]
    return web.json_response(openapi.spec(regions, config.max_sync_timeout))


async def blob(request: web.Request) -> web.StreamResponse:
    """``/internal/blobs/{name}``: bodies this edge stored, for the agents that run them.
    Signed URLs, not API keys (see ``federation/blobs/signing.py``)."""
    store = request.app[BLOBS]
    if not isinstance(store, FsStore):
        raise web.HTTPNotFound()
    return await store.serve(request)


async def metrics(request: web.Request) -> web.Response:
    admin(request, "reading the metrics")
    m, config = request.app[METRICS], request.app[CONFIG]
    m.regions((r.name for r in config.regions), request.app[VIEW].heartbeats)
    body = generate_latest(m.registry)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


def create_app(config: EdgeConfig, registry: CollectorRegistry | None = None) -> web.Application:
    app = web.Application(middlewares=[json_errors, cap_requests, authenticate])
    app[CONFIG] = config
    app[IN_FLIGHT] = InFlight(config.max_connections)
    app[RATES] = Buckets()
    app[METRICS] = EdgeMetrics(registry or CollectorRegistry())
    app[DRAINING] = asyncio.Event()
    app.on_shutdown.append(_drain)
    app.cleanup_ctx.append(_federation)
    app.router.add_post("/v1/apps/{app}/{function}", tasks.submit)
    app.router.add_get("/v1/tasks/{id}", tasks.status)
    app.router.add_get("/v1/tasks/{id}/result", tasks.result)
    app.router.add_delete("/v1/tasks/{id}", tasks.cancel)
    app.router.add_get("/v1/tasks/{id}/events", events.events)
    app.router.add_put("/v1/apps/{app}", deploy)
    app.router.add_get("/v1/apps", list_apps)
    app.router.add_get("/v1/apps/{app}", get_app)
    app.router.add_delete("/v1/apps/{app}", delete_app)
    app.router.add_get("/v1/federation/health", federation_health)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get(FS_ROUTE, blob)
    dashboard.add_routes(app.router)
    return app
