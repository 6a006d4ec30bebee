"""For webhook receivers: check that a POST came from the federation and is fresh.

    from spillover.webhooks import verify, InvalidSignature

    event = verify(body, request.headers, secret)   # `spillover keys webhook-secret --app X`
    event["task"]["state"], event["result"]          # the task's final status, its result's path

The signature (``X-Spillover-Signature: t=<unix seconds>,v1=<HMAC-SHA256>``) covers the
timestamp and the raw body; one older than five minutes is refused, so a captured delivery
cannot be replayed later. Pass the body exactly as received, before any JSON parsing.

Each app has its own secret. After ``spillover keys webhook-secret --app X --rotate`` the old
one signs too for an overlap (a day by default): deliveries then carry one ``v1=`` per secret,
and either verifies. A receiver changing over may also pass both of its secrets, as a list.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from federation import webhooks

HEADER = webhooks.HEADER
TOLERANCE = webhooks.TOLERANCE


class InvalidSignature(ValueError):
    """The delivery is not signed with the secret, or is older than :data:`TOLERANCE` s."""


Secret = str | bytes


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: Secret | Sequence[Secret],
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """The delivery's JSON (``{"task": <status>, "result": "/v1/tasks/<id>/result"}``) if its
    signature is good for the secret (or one of the secrets); else :class:`InvalidSignature`.
    ``headers`` may be any mapping (its keys are matched without regard to case)."""
    header = _get(headers, HEADER)
    if header is None:
        raise InvalidSignature(f"no {HEADER} header")
    given = [secret] if isinstance(secret, str | bytes) else list(secret)
    keys = [s.encode() if isinstance(s, str) else s for s in given]
    if not webhooks.verify(keys, body, header, time.time() if now is None else now):
        raise InvalidSignature(
            f"{HEADER} does not match the body and secret, or is over {TOLERANCE:g} s old"
        )
    value: dict[str, Any] = json.loads(body)
    return value


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)
