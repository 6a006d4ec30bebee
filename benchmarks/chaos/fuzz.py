"""Hostile input for scenario 13: schemathesis over the edge's own ``/openapi.json`` (as
``tests/integration/edge/test_schema.py`` uses it), with the headers a hostile client plays with
added to every operation, and oversize bodies and headers sent by hand."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

# Declared on every operation so that schemathesis fuzzes them too (the edge reads them all).
HOSTILE_HEADERS: dict[str, dict[str, Any]] = {
    "Authorization": {"type": "string"},
    "X-Spillover-Webhook": {"type": "string"},
    "X-Spillover-Region": {"type": "string"},
    "X-Spillover-Prefer-Region": {"type": "string"},
    "X-Spillover-Priority": {"type": "string"},
    "X-Spillover-Timeout": {"type": "string", "maxLength": 8},
    "Idempotency-Key": {"type": "string"},
    "X-Forwarded-For": {"type": "string"},
}


@dataclass(frozen=True)
class Seen:
    what: str
    status: int  # 0: no answer (the connection broke or timed out)
    json_error: bool  # an error answer with the spec's {"error": {"code", "message"}} body

    def __str__(self) -> str:
        return f"{self.what} → {self.status or 'no answer'}"


def hostile_schema(raw: dict[str, Any]) -> dict[str, Any]:
    """The edge's schema with every hostile header declared, loosely typed, on every operation
    (where the schema already types one, its type stays: schemathesis breaks it in negative
    passes)."""
    schema = copy.deepcopy(raw)
    for item in schema["paths"].values():
        for op in item.values():
            params = op.setdefault("parameters", [])
            have = {p["name"].lower() for p in params if p.get("in") == "header"}
            for name, s in HOSTILE_HEADERS.items():
                if name.lower() not in have:
                    params.append({"name": name, "in": "header", "required": False, "schema": s})
    return schema


def fuzz(base: str, key: str, examples: int) -> list[Seen]:
    """Every operation, valid and invalid data, with the caller's key and with a fuzzed one."""
    import hypothesis
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase

    raw = requests.get(f"{base}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(hostile_schema(raw))
    seen: list[Seen] = []
    session = requests.Session()
    settings = hypothesis.settings(
        max_examples=examples, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck), phases=[Phase.generate],
    )  # fmt: skip
    for result in schema.get_all_operations():
        op = result.ok()  # type: ignore[union-attr]  # the edge's own schema is valid
        for mode in schemathesis.GenerationMode:
            for keyed in (True, False):
                override = {"Authorization": f"Bearer {key}"} if keyed else {}
                test = settings(hypothesis.given(op.as_strategy(generation_mode=mode))(
                    _caller(base, session, override, seen)
                ))  # fmt: skip
                # Unsatisfiable: nothing invalid to make of an operation without inputs.
                with contextlib.suppress(hypothesis.errors.Unsatisfiable):
                    test()
    return seen


def _caller(
    base: str, session: Any, override: dict[str, str], seen: list[Seen]
) -> Callable[[Any], None]:
    import requests

    def call(case: Any) -> None:
        what = f"{case.method} {case.formatted_path}"
        try:
            r = case.call(base_url=base, session=session, headers=override, timeout=30)
        except requests.RequestException as e:
            seen.append(Seen(f"{what} ({type(e).__name__})", 0, False))
            return
        seen.append(Seen(what, r.status_code, _json_error(r.content)))

    return call


def _json_error(body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
        return isinstance(error["code"], str) and isinstance(error["message"], str)
    except (ValueError, KeyError, TypeError):
        return False


async def oversize(http: aiohttp.ClientSession, base: str, key: str, app: str) -> list[Seen]:
    """Bodies over the app's limit and the edge's, headers over aiohttp's line limit, absurd
    header values: each must get a 4xx, never a 5xx or a hang."""
    auth = {"Authorization": f"Bearer {key}"}
    submit = ("POST", f"{base}/v1/apps/{app}/sleep?async=true")
    tasks = f"{base}/v1/tasks"

    def h(**headers: str) -> dict[str, str]:
        return {**auth, **{k.replace("_", "-"): v for k, v in headers.items()}}

    cases: list[tuple[str, tuple[str, str], dict[str, str], bytes]] = [
        ("a body over max_payload_bytes", submit, auth, b"x" * 4097),
        ("a 4 MiB body", submit, auth, b"x" * (4 << 20)),
        ("a 2 MiB app spec", ("PUT", f"{base}/v1/apps/{app}"), auth, b"x" * (2 << 20)),
        ("a 20 KiB header line", submit, h(X_Junk="j" * 20_000), b"{}"),
        ("a 300-character Idempotency-Key", submit, h(Idempotency_Key="k" * 300), b"{}"),
        ("a 6 KiB Authorization", ("GET", f"{base}/v1/apps"),
         {"Authorization": "Bearer " + "a" * 6000}, b""),
        ("X-Spillover-Region of 2,000 commas", submit, h(X_Spillover_Region="," * 2000), b"{}"),
        ("X-Spillover-Priority = 10**400", submit, h(X_Spillover_Priority="1" + "0" * 400), b"{}"),
        ("X-Spillover-Timeout = nan", submit, h(X_Spillover_Timeout="nan"), b"{}"),
        ("X-Spillover-Timeout = inf", submit, h(X_Spillover_Timeout="inf"), b"{}"),
        ("an X-Spillover-Webhook of 5,000 characters", submit,
         h(X_Spillover_Webhook="https://x/" + "w" * 5000), b"{}"),
        ("a task id of 4,000 characters", ("GET", f"{tasks}/{'t' * 4000}"), auth, b""),
        ("a task id in a partition that does not exist",
         ("GET", f"{tasks}/01J0000000000000000000000.nowhere"), auth, b""),
        ("?wait=1e400", ("GET", f"{tasks}/x/result?wait=1e400"), auth, b""),
        ("200 headers", submit, h(**{f"X_H{i}": "v" for i in range(200)}), b"{}"),
    ]  # fmt: skip
    seen = []
    for what, (method, url), headers, body in cases:
        try:
            async with http.request(method, url, headers=headers, data=body or None) as r:
                seen.append(Seen(what, r.status, _json_error(await r.read())))
        except (aiohttp.ClientError, TimeoutError) as e:
            seen.append(Seen(f"{what} ({type(e).__name__})", 0, False))
    return seen
