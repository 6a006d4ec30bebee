"""``[blobs]`` in ``edge.toml`` and ``region.toml``: where bodies and results over the inline
limit go, and how this node's store is reached and swept."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BlobConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["fs", "s3"] = "fs"
    # Bodies up to this ride in etcd with the task (etcd refuses requests over 1.5 MiB).
    inline_limit: int = Field(default=64 << 10, ge=0, le=1 << 20)
    dir: Path = Path(".spillover/blobs")  # fs: this node's blobs
    # fs: how the other nodes reach this node's /internal/blobs/ (default: its own listen URL).
    url: str | None = None
    bucket: str | None = None  # s3
    prefix: str = "blobs/"  # s3: key prefix
    s3_region: str | None = None
    endpoint_url: str | None = None  # s3: another S3 API (moto, MinIO)
    # A blob whose task record is gone is deleted by the next sweep; one younger than
    # sweep_grace is left alone (its task may be being enqueued right now).
    sweep_interval: float = Field(default=60, gt=0)
    sweep_grace: float = Field(default=60, ge=0)

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> BlobConfig:
        if self.backend == "s3" and not self.bucket:
            raise ValueError("backend = 's3' needs bucket")
        return self
