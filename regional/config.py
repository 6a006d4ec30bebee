"""``region.toml``: one region's agent."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from federation.appspec import NAME_PATTERN, describe
from federation.errors import InvalidConfig
from federation.topology import EtcdConfig


class RegionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    # Other regions whose partitions this agent follows, so it can take their tasks (spillover).
    peers: tuple[str, ...] = ()
    etcd: EtcdConfig = EtcdConfig()
    app_root: Path = Path(".")  # where replicas import handlers from
    # Replicas per app until the autoscaler sets them; default max(min_replicas, 1).
    replicas: dict[str, int] = {}
    lease_ttl: int = Field(default=5, ge=2, le=60)
    heartbeat_interval: float = Field(default=1.0, gt=0, le=30)

    @property
    def partitions(self) -> tuple[str, ...]:
        return tuple(sorted({self.name, *self.peers}))

    @classmethod
    def load(cls, path: Path, env: Mapping[str, str]) -> RegionConfig:
        try:
            data: dict[str, Any] = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise InvalidConfig(f"{path}: {e}") from None
        if "etcd" not in data and "SPILLOVER_ETCD_ENDPOINTS" in env:
            data["etcd"] = EtcdConfig.from_env(env).model_dump()
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise InvalidConfig(f"{path}: {describe(e)}") from None
