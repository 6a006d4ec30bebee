"""Where webhooks may go: public addresses only, unless the region's config allows private ones
(local development). A client names the URL, so without this an agent would POST to whatever
the client points it at inside the operator's network (SSRF): the cloud metadata service, etcd,
another service's admin port.

Checked where the address is known, so a name that resolves to a private address (or is
re-pointed there between a check and the connect: DNS rebinding) is refused too: the resolver
filters what it returns, literal IPs are checked before the request, and redirects are not
followed.
"""

from __future__ import annotations

import ipaddress
import socket

import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class PrivateTarget(Exception):
    """The webhook's host is (or resolves only to) a non-public address: never retried."""


def check_literal(url: str) -> None:
    """A URL whose host is an IP address skips the resolver: check it here."""
    host = yarl.URL(url).host or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    if not address.is_global:
        raise PrivateTarget(f"webhook host {host} is not a public address")


class PublicOnlyResolver(AbstractResolver):
    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if ipaddress.ip_address(r["host"]).is_global]
        if not public:
            raise PrivateTarget(f"webhook host {host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self._inner.close()
