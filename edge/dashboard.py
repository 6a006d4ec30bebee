"""``/dashboard``: the federation on a live page. The page and its assets are static files of
this package (no CDN: edges and browsers are often offline); the data is
``/v1/federation/dashboard``, an admin route like every other ``/v1/`` one, which the page
polls every second with the key the user gave it (``docs/edge.md``).

The assets hold no data, so they are served to anyone; a strict Content-Security-Policy keeps
the page to its own script and styles."""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp import web

from edge.auth import admin
from edge.keys import CLIENTS, CONFIG, STORAGE, VIEW
from edge.overview import overview

STATIC = Path(__file__).parent / "static"
ASSETS = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "world.svg": "image/svg+xml",
}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        STATIC / "dashboard.html", headers={**HEADERS, "Content-Type": "text/html"}
    )


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name, headers={**HEADERS, "Content-Type": ASSETS[name]})


async def data(request: web.Request) -> web.Response:
    admin(request, "the dashboard")
    config, view = request.app[CONFIG], request.app[VIEW]
    health = await view.health([r.name for r in config.regions], request.app[STORAGE].reasons())
    geo = request.app[CLIENTS].geo.database
    now = time.time()
    doc = overview(health, config.regions, view.heartbeats, view.scaling.decisions, geo, now)
    return web.json_response(doc.model_dump(mode="json", by_alias=True))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/dashboard", page)
    router.add_get("/dashboard/{name}", asset)
    router.add_get("/v1/federation/dashboard", data)
