"""Who may call what: ``Authorization: Bearer <key>`` checked against the grants followed from
etcd (``grants.py``), and each key's rate limit. Liveness, readiness and the OpenAPI document
stay open (probes carry no keys); everything under ``/v1/`` needs a key, and ``/metrics`` an
admin key (a scraper sends it as its bearer token: the metrics name every app and region),
unless the config turns auth off (local dev)."""

from __future__ import annotations

import time

from aiohttp import web

from edge.headers import bearer_token
from edge.keys import API_KEYS, CONFIG, GRANT, RATES, VIEW, Handler
from edge.ratelimit import edge_share
from federation.apikeys import Grant, digest
from federation.errors import Forbidden, NotFound, RateLimited
from federation.task import TaskRecord

ANYONE = Grant(name="anyone", apps=("*",), admin=True)  # what every caller is with auth off


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not (request.path.startswith("/v1/") or request.path == "/metrics"):
        return await handler(request)
    if not request.app[CONFIG].auth:
        request[GRANT] = ANYONE
        return await handler(request)
    d = digest(bearer_token(request.headers))
    request[GRANT] = grant = await request.app[API_KEYS].grant(d)
    if (limit := grant.limit) is not None:
        _take(request, d, grant.name, *limit)
    return await handler(request)


def _take(request: web.Request, digest: str, name: str, rate: float, burst: float) -> None:
    """One request of the key's rate. Each of N live edges (their heartbeats) allows rate/N
    and burst/N (at least 1), so N edges together allow the key's rate, not N times it — when
    the load balancer spreads the key's requests evenly. Unevenly, the key gets less: all of
    them on one edge of 4 pass at a quarter of the rate. Exact sharing would need a
    coordination round trip per request; this needs none."""
    n = len(request.app[VIEW].edges)
    share, share_burst = edge_share(rate, burst, n)
    wait = request.app[RATES].take(digest, share, share_burst, time.monotonic())
    if wait:
        raise RateLimited(
            f"key {name!r} is over its rate of {rate:g} requests/s (burst {burst:g}); this "
            f"edge allows {share:g}/s of it, one of {max(1, n)}",
            retry_after=wait,
        )


def may_use(request: web.Request, app: str) -> None:
    grant = request[GRANT]
    if not grant.may_use(app):
        raise Forbidden(f"key {grant.name!r} is not granted app {app!r}")


def admin(request: web.Request, what: str) -> None:
    grant = request[GRANT]
    if not grant.admin:
        raise Forbidden(f"key {grant.name!r} is not an admin key; {what} needs one")


def may_read(request: web.Request, record: TaskRecord) -> None:
    """Someone else's task is as good as absent: 404, not 403, so its id leaks nothing."""
    if not request[GRANT].may_read(record.app, record.owner):
        raise NotFound(f"task {record.id} not found")
