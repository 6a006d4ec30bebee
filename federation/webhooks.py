"""Webhook signatures, as a receiver checks them.

``X-Spillover-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`` — the
timestamp is signed too, so a receiver can refuse replays older than a few minutes. The secret is
the federation's (``spillover keys webhook-secret`` prints it), created on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from federation import keys

if TYPE_CHECKING:  # receivers import this module for verify(): no etcd client (grpc) for them
    from federation.etcd import Etcd
    from federation.queue import Queue

HEADER = "X-Spillover-Signature"
TOLERANCE = 300.0  # seconds a receiver should accept a signature for


def sign(secret: bytes, body: bytes, t: int) -> str:
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, now: float) -> bool:
    """What a receiver runs: the signature matches and is fresh."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        t = int(fields["t"])
    except (ValueError, KeyError):
        return False
    fresh = abs(now - t) <= TOLERANCE
    return fresh and hmac.compare_digest(sign(secret, body, t), header)


async def secret(etcd: Etcd, root: str) -> bytes:
    """The federation's signing secret; the first caller creates it (create-if-absent, so two
    regions starting at once agree on one)."""
    from federation.etcd import get_or_create

    return await get_or_create(etcd, keys.webhook_secret(root), secrets.token_hex(32).encode())


async def delivered(queue: Queue, partition: str, task_id: str) -> bool:
    """Whether the task's webhook was delivered (or given up on) already: a restarted agent
    replays the finished tasks and must not send again."""
    return await queue.etcd(partition).get(keys.hooked(queue.root, partition, task_id)) is not None


async def mark_delivered(queue: Queue, partition: str, task_id: str, outcome: str) -> None:
    """Record how the task's webhook went (``delivered``, or why it was given up on); swept
    with the task."""
    await queue.etcd(partition).put(keys.hooked(queue.root, partition, task_id), outcome.encode())
