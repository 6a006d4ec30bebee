from __future__ import annotations

import json

import pytest

from federation.webhooks import TOLERANCE, sign
from spillover.webhooks import InvalidSignature, verify

SECRET = "ab" * 32  # as `spillover keys webhook-secret --app X` prints it
BODY = json.dumps({"task": {"id": "t1", "state": "succeeded"}, "result": "/v1/tasks/t1/result"})


def signed(body: str = BODY, t: int = 1000) -> dict[str, str]:
    return {"x-spillover-signature": sign([SECRET.encode()], body.encode(), t)}


def test_a_good_delivery_is_its_json_whatever_the_header_case() -> None:
    event = verify(BODY.encode(), signed(), SECRET, now=1000)
    assert event["task"]["state"] == "succeeded" and event["result"] == "/v1/tasks/t1/result"
    assert verify(BODY.encode(), signed(), SECRET.encode(), now=1000) == event


@pytest.mark.parametrize(
    ("body", "headers", "now", "reason"),
    [
        (BODY + " ", signed(), 1000, "does not match"),
        (BODY, signed(), 1000 + TOLERANCE + 1, "old"),
        (BODY, {}, 1000, "no X-Spillover-Signature"),
        (BODY, {"X-Spillover-Signature": "t=1000,v1=00"}, 1000, "does not match"),
    ],
)
def test_a_bad_delivery_is_refused(
    body: str, headers: dict[str, str], now: float, reason: str
) -> None:
    with pytest.raises(InvalidSignature, match=reason):
        verify(body.encode(), headers, SECRET, now=now)


def test_during_a_rotation_either_secret_verifies_and_a_receiver_may_hold_both() -> None:
    old, new = "cd" * 32, "ef" * 32
    headers = {"X-Spillover-Signature": sign([new.encode(), old.encode()], BODY.encode(), 1000)}
    for secret in (old, new, [old, new], [new.encode(), "00"]):
        assert verify(BODY.encode(), headers, secret, now=1000)["task"]["id"] == "t1"
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(BODY.encode(), headers, SECRET, now=1000)
