"""``edge.toml``: one edge."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from federation.appspec import NAME_PATTERN
from federation.blobs.config import BlobConfig
from federation.topology import EtcdConfig


class RegionPoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class EdgeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}")
    region: str = Field(
        pattern=NAME_PATTERN
    )  # where this edge stands; home of clients we cannot place
    regions: tuple[RegionPoint, ...] = Field(min_length=1)  # every region of the federation
    host: str = "127.0.0.1"
    tls_cert: Path | None = None  # PEM chain; without it, plain HTTP, on loopback only
    tls_key: Path | None = None
    auth: bool = True  # API keys required under /v1/; false only for local development
    # The edge's copy of the API keys (edge/grants.py): re-listed every keys_resync seconds
    # beside its watch; older than keys_stale_after, the edge is unready and answers 503 rather
    # than trust it. A key etcd does not know is not asked about again for unknown_key_ttl s.
    keys_resync: float = Field(default=5, gt=0, le=300)
    keys_stale_after: float = Field(default=20, gt=0, le=3600)
    unknown_key_ttl: float = Field(default=5, ge=0, le=300)
    allow_http_webhooks: bool = False  # webhooks must be https unless this (local development)
    port: int = Field(default=8080, ge=0, le=65535)
    etcd: EtcdConfig = EtcdConfig()
    trusted_proxies: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    # A GeoLite2 City database. `spillover edge` fills it in when absent (SPILLOVER_GEOIP_DB, a
    # system database, or the bundled one: edge/client.py); None here means no client location.
    geoip_db: Path | None = None
    default_sync_timeout: float = Field(default=60, gt=0)  # X-Spillover-Timeout when absent
    max_sync_timeout: float = Field(default=300, gt=0)
    # On shutdown, synchronous waits get this long to finish, then answer 202 with the task id.
    drain_grace: float = Field(default=5, ge=0, le=60)
    # One log line per request costs ~10 % of the edge's CPU at 1,000 requests/s: off unless
    # asked for (Prometheus counts requests either way).
    access_log: bool = False
    blobs: BlobConfig = BlobConfig()  # bodies and results over the inline limit
    # A request body must start within body_timeout seconds and then keep up body_min_rate
    # bytes/s on average, else 408 (edge/bodies.py): a trickling client cannot hold a slot.
    body_timeout: float = Field(default=30, gt=0, le=3600)
    body_min_rate: float = Field(default=16384, gt=0)
    # Requests under /v1/ in progress at once; past it 503 "overloaded" with Retry-After.
    max_connections: int = Field(default=1000, ge=1)
    # An idle keep-alive connection (or one still sending its request headers) is closed after
    # this many seconds (aiohttp's keepalive_timeout).
    idle_timeout: float = Field(default=75, gt=0, le=3600)
    # Server-sent events: a ": ping" comment this often keeps an idle stream open through
    # proxies (most cut idle connections after 60 s) and finds clients that went away; a
    # write (event or ping) the client has not taken within sse_send_timeout ends the stream.
    sse_keepalive: float = Field(default=15, gt=0, le=300)
    sse_send_timeout: float = Field(default=60, gt=0, le=3600)

    @model_validator(mode="after")
    def _tls_or_loopback(self) -> EdgeConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key: give both or neither")
        if self.tls_cert is None and not _loopback(self.host):
            raise ValueError(
                f"host = {self.host!r}: plain HTTP is for loopback only; set tls_cert and tls_key"
            )
        if not self.auth and not _loopback(self.host):
            raise ValueError(
                f"auth = false: only on a loopback host (host = {self.host!r}); an edge others "
                "can reach must demand API keys"
            )
        if self.keys_stale_after <= self.keys_resync:
            raise ValueError(
                f"keys_stale_after = {self.keys_stale_after:g}: must be more than keys_resync "
                f"({self.keys_resync:g}), or one late re-list would make the edge unready"
            )
        if self.blobs.backend == "fs" and self.blobs.url is None and self.port == 0:
            raise ValueError(
                "port = 0: other nodes could not fetch this edge's blobs; set blobs.url"
            )
        return self

    @property
    def url(self) -> str:
        scheme = "http" if self.tls_cert is None else "https"
        return f"{scheme}://{self.host}:{self.port}"

    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n) for n in self.trusted_proxies)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
