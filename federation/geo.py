"""Where regions and clients are: great-circle distance, and the round trip it costs.

Pure. The edge picks a task's home region by distance; the autoscaler, lacking a measured round
trip between two regions, estimates one from their coordinates to judge which peers are within
an app's ``latency_budget``.
"""

from __future__ import annotations

import math

Point = tuple[float, float]  # (lat, lon) in degrees

FIBRE_KM_PER_S = 200_000.0  # light in glass: two thirds of c
ROUTE_FACTOR = 1.4  # cables are not great circles, and routers add their share


def distance_km(a: Point, b: Point) -> float:
    """Great-circle distance (haversine). London → Dublin ≈ 460 km, London → Virginia ≈ 5,900 km."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def rtt_estimate(a: Point, b: Point) -> float:
    """Seconds of round trip between two places: there and back through fibre that runs 1.4×
    the great circle. Virginia → Dublin (5,450 km) ≈ 76 ms, as measured between AWS's us-east-1
    and eu-west-1 (70–80 ms); Dublin → Mumbai ≈ 110 ms (~120); Virginia → Mumbai ≈ 183 ms
    (~190)."""
    return 2 * distance_km(a, b) * ROUTE_FACTOR / FIBRE_KM_PER_S
