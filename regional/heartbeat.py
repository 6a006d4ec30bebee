"""The region's heartbeat: each agent publishes its apps' load (``load.py``) under its lease
every ``heartbeat_interval``, at ``regions/{region}/{agent}``; every agent follows them all,
merged per region. A region with no agent's key left is down: other regions take its tasks at
once, without waiting ``spillover_after``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from federation import keys
from federation.errors import Unavailable
from federation.etcd import KV, Etcd, follow
from federation.heartbeat import RegionHeartbeat, merge
from federation.queue import Claimer
from regional.capacity import AsgCapacity
from regional.metrics import RegionMetrics

log = logging.getLogger(__name__)


async def publish(
    control: Etcd,
    key: bytes,
    claimer: Claimer,
    beat: Callable[[], RegionHeartbeat],
    metrics: RegionMetrics,
    interval: float,
    before: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Forever: put ``beat()`` at ``key`` under the claimer's lease (and into the gauges: one
    source for both); ``before`` runs first (scale-in protection of busy nodes)."""
    while True:
        try:
            if before is not None:
                await before()
            session = await claimer.session(control)
            now = beat()
            metrics.load(now.apps)
            await control.put(key, now.model_dump_json().encode(), lease=session.lease)
        except Unavailable as e:
            log.warning("heartbeat failed: %s", e)
        await asyncio.sleep(interval)


async def regions(control: Etcd, root: str) -> AsyncIterator[dict[str, RegionHeartbeat]]:
    """Every live region's heartbeat, merged over its agents, now and after each change."""

    def decode(kv: KV) -> RegionHeartbeat:
        return RegionHeartbeat.model_validate_json(kv.value)

    async for beats in follow(control, keys.regions(root), decode):
        yield merge(beats.values())


async def protect(capacity: AsgCapacity, busy: Callable[[], bool]) -> None:
    """Keep a busy node protected from scale-in; AWS errors wait for the next beat."""
    now = busy()
    try:
        await capacity.protect(now)
    except Exception as e:
        log.warning("scale-in protection (%s): %s", now, e)
