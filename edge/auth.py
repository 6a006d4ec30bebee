"""Who may call what: ``Authorization: Bearer <key>`` checked against the grants followed from
etcd. Liveness, readiness, metrics and the OpenAPI document stay open (probes and scrapers carry
no keys); everything under ``/v1/`` needs a key unless the config turns auth off (local dev)."""

from __future__ import annotations

from aiohttp import web

from edge.keys import CONFIG, GRANT, VIEW, Handler
from federation import keys
from federation.apikeys import Grant, digest
from federation.errors import Forbidden, Unauthorized

ANYONE = Grant(name="anyone", apps=("*",), admin=True)  # what every caller is with auth off


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        request[GRANT] = await _grant(request) if request.app[CONFIG].auth else ANYONE
    return await handler(request)


async def _grant(request: web.Request) -> Grant:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send an API key as Authorization: Bearer <key>")
    view, d = request.app[VIEW], digest(key.strip())
    grant = view.grants.get(d)
    if grant is None:  # the followed copy may lag a new key by a moment: ask etcd
        kv = await view.control.get(keys.apikey(view.root, d))
        if kv is None:
            raise Unauthorized("unknown or revoked API key")
        grant = Grant.model_validate_json(kv.value)
    return grant


def may_use(request: web.Request, app: str) -> None:
    grant = request[GRANT]
    if not grant.may_use(app):
        raise Forbidden(f"key {grant.name!r} is not granted app {app!r}")


def admin(request: web.Request, what: str = "deploying") -> None:
    grant = request[GRANT]
    if not grant.admin:
        raise Forbidden(f"key {grant.name!r} is not an admin key; {what} needs one")
