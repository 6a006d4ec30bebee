"""Choosing a task's home region and allowed set. Pure: headers, client location and the healthy
regions go in; a placement comes out.

Order: a hard pin (``X-Spillover-Region``, one region or an allowed set) first, then a soft pin
(``X-Spillover-Prefer-Region``), else the healthy region nearest to the client (great-circle
distance), else the edge's own region.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from federation.errors import BadRequest
from federation.geo import Point, distance_km

_NAME = re.compile(r"[a-z0-9-]{1,63}")


@dataclass(frozen=True, slots=True)
class Placement:
    home: str
    allowed: tuple[str, ...]  # empty: any region of the app

    @property
    def pinned(self) -> bool:
        return bool(self.allowed)


def parse_regions(header: str, value: str, known: Mapping[str, Point]) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names:
        raise BadRequest(f"{header} is empty; name a region, or a comma list of regions")
    for n in names:
        if not _NAME.fullmatch(n) or n not in known:
            raise BadRequest(f"{header}: unknown region {n!r}; known: {', '.join(sorted(known))}")
    return names


def nearest(candidates: tuple[str, ...], to: Point, where: Mapping[str, Point]) -> str:
    return min(candidates, key=lambda name: (distance_km(to, where[name]), name))


def place(
    *,
    pin: str | None,
    prefer: str | None,
    client: Point | None,
    edge_region: str,
    known: Mapping[str, Point],
    healthy: frozenset[str],
    app_regions: tuple[str, ...] = (),
) -> Placement:
    """``known`` maps every region of the federation to its coordinates; ``healthy`` are those
    with a live heartbeat; ``app_regions`` are the app's placement regions (empty: all)."""
    allowed = parse_regions("X-Spillover-Region", pin, known) if pin is not None else ()
    if allowed and app_regions:
        # A pin outside the app's regions could never run: say so now, not after a timeout.
        allowed = tuple(r for r in allowed if r in app_regions)
        if not allowed:
            raise BadRequest(
                f"X-Spillover-Region = {pin!r}: the app runs only in {', '.join(app_regions)}"
            )
    if prefer is not None:
        (preferred,) = parse_regions("X-Spillover-Prefer-Region", prefer, known)[:1]
        # A soft pin the app cannot honour is only a preference: fall through to the nearest.
        runs_there = not app_regions or preferred in app_regions
        if runs_there and (not allowed or preferred in allowed):
            return Placement(preferred, allowed)
    candidates = allowed or app_regions or tuple(known)
    candidates = tuple(r for r in candidates if r in known)
    if not candidates:
        raise BadRequest("none of the app's regions is known to this edge")
    up = tuple(r for r in candidates if r in healthy) or candidates
    if client is not None:
        return Placement(nearest(up, client, known), allowed)
    if edge_region in up:
        return Placement(edge_region, allowed)
    return Placement(nearest(up, known.get(edge_region, known[up[0]]), known), allowed)


def fallbacks(
    placed: Placement, known: Mapping[str, Point], app_regions: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """Where else the task may be stored when its home partition's etcd is unreachable: the
    other regions it may run in (its allowed set when pinned, else the app's), nearest to its
    home first. A task pinned to one region has none: it gets 503, never a silent move."""
    candidates = placed.allowed or app_regions or tuple(known)
    others = tuple(r for r in candidates if r != placed.home and r in known)
    home = known[placed.home]
    return tuple(sorted(others, key=lambda r: (distance_km(home, known[r]), r)))
