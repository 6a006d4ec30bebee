"""``GET /openapi.json``: the HTTP API described from the same pydantic models the handlers use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from edge import headers as headers_rules
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


# What each error status may mean (the JSON's code); 429 and 503 carry Retry-After.
_MEANING = {
    400: "bad_request: a header, parameter or body broke a rule (the message names it)",
    401: "unauthorized: no API key, or an unknown or revoked one",
    403: "forbidden: the key does not cover the app or operation",
    408: "body_timeout: the body did not arrive in time (the connection is closed)",
    413: "payload_too_large",
    429: "rate_limited (the key's rate) or queue_full (the app's max_depth)",
    503: "unavailable (etcd, or this edge cannot check keys), storage_full, or overloaded "
    "(this edge's max_connections): retry after Retry-After",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}


def _errors(*codes: int) -> dict[str, Any]:
    """The given statuses, and those every request under /v1/ may get (auth, limits)."""
    every = (400, 401, 403, 429, 503)
    return {
        str(c): {
            "description": _MEANING.get(c, "error"),
            **_json("ErrorBody"),
            **({"headers": _RETRY_AFTER} if c in (429, 503) else {}),
        }
        for c in sorted({*codes, *every})
    }


def _task_headers(regions: list[str], max_wait: float) -> list[dict[str, Any]]:
    """The submit headers, with the rules the edge enforces (``edge/headers.py``); a value
    outside them is a 400 naming the header and the rule."""
    region_list = f"^({'|'.join(regions)})(,({'|'.join(regions)}))*$"
    headers = {
        "X-Spillover-Region": (
            "Hard pin: a region, or a comma list of allowed regions",
            {"type": "string", "pattern": region_list, "maxLength": headers_rules.MAX_REGIONS},
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
        "X-Spillover-Webhook": (
            "An https URL the final status is POSTed to, signed",
            {
                "type": "string",
                "format": "uri",
                "pattern": "^https://[!-~]+$",
                "maxLength": headers_rules.MAX_WEBHOOK,
            },
        ),
        "Idempotency-Key": (
            "A retried submit with the same key and app returns the same task",
            {
                "type": "string",
                "pattern": "^[ -~]+$",
                "minLength": 1,
                "maxLength": headers_rules.MAX_IDEMPOTENCY_KEY,
            },
        ),
        "Prefer": (
            "RFC 7240 preferences; respond-async: answer 202 at once (others are ignored)",
            {"type": "string", "pattern": "^[ -~]*$", "maxLength": headers_rules.MAX_PREFER},
        ),
    }
    return [
        {"name": h, "in": "header", "required": False, "description": d, "schema": schema}
        for h, (d, schema) in headers.items()
    ]


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (TaskStatus, AppSpec, AppLoad, FederationHealth, ErrorBody):
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
    # Every /v1/ route needs a key when the edge runs with auth (the default); the probes,
    # metrics and this document are open (``security: []``).
    bearer = {"type": "http", "scheme": "bearer", "description": "an API key: sk_..."}
    return {"schemas": schemas, "securitySchemes": {"apikey": bearer}}


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
    task_status = {"description": "task status", **_json("TaskStatus")}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Spillover edge", "version": "1"},
        "security": [{"apikey": []}],
        "paths": {
            "/v1/apps/{app}/{function}": {
                "post": {
                    "summary": "Submit a task (synchronous unless asked otherwise)",
                    "parameters": submit_params,
                    "requestBody": {
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}
                    },
                    "responses": {
                        "200": {
                            "description": "the handler's result",
                            "content": {"*/*": {"schema": {}}},
                        },
                        "202": task_status,
                        **_errors(404, 408, 409, 413, 415, 422, 500, 502, 504),
                    },
                }
            },
            "/v1/tasks/{id}": {
                "get": {
                    "summary": "Task status",
                    "parameters": [TASK],
                    "responses": {"200": task_status, **_errors(404, 503)},
                },
                "delete": {
                    "summary": "Cancel",
                    "parameters": [TASK],
                    "responses": {"200": task_status, **_errors(404, 409, 503)},
                },
            },
            "/v1/tasks/{id}/result": {
                "get": {
                    "summary": "The result, waiting up to ?wait= seconds",
                    "parameters": [
                        TASK,
                        {
                            "name": "wait",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "number", "minimum": 0, "maximum": max_wait},
                        },
                    ],
                    "responses": {
                        "200": {"description": "the result", "content": {"*/*": {"schema": {}}}},
                        "202": task_status,
                        **_errors(400, 404, 409, 500, 502, 503, 504),
                    },
                }
            },
            "/v1/tasks/{id}/events": {
                "get": {
                    "summary": "Server-sent events: state, progress and log, then the final state",
                    "parameters": [TASK],
                    "responses": {
                        "200": {
                            "description": "an event stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_errors(403, 404, 503),
                    },
                }
            },
            "/v1/apps": {
                "get": {
                    "summary": "Deployed apps",
                    "responses": {"200": {"description": "apps", **_json("AppList")}, **_errors()},
                }
            },
            "/v1/apps/{app}": {
                "put": {
                    "summary": "Deploy or update (spillover.toml, or its JSON)",
                    "parameters": [APP],
                    "requestBody": {
                        "content": {
                            "text/plain": {
                                "schema": {"type": "string", "description": "spillover.toml"}
                            },
                            "application/json": {"schema": {"type": "object"}},
                        }
                    },
                    "responses": {
                        "200": {"description": "updated", **_json("AppSpec")},
                        "201": {"description": "deployed", **_json("AppSpec")},
                        **_errors(408, 413, 422),
                    },
                },
                "get": {
                    "summary": "Spec, replicas and queue per region",
                    "parameters": [APP],
                    "responses": {
                        "200": {"description": "the app", **_json("AppInfo")},
                        **_errors(404, 503),
                    },
                },
                "delete": {
                    "summary": "Remove",
                    "parameters": [APP],
                    "responses": {"204": {"description": "removed"}, **_errors(404, 503)},
                },
            },
            "/v1/federation/health": {
                "get": {
                    "summary": "Federation health, from what regions and edges publish in etcd",
                    "responses": {
                        "200": {"description": "health", **_json("FederationHealth")},
                        **_errors(),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {"200": {"description": "alive"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: etcd reachable and (with auth) the API keys current",
                    "security": [],
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3"}},
                }
            },
        },
        "components": _components(),
    }
