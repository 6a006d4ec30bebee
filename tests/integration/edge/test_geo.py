"""Home region from the client's location: a real GeoLite2-format database read by geoip2, and
X-Forwarded-For believed only from trusted proxies."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from federation import keys
from federation.appspec import parse_spec
from federation.heartbeat import RegionHeartbeat
from federation.session import Session
from tests import geoip
from tests.integration.conftest import REGION, Harness
from tests.integration.edge.test_edge import start_edge

pytestmark = pytest.mark.slow


async def homes(harness: Harness, tmp_path: Path, **settings: Any) -> dict[str, str]:
    """Where a client at each address gets its home region (async submits, from loopback)."""
    spec = {"app": {"name": "geo", "handler": "tests.apps.worker:Worker"},
            "placement": {"regions": [REGION, "eu-west-1"]}}  # fmt: skip
    await harness.apps.put(parse_spec(spec))
    db = geoip.build(tmp_path / "city.mmdb")
    edge = await start_edge(harness.etcd_config, geoip_db=db, **settings)
    found = {}
    try:
        for client in ("81.2.69.142", "3.84.1.1", "192.0.2.1"):
            headers = {"X-Forwarded-For": client}
            status, info, _ = await edge.call(
                "POST", "/v1/apps/geo/echo?async=true", data=b"x", headers=headers
            )
            assert status == 202
            found[client] = info["home_region"]
    finally:
        await edge.http.close()
        await edge.runner.cleanup()
    return found


@pytest.fixture
async def both_regions_alive(harness: Harness) -> Any:
    """Heartbeats for both regions (the nearest *healthy* region is home)."""
    async with Session(harness.clusters.control, ttl=5) as session:
        for name, lat, lon in ((REGION, 39.0, -77.5), ("eu-west-1", 53.3, -6.3)):
            beat = RegionHeartbeat(name=name, lat=lat, lon=lon, agent="t", at=time.time())
            key = keys.region(harness.clusters.root, name, "t")
            await harness.clusters.control.put(key, beat.model_dump_json().encode(), session.lease)
        yield


@pytest.mark.usefixtures("both_regions_alive")
async def test_a_london_client_is_homed_in_eu_west_and_an_unknown_one_at_the_edge(
    harness: Harness, tmp_path: Path
) -> None:
    assert await homes(harness, tmp_path) == {
        "81.2.69.142": "eu-west-1",  # London
        "3.84.1.1": REGION,  # Ashburn
        "192.0.2.1": REGION,  # not in the database: the edge's own region
    }


@pytest.mark.usefixtures("both_regions_alive")
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    harness: Harness, tmp_path: Path
) -> None:
    found = await homes(harness, tmp_path, trusted_proxies=())
    assert set(found.values()) == {REGION}  # located as 127.0.0.1: nowhere
