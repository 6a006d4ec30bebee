"""The edge's application state keys (aiohttp ``AppKey``s), in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from edge.client import Geolocator, client_ip
from edge.config import EdgeConfig
from edge.grants import ApiKeyFollower
from edge.metrics import EdgeMetrics
from edge.ratelimit import Buckets
from edge.state import FederationView
from federation.admission import Depths
from federation.apikeys import Grant
from federation.blobs import BlobStore
from federation.queue import Queue
from federation.storage import StorageGuard
from federation.topology import Clusters
from federation.waiters import TaskWaiters


class Clients:
    """Locates the client of a request (trusted proxies, then the GeoIP database)."""

    def __init__(self, config: EdgeConfig, geo: Geolocator) -> None:
        self.networks = config.networks()
        self.geo = geo

    def locate(self, request: web.Request) -> tuple[float, float] | None:
        ip = client_ip(request.remote, request.headers.get("X-Forwarded-For"), self.networks)
        return self.geo.locate(ip)


class InFlight:
    """Requests under ``/v1/`` in progress. aiohttp serves one request at a time per HTTP/1.1
    connection, so this is the number of busy connections; idle ones are closed after
    ``idle_timeout`` and hold no more than a socket until then."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0


CONFIG = web.AppKey("config", EdgeConfig)
CLUSTERS = web.AppKey("clusters", Clusters)
QUEUE = web.AppKey("queue", Queue)
WAITERS = web.AppKey("waiters", TaskWaiters)
VIEW = web.AppKey("view", FederationView)
CLIENTS = web.AppKey("clients", Clients)
METRICS = web.AppKey("metrics", EdgeMetrics)
BLOBS = web.AppKey("blobs", BlobStore)
DEPTHS = web.AppKey("depths", Depths)  # queue depths, for [queue] max_depth
STORAGE = web.AppKey("storage", StorageGuard)  # etcd space against its quota
API_KEYS = web.AppKey("api_keys", ApiKeyFollower)  # with auth on only
RATES = web.AppKey("rates", Buckets)  # API key digest -> its token bucket at this edge

IN_FLIGHT = web.AppKey("in_flight", InFlight)
DRAINING = web.AppKey("draining", asyncio.Event)  # set when the edge starts shutting down
GRANT = web.RequestKey("grant", Grant)  # the caller's grant, set by the auth middleware
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
