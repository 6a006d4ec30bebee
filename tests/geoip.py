"""A small GeoLite2 City–format database, built with mmdb-writer and read by the real geoip2
reader: London, Ashburn and Mumbai blocks, as MaxMind's own test data places them."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MmdbF64, MMDBWriter
from netaddr import IPSet

CITIES = {
    "81.2.69.0/24": ("London", 51.5142, -0.0931),  # MaxMind's test block for London
    "3.80.0.0/12": ("Ashburn", 39.0437, -77.4875),
    "49.36.0.0/14": ("Mumbai", 19.0748, 72.8856),
}


def build(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-City", ipv4_compatible=True,
                        languages=["en"], description="Spillover tests")  # fmt: skip
    for network, (city, lat, lon) in CITIES.items():
        writer.insert_network(
            IPSet([network]),
            {
                "city": {"names": {"en": city}},
                "location": {"latitude": MmdbF64(lat), "longitude": MmdbF64(lon)},
            },
        )
    writer.to_db_file(str(path))
    return path
