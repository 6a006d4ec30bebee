"""What regions' agents and edges publish about themselves, under their leases: the health API
and the autoscaler read it. A region whose key vanished (lease expired) is down."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AppLoad(BaseModel):
    model_config = ConfigDict(frozen=True)

    app: str
    replicas: int  # running processes, starting ones included
    ready_replicas: int
    desired_replicas: int
    slots: int  # replica_concurrency x ready replicas
    busy_slots: int
    queue_depth: int  # queued tasks this region may take now
    oldest_wait_ms: float


class RegionHeartbeat(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    lat: float
    lon: float
    agent: str
    at: float  # epoch seconds
    apps: tuple[AppLoad, ...] = ()


class EdgeHeartbeat(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    region: str
    url: str
    at: float  # epoch seconds
