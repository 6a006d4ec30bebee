"""``region.toml``: one region's agent."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from federation.appspec import NAME_PATTERN
from federation.blobs.config import BlobConfig
from federation.topology import EtcdConfig
from regional.capacity import CapacityConfig


class RegionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    # Other regions whose partitions this agent follows, so it can take their tasks (spillover).
    peers: tuple[str, ...] = ()
    etcd: EtcdConfig = EtcdConfig()
    app_root: Path = Path(".")  # where replicas import handlers from (readable by their users)
    # Who runs replicas when the agent is root: None, each app's own user (spillover-<app>,
    # created on first use); a name, that existing user for every app (docs/security.md).
    replica_user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    # The autoscaler sizes each app's pool within its spec's min/max; an app listed here is
    # pinned to that many replicas instead. With autoscale off, unpinned apps run
    # max(min_replicas, 1).
    autoscale: bool = True
    # Per GPU-hour, in any currency the regions share: a region scales in onto a cheaper
    # peer's spare slots, never a dearer one's (docs/autoscaler.md). Equal prices: by name.
    gpu_price: float = Field(default=0.0, ge=0, le=10_000)
    replicas: dict[str, int] = {}
    capacity: CapacityConfig = CapacityConfig()  # what the autoscaler sizes: processes or nodes
    blobs: BlobConfig = BlobConfig()  # results over the inline limit
    blob_host: str = "127.0.0.1"  # fs: where this agent serves its blobs to the edges
    blob_port: int = Field(default=0, ge=0, le=65535)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # Prometheus, on loopback
    webhook_attempts: int = Field(default=8, ge=1, le=20)
    webhook_backoff: float = Field(default=1.0, gt=0, le=60)  # first retry delay; doubles
    # Webhooks to private, loopback and link-local addresses: refused unless this (local dev).
    webhook_private_targets: bool = False
    lease_ttl: int = Field(default=5, ge=2, le=60)
    heartbeat_interval: float = Field(default=1.0, gt=0, le=30)

    @property
    def partitions(self) -> tuple[str, ...]:
        return tuple(sorted({self.name, *self.peers}))
