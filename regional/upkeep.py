"""The queue's upkeep, which every agent takes part in: the reaper (lost claims, expiry,
retention), and each etcd cluster's space — a guard that watches it and a keeper that gives it
back (``federation/storage.py``); under storage pressure the reaper sweeps finished tasks early."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping

from federation.appspec import AppSpec
from federation.queue import Claimer, Queue
from federation.reaper import run_reaper
from federation.storage import Level, StorageGuard, StorageKeeper


def keep_up(
    tg: asyncio.TaskGroup,
    queue: Queue,
    claimer: Claimer,
    partitions: tuple[str, ...],
    specs: Callable[[], Mapping[str, AppSpec]],
) -> None:
    """Start the upkeep in ``tg``; ``specs``: every deployed app, served here or not."""
    guard = StorageGuard(queue.clusters)
    tg.create_task(guard.run())
    for name, etcd in queue.clusters.named().items():
        keeper = StorageKeeper(guard, name, etcd, functools.partial(claimer.session, etcd))
        tg.create_task(keeper.run(claimer.id.encode()))

    def pressure(partition: str) -> bool:
        return guard.level_of(queue.etcd(partition)) is not Level.OK

    def graces() -> dict[str, float]:
        return {n: s.scaling.response_grace_period for n, s in specs().items()}

    tg.create_task(run_reaper(queue, partitions, pressure=pressure, graces=graces))
