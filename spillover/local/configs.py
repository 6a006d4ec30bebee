"""The local federation's regions and its processes' configs: a :class:`RegionConfig` per region
and one :class:`EdgeConfig`, built as the models the processes load (so a bad value fails here,
with the model's own message) and written as the TOML an operator would write for them."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from pydantic import BaseModel

from edge.config import EdgeConfig, RegionPoint
from federation.appspec import NAME_PATTERN
from federation.blobs.config import BlobConfig
from federation.etcd_tls import EtcdTls
from federation.topology import EtcdConfig
from regional.config import RegionConfig
from spillover.local.etcd import free_port

DEFAULT_REGIONS = ["us-east-1=39.0,-77.5", "eu-west-1=53.3,-6.3", "ap-south-1=19.1,72.9"]
# etcd's --quota-backend-bytes here, and what the edge and agents measure its space against.
QUOTA = 2 << 30


@dataclass(frozen=True)
class Region:
    name: str
    lat: float
    lon: float


def parse_region(text: str) -> Region:
    """``name=lat,lon``, e.g. ``us-east-1=39.0,-77.5``."""
    try:
        name, coords = text.split("=")
        lat, lon = (float(x) for x in coords.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected name=lat,lon") from None
    if not re.fullmatch(NAME_PATTERN, name) or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError(f"{text!r}: a region name and lat/lon in range")
    return Region(name, lat, lon)


def etcd_config(endpoints: list[str], tls: EtcdTls | None) -> EtcdConfig:
    return EtcdConfig(endpoints=tuple(endpoints), quota_bytes=QUOTA, tls=tls)


def region_config(
    region: Region,
    regions: list[Region],
    data: Path,
    etcd: EtcdConfig,
    app_root: Path,
) -> RegionConfig:
    return RegionConfig(
        name=region.name,
        lat=region.lat,
        lon=region.lon,
        peers=tuple(p.name for p in regions if p != region),  # take any region's tasks: spillover
        app_root=app_root,
        etcd=etcd,
        metrics_port=free_port(),
        blobs=BlobConfig(dir=(data / "blobs" / region.name).resolve()),
        webhook_private_targets=True,  # local development: receivers on this machine
    )


def edge_config(
    regions: list[Region], data: Path, etcd: EtcdConfig, port: int, auth: bool
) -> EdgeConfig:
    return EdgeConfig(
        id="edge-0",
        region=regions[0].name,
        regions=tuple(RegionPoint(name=r.name, lat=r.lat, lon=r.lon) for r in regions),
        port=port,
        auth=auth,  # local development: no API keys, unless --auth
        allow_http_webhooks=True,
        etcd=etcd,
        blobs=BlobConfig(dir=(data / "blobs" / "edge-0").resolve()),
    )


def write_toml(config: BaseModel, path: Path) -> Path:
    """``config`` as a TOML file: the keys it was given, so every other key keeps the default
    of the process that reads it."""
    fields = config.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    path.write_text(tomli_w.dumps(fields))
    return path
