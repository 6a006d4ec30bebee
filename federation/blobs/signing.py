"""Signed, expiring URLs for the fs store's ``GET /internal/blobs/{name}``.

``?exp=<unix seconds>&sig=<hex HMAC-SHA256(secret, "<path>\\n<exp>")>``. The secret is the
federation's (in etcd); the host is not signed, so a URL works through any address of the node.
"""

from __future__ import annotations

import hashlib
import hmac

import yarl

TTL = 300.0  # a reader signs just before it fetches; 5 minutes covers a slow 1 GiB transfer


def _mac(secret: bytes, path: str, exp: int) -> str:
    return hmac.new(secret, f"{path}\n{exp}".encode(), hashlib.sha256).hexdigest()


def sign(secret: bytes, url: str, now: float, ttl: float = TTL) -> str:
    u = yarl.URL(url)
    exp = int(now + ttl)
    return str(u.with_query(exp=str(exp), sig=_mac(secret, u.path, exp)))


def valid(secret: bytes, path: str, exp: str, sig: str, now: float) -> bool:
    if not exp.isdigit() or int(exp) < now:
        return False
    return hmac.compare_digest(_mac(secret, path, int(exp)), sig)
