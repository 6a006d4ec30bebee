"""Webhook signatures and each app's signing secrets.

``X-Spillover-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`` — the
timestamp is signed too, so a receiver can refuse replays older than a few minutes. Each app has
its own secret (``spillover keys webhook-secret --app X`` prints it): one app's receivers cannot
forge another app's deliveries. Rotating it keeps the previous secret signing for an overlap, and
meanwhile a delivery carries one ``v1=`` per secret (``t=…,v1=<new>,v1=<old>``, as Stripe does),
so a receiver still holding the old secret keeps verifying until it has the new one.

The secret is created with the app's first deploy (``apps.py``), by whoever may deploy: with etcd
RBAC only the admin writes secrets (``etcd_rbac.py``); agents read them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from federation import keys

if TYPE_CHECKING:  # receivers import this module for verify(): no etcd client (grpc) for them
    from federation.etcd import Etcd

HEADER = "X-Spillover-Signature"
TOLERANCE = 300.0  # seconds a receiver should accept a signature for
OVERLAP = 86_400.0  # seconds the previous secret still signs after a rotation, by default


def _mac(secret: bytes, body: bytes, t: int) -> str:
    return hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret_keys: Sequence[bytes], body: bytes, t: int) -> str:
    """The header: one ``v1=`` per secret, the newest first."""
    return ",".join([f"t={t}", *(f"v1={_mac(k, body, t)}" for k in secret_keys)])


def verify(secret_keys: Sequence[bytes], body: bytes, header: str, now: float) -> bool:
    """What a receiver runs: a ``v1=`` of the header matches one of its secrets, and the
    signature is fresh."""
    try:
        fields = [part.split("=", 1) for part in header.split(",")]
        (t,) = [int(v) for k, v in fields if k == "t"]
    except ValueError:
        return False
    given = [v for k, v in fields if k == "v1"]
    if abs(now - t) > TOLERANCE:
        return False
    wanted = [_mac(k, body, t) for k in secret_keys]
    return any(hmac.compare_digest(w, g) for w in wanted for g in given)


def new_secret() -> str:
    return secrets.token_hex(32)


@dataclass(frozen=True)
class AppSecrets:
    """An app's signing secrets: the current one, and after a rotation the previous one, which
    signs too until ``previous_until`` (epoch seconds)."""

    current: str
    previous: str | None = None
    previous_until: float = 0.0

    def signing(self, now: float) -> list[bytes]:
        """What a delivery at ``now`` is signed with, the newest first."""
        out = [self.current.encode()]
        if self.previous is not None and now < self.previous_until:
            out.append(self.previous.encode())
        return out

    def rotated(self, new: str, now: float, overlap: float) -> AppSecrets:
        """``new`` becomes the current secret; the current one signs on for ``overlap``
        seconds. An earlier previous one stops at once (two at most)."""
        return replace(self, current=new, previous=self.current, previous_until=now + overlap)

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, value: bytes) -> AppSecrets:
        return cls(**json.loads(value))


async def app_secrets(etcd: Etcd, root: str, app: str) -> AppSecrets:
    """The app's secrets; created if absent (an app deployed before secrets were per app).
    Where etcd RBAC is on only the admin may create one, and this raises PermissionDenied."""
    from federation.etcd import get_or_create

    key = keys.webhook_secrets(root, app)
    return AppSecrets.decode(await get_or_create(etcd, key, AppSecrets(new_secret()).encode()))


async def rotate(etcd: Etcd, root: str, app: str, now: float, overlap: float) -> AppSecrets:
    """A new current secret for the app (the admin's: ``spillover keys webhook-secret
    --rotate``). Compare-and-set, so two rotations at once do not lose one."""
    from federation.etcd import absent, mod_is, put

    key = keys.webhook_secrets(root, app)
    while True:
        kv = await etcd.get(key)
        if kv is None:
            rotated, compare = AppSecrets(new_secret()), absent(key)
        else:
            rotated = AppSecrets.decode(kv.value).rotated(new_secret(), now, overlap)
            compare = mod_is(key, kv.mod_revision)
        if (await etcd.txn([compare], [put(key, rotated.encode())])).succeeded:
            return rotated
