"""Where a client is: its address (X-Forwarded-For only from trusted proxies) and location."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import geoip2.database
import geoip2.errors

from edge.routing import Point

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The first address, reading X-Forwarded-For right to left, that is not a trusted proxy.
    The header is believed only when the peer itself is trusted: anyone can send it."""
    chain = [peer] if peer else []
    if peer and forwarded_for and _trusted(peer, trusted):
        chain += [a.strip() for a in forwarded_for.split(",") if a.strip()]
    for addr in reversed(chain):
        if not _trusted(addr, trusted):
            return addr
    return chain[0] if chain else None


def _trusted(addr: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


class Geolocator:
    """A GeoLite2 City database, or nothing (every client then has no location)."""

    def __init__(self, reader: geoip2.database.Reader | None) -> None:
        self.reader = reader

    def locate(self, ip: str | None) -> Point | None:
        if self.reader is None or ip is None:
            return None
        try:
            loc = self.reader.city(ip).location
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return None
        if loc.latitude is None or loc.longitude is None:
            return None
        return (loc.latitude, loc.longitude)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
