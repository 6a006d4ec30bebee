"""Deleting blobs whose task is gone: the task record was deleted by retention, or the edge
stored a body and then could not enqueue its task (etcd unreachable, an idempotent retry that
found the first task, a crash in between). One rule covers all of them, so no delete path
has to be right every time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from federation import keys
from federation.blobs import BlobStore, owner_ulid
from federation.errors import Unavailable
from federation.topology import Clusters

log = logging.getLogger(__name__)


async def task_exists(clusters: Clusters, partitions: Iterable[str], ulid: str) -> bool:
    """Whether the task with this ULID exists in any partition. A partition that cannot be
    asked counts as holding it: keeping a blob too long is cheap, losing a body is not."""
    for p in partitions:
        try:
            if await clusters.for_partition(p).get(keys.task(clusters.root, p, f"{ulid}.{p}")):
                return True
        except Unavailable:
            return True
    return False


async def sweep(
    store: BlobStore, clusters: Clusters, partitions: Iterable[str], now: float, grace: float
) -> int:
    """One pass; returns how many blobs it deleted."""
    deleted = 0
    parts = tuple(partitions)
    for name, modified in await store.listing():
        if now - modified >= grace and not await task_exists(clusters, parts, owner_ulid(name)):
            await store.delete(name)
            deleted += 1
    return deleted


async def run_sweeper(
    store: BlobStore,
    clusters: Clusters,
    partitions: Callable[[], Iterable[str]],
    interval: float,
    grace: float,
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            n = await sweep(store, clusters, partitions(), time.time(), grace)
        except Exception as e:  # a store hiccup: the next pass tries again
            log.warning("blob sweep failed: %s", e)
            continue
        if n:
            log.info("swept %d blobs whose tasks are gone", n)
