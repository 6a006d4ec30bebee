"""``GET /openapi.json``: the HTTP API described from the same pydantic models the handlers use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from edge import headers as rules
from edge.errors import ERROR_CODES
from edge.overview import Overview
from federation.appspec import AppSpec
from federation.health import FederationHealth
from federation.heartbeat import AppLoad
from federation.task import TaskStatus


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(name)}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _error(c) for c in codes}


def _error(status: int) -> dict[str, Any]:
    headers = {}
    if status in (429, 503):
        headers["Retry-After"] = _header("Seconds after which a retry may succeed")
    if status == 401:
        headers["WWW-Authenticate"] = _header('Bearer realm="spillover"')
    if status == 405:
        headers["Allow"] = _header("The route's methods")
    return {
        "description": "error",
        **_json("ErrorBody"),
        **({"headers": headers} if headers else {}),
    }


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


# On every answer about a task (submit, status, result, cancel).
TASK_HEADERS = {
    "X-Spillover-Task-Id": _header("The task's id"),
    "X-Spillover-Region": _header("Where the task ran (once it started)"),
    "X-Spillover-Home-Region": _header("The task's home region"),
    "Server-Timing": _header("queue;dur=<ms>, run;dur=<ms>"),
}
STILL_RUNNING = {
    "Location": _header("/v1/tasks/{id}"),
    "Retry-After": _header("Seconds before asking again"),
}
# Every /v1/ route: no key or an unknown one is 401; keys without the app or admin get 403.
KEYED = (401, 403)
# And what any request under /v1/ may meet before its route runs: a header breaking its rule
# (400), the key's rate (429), this edge's request cap or stale keys (503).
EVERY_V1 = (400, *KEYED, 429, 503)


def _task_headers(regions: list[str], max_wait: float) -> list[dict[str, Any]]:
    """The submit headers, with the rules the edge enforces (``edge/headers.py``); a value
    outside them is a 400 naming the header and the rule."""
    region_list = f"^({'|'.join(regions)})(,({'|'.join(regions)}))*$"
    headers = {
        "X-Spillover-Region": (
            "Hard pin: a region, or a comma list of allowed regions",
            {"type": "string", "pattern": region_list, "maxLength": rules.MAX_REGIONS},
        ),
        "X-Spillover-Prefer-Region": (
            "Soft pin: the home region; the task may still spill over",
            {"type": "string", "enum": regions},
        ),
        "X-Spillover-Priority": (
            "Higher runs first within an app (default 5)",
            {"type": "integer", "minimum": 0, "maximum": 9},
        ),
        "X-Spillover-Timeout": (
            "Seconds a synchronous call waits before answering 202",
            {"type": "number", "minimum": 0, "maximum": max_wait},
        ),
        "Idempotency-Key": (
            "A retried submit with the same key (of the same API key) returns the same task; "
            "the same key for another request is 422",
            {
                "type": "string",
                "pattern": "^[ -~]+$",
                "minLength": 1,
                "maxLength": rules.MAX_IDEMPOTENCY_KEY,
            },
        ),
        "Prefer": (
            "RFC 7240 preferences; respond-async: answer 202 at once (others are ignored)",
            {"type": "string", "pattern": "^[ -~]*$", "maxLength": rules.MAX_PREFER},
        ),
        "X-Spillover-Webhook": (
            "An https URL that gets the final status, signed (X-Spillover-Signature)",
            {
                "type": "string",
                "format": "uri",
                "pattern": "^https://[!-~]+$",
                "maxLength": rules.MAX_WEBHOOK,
            },
        ),
        "X-Forwarded-For": (
            "The client's address, believed only from a trusted proxy (geolocation)",
            {"type": "string"},
        ),
    }
    return [
        {"name": h, "in": "header", "required": False, "description": d, "schema": schema}
        for h, (d, schema) in headers.items()
    ]


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (TaskStatus, AppSpec, AppLoad, FederationHealth, Overview, ErrorBody):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["AppInfo"] = {
        "type": "object",
        "required": ["spec", "regions"],
        "properties": {
            "spec": _ref("AppSpec"),
            "regions": {"type": "array", "items": {"type": "object"}},
        },
    }
    schemas["AppList"] = {
        "type": "object",
        "required": ["apps"],
        "properties": {"apps": {"type": "array", "items": _ref("AppInfo")}},
    }
    bearer = {"type": "http", "scheme": "bearer", "description": "an API key (spillover keys)"}
    return {"schemas": schemas, "securitySchemes": {"apiKey": bearer}}


def _name(param: str, pattern: str) -> dict[str, Any]:
    return {
        "name": param,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": pattern},
    }


APP = _name("app", "^[a-z0-9-]{1,63}$")
FUNCTION = _name("function", "^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TASK = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def spec(regions: list[str], max_wait: float) -> dict[str, Any]:
    submit_params = [
        APP,
        FUNCTION,
        *_task_headers(regions, max_wait),
        {"name": "async", "in": "query", "required": False, "schema": {"type": "boolean"}},
    ]
    task_status = {"description": "task status", **_json("TaskStatus"), "headers": TASK_HEADERS}
    running = {**task_status, "headers": {**TASK_HEADERS, **STILL_RUNNING}}
    result = {"description": "the handler's result", "content": {"*/*": {"schema": {}}},
              "headers": TASK_HEADERS}  # fmt: skip
    wait = {"name": "wait", "in": "query", "required": False,
            "schema": {"type": "number", "minimum": 0, "maximum": max_wait}}  # fmt: skip
    html = {"content": {"text/html": {"schema": {"type": "string"}}}}
    asset = {"content": {t: {"schema": {"type": "string"}}
                         for t in ("text/javascript", "text/css", "image/svg+xml")}}  # fmt: skip
    asset_name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    paths: dict[str, Any] = {
        "/v1/apps/{app}/{function}": {"post": {
            "summary": "Submit a task (synchronous unless asked otherwise)",
            "parameters": submit_params,
            "requestBody": {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"200": result, "202": running, **_errors(
                400, *KEYED, 404, 408, 409, 413, 415, 422, 429, 500, 502, 503, 504)},
        }},
        "/v1/tasks/{id}": {
            "get": {"summary": "Task status", "parameters": [TASK],
                    "responses": {"200": task_status, **_errors(*KEYED, 404, 503)}},
            "delete": {"summary": "Cancel", "parameters": [TASK],
                       "responses": {"200": task_status, **_errors(*KEYED, 404, 409, 503)}},
        },
        "/v1/tasks/{id}/result": {"get": {
            "summary": "The result, waiting up to ?wait= seconds",
            "parameters": [TASK, wait],
            "responses": {"200": result, "202": running,
                          **_errors(400, *KEYED, 404, 409, 500, 502, 503, 504)},
        }},
        "/v1/tasks/{id}/events": {"get": {
            "summary": "Server-sent events: state, progress and log, then the final state",
            "parameters": [TASK],
            "responses": {"200": {"description": "an event stream", "content": {
                "text/event-stream": {"schema": {"type": "string"}}}},
                **_errors(*KEYED, 404, 503)},
        }},
        "/v1/apps": {"get": {
            "summary": "Deployed apps (those the key is granted)",
            "responses": {"200": {"description": "apps", **_json("AppList")}, **_errors(401, 503)},
        }},
        "/v1/apps/{app}": {
            "put": {
                "summary": "Deploy or update (spillover.toml, or its JSON); admin key",
                "parameters": [APP],
                "requestBody": {"content": {
                    "text/plain": {"schema": {"type": "string", "description": "spillover.toml"}},
                    "application/json": {"schema": {"type": "object"}},
                }},
                "responses": {"200": {"description": "updated", **_json("AppSpec")},
                              "201": {"description": "deployed", **_json("AppSpec")},
                              **_errors(400, *KEYED, 413, 422, 503)},
            },
            "get": {"summary": "Spec, replicas and queue per region", "parameters": [APP],
                    "responses": {"200": {"description": "the app", **_json("AppInfo")},
                                  **_errors(*KEYED, 404, 503)}},
            "delete": {"summary": "Remove; admin key", "parameters": [APP],
                       "responses": {"204": {"description": "removed"},
                                     **_errors(*KEYED, 404, 503)}},
        },
        "/v1/federation/health": {"get": {
            "summary": "Federation health, from what regions and edges publish in etcd",
            "responses": {"200": {"description": "health", **_json("FederationHealth")},
                          **_errors(401)},
        }},
        "/v1/federation/dashboard": {"get": {
            "summary": "What /dashboard shows: health on a map, flows, decisions; admin key",
            "responses": {"200": {"description": "the dashboard's data", **_json("Overview")},
                          **_errors(*KEYED)},
        }},
        "/dashboard": {"get": {
            "summary": "The live dashboard page (static; its data needs an admin key)",
            "responses": {"200": {"description": "HTML", **html}},
        }},
        "/dashboard/{name}": {"get": {
            "summary": "The dashboard's script, styles and map",
            "parameters": [asset_name],
            "responses": {"200": {"description": "a static file", **asset}, **_errors(404)},
        }},
        "/healthz": {"get": {"summary": "Liveness",
                             "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {
            "summary": "Readiness: etcd reachable and (with auth) the API keys current",
            "responses": {
            "200": {"description": "ready"},
            "503": {"description": "not ready", "headers": {"Retry-After": _header("seconds")}},
        }}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics; an admin key when the edge runs with auth",
            "responses": {"200": {
                "description": "text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }, **_errors(400, *KEYED)},
        }},
        "/openapi.json": {"get": {
            "summary": "This document", "responses": {"200": {"description": "OpenAPI 3"}},
        }},
    }  # fmt: skip
    for path, operations in paths.items():
        if path.startswith("/v1/") or path == "/metrics":
            for op in operations.values():
                # A key, or none where the edge runs with auth = false (local development).
                op["security"] = [{"apiKey": []}, {}]
                if path.startswith("/v1/"):
                    op["responses"].update({str(c): _error(c) for c in EVERY_V1
                                            if str(c) not in op["responses"]})  # fmt: skip
    return {
        "openapi": "3.0.3",
        "info": {"title": "Spillover edge", "version": "1"},
        "paths": paths,
        "components": _components(),
        "x-spillover-error-codes": [
            {"code": code, "status": status, "meaning": meaning}
            for code, (status, meaning) in ERROR_CODES.items()
        ],
    }
