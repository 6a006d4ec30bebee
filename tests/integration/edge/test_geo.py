"""Home region from the client's location: a real GeoLite2-format database read by geoip2, and
X-Forwarded-For believed only from trusted proxies."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from edge.client import BUNDLED_DATABASE
from edge.config import RegionPoint
from federation import keys
from federation.appspec import parse_spec
from federation.heartbeat import RegionHeartbeat
from federation.session import Session
from tests import geoip
from tests.integration.conftest import REGION, Harness
from tests.integration.edge.test_edge import start_edge

pytestmark = pytest.mark.slow


THREE = (
    RegionPoint(name=REGION, lat=39.0, lon=-77.5),
    RegionPoint(name="eu-west-1", lat=53.3, lon=-6.3),
    RegionPoint(name="ap-south-1", lat=19.1, lon=72.9),
)


async def homes(
    harness: Harness,
    db: Path,
    clients: tuple[str, ...] = ("81.2.69.142", "3.84.1.1", "192.0.2.1"),
    regions: tuple[RegionPoint, ...] = THREE[:2],
    **settings: Any,
) -> dict[str, str]:
    """Where a client at each address gets its home region (async submits, from loopback)."""
    spec = {"app": {"name": "geo", "handler": "tests.apps.worker:Worker"},
            "placement": {"regions": [r.name for r in regions]}}  # fmt: skip
    await harness.apps.put(parse_spec(spec))
    edge = await start_edge(harness.etcd_config, geoip_db=db, regions=regions, **settings)
    found = {}
    try:
        for client in clients:
            headers = {"X-Forwarded-For": client}
            status, info, _ = await edge.call(
                "POST", "/v1/apps/geo/echo?async=true", data=b"x", headers=headers
            )
            assert status == 202
            found[client] = info["home_region"]
    finally:
        await edge.close()
    return found


@pytest.fixture
async def regions_alive(harness: Harness) -> Any:
    """Heartbeats for all three regions (the nearest *healthy* region is home)."""
    async with Session(harness.clusters.control, ttl=5) as session:
        for r in THREE:
            name = r.name
            beat = RegionHeartbeat(name=name, lat=r.lat, lon=r.lon, agent="t", at=time.time())
            key = keys.region(harness.clusters.root, name, "t")
            await harness.clusters.control.put(key, beat.model_dump_json().encode(), session.lease)
        yield


@pytest.mark.usefixtures("regions_alive")
async def test_a_london_client_is_homed_in_eu_west_and_an_unknown_one_at_the_edge(
    harness: Harness, tmp_path: Path
) -> None:
    assert await homes(harness, geoip.build(tmp_path / "city.mmdb")) == {
        "81.2.69.142": "eu-west-1",  # London
        "3.84.1.1": REGION,  # Ashburn
        "192.0.2.1": REGION,  # not in the database: the edge's own region
    }


@pytest.mark.usefixtures("regions_alive")
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    harness: Harness, tmp_path: Path
) -> None:
    found = await homes(harness, geoip.build(tmp_path / "city.mmdb"), trusted_proxies=())
    assert set(found.values()) == {REGION}  # located as 127.0.0.1: nowhere


@pytest.mark.usefixtures("regions_alive")
async def test_the_bundled_database_places_clients_on_a_fresh_machine(harness: Harness) -> None:
    """What a fresh clone's `spillover up` does with no GeoLite2 City installed."""
    found = await homes(
        harness, BUNDLED_DATABASE, ("49.36.0.1", "81.2.69.142", "8.8.8.8", "1.1.1.1"), THREE
    )
    assert found == {
        "49.36.0.1": "ap-south-1",  # Mumbai
        "81.2.69.142": "eu-west-1",  # London
        "8.8.8.8": REGION,  # the United States
        "1.1.1.1": "ap-south-1",  # Australia: Mumbai is nearer than Virginia or Ireland
    }
