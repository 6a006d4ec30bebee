"""What one client, or all of them, can hold at this edge: requests in progress (this module),
request bodies (``bodies.py``: 408 for a trickle), idle connections (``idle_timeout``) and
event streams (``events.py``)."""

from __future__ import annotations

from aiohttp import web

from edge.errors import Overloaded
from edge.keys import IN_FLIGHT, Handler


@web.middleware
async def cap_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Past ``max_connections`` requests in progress: 503 ``overloaded`` with Retry-After, at
    once (before auth costs an etcd read), and the connection closes. Probes, metrics and the
    agents' blob fetches are not counted: a busy edge must still say so and feed its tasks."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    gate = request.app[IN_FLIGHT]
    if gate.count >= gate.limit:
        raise Overloaded(
            f"this edge is serving its limit of {gate.limit} requests; retry, or another edge",
            retry_after=1,
        )
    gate.count += 1
    try:
        return await handler(request)
    finally:
        gate.count -= 1
