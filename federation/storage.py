"""Keeping each etcd cluster under its space quota.

etcd refuses every write once its db reaches ``--quota-backend-bytes`` (the NOSPACE alarm):
heartbeats, lease grants, everything but deletes and txns of nested puts. A queue must push
back long before that. So every edge and agent watches each cluster's db size against its quota:

- ``ok`` → ``high`` at ``high_watermark`` (0.8 of the quota by default): edges refuse new tasks
  for that cluster (503 storage_full), reapers sweep finished tasks early, the health API says
  why it is degraded; settles, deletes and heartbeats go on, so the queue drains.
- back to ``ok`` only under ``low_watermark`` (0.7): no flapping around one line.
- ``nospace`` while etcd's alarm is raised (the watermark came too late, or another writer).

One agent per cluster (elected) also gives the space back: it compacts the history, defragments
the members one at a time (etcd's db file never shrinks by itself), and disarms the alarm once
the db is back under the high watermark. The same keeper defragments on a schedule.

With etcd RBAC on (``etcd_rbac.py``), defragmenting and disarming are the root user's alone, so
the agents' keepers stand down and ``spillover etcd-keeper`` runs the same keeper with the admin
certificate (on the etcd nodes in the Terraform deployment).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from federation import keys
from federation.aio import cancel_and_wait
from federation.election import campaign
from federation.errors import PermissionDenied, SpilloverError, StorageFull, Unavailable
from federation.etcd import Etcd
from federation.metrics import FederationMetrics
from federation.session import Session
from federation.topology import Clusters, EtcdConfig

log = logging.getLogger(__name__)


class Level(StrEnum):
    OK = "ok"
    HIGH = "high"
    NOSPACE = "nospace"


@dataclass(frozen=True, slots=True)
class MemberSpace:
    url: str
    db_size: int  # the db file: what etcd's quota counts
    in_use: int  # its live pages; the rest is what a defragmentation gives back
    nospace: bool  # the member's NOSPACE alarm is raised


@dataclass(frozen=True, slots=True)
class Space:
    """A cluster's space as its fullest member has it."""

    members: tuple[MemberSpace, ...]
    quota: int

    @property
    def db_size(self) -> int:
        return max((m.db_size for m in self.members), default=0)

    @property
    def nospace(self) -> bool:
        return any(m.nospace for m in self.members)

    @property
    def ratio(self) -> float:
        return self.db_size / self.quota


def level(space: Space, previous: Level, high: float, low: float) -> Level:
    """The cluster's level now: with hysteresis between ``low`` and ``high``."""
    if space.nospace:
        return Level.NOSPACE
    if space.ratio >= high or (previous is not Level.OK and space.ratio >= low):
        return Level.HIGH
    return Level.OK


def to_defragment(
    space: Space, lvl: Level, low: float, compacted: bool = False
) -> list[MemberSpace]:
    """Members worth defragmenting, most to give back first. A defragmentation blocks its
    member while it runs: out of space, any page given back counts (the configured quota may be
    larger than etcd's own), and right after a compaction (``compacted``) every member: etcd
    counts the pages it frees as in use until its next commit, and out of space nothing commits
    (seen in the reliability suite's nospace scenario: a db of 19 MiB shown fully in use after
    its 18 MiB of filler was deleted and compacted, the alarm raised for good). Short of space,
    members with 5 % of the quota to give back, or whose file alone keeps the level up (its
    live data is under the low watermark, the file is not); on schedule (ok), only the badly
    fragmented (a quarter of the quota to give back)."""
    min_free = {Level.NOSPACE: 0.0, Level.HIGH: 0.05, Level.OK: 0.25}[lvl] * space.quota
    floor = low * space.quota

    def worth(m: MemberSpace) -> bool:
        free = m.db_size - m.in_use
        stuck = lvl is Level.HIGH and m.in_use < floor <= m.db_size
        return free > min_free or (stuck and free > 0) or (lvl is Level.NOSPACE and compacted)

    return sorted((m for m in space.members if worth(m)), key=lambda m: m.in_use - m.db_size)


def reason(cluster: str, space: Space, lvl: Level) -> str:
    used = f"db {space.db_size / 2**20:,.0f} MiB of a {space.quota / 2**20:,.0f} MiB quota"
    if lvl is Level.NOSPACE:
        return f"etcd {cluster}: out of space (NOSPACE alarm), {used}; new tasks refused"
    return f"etcd {cluster}: {used} ({space.ratio:.0%}); new tasks refused until it drains"


# -- the shell: reading etcd, and giving space back ---------------------------------------------


async def member_space(member: Etcd) -> MemberSpace:
    return MemberSpace(member.urls[0], *await member.space())


async def cluster_space(etcd: Etcd, quota: int) -> Space:
    """Every reachable member's space (an unreachable one is left out: it takes no writes)."""
    found = await asyncio.gather(*(member_space(m) for m in etcd.members()),
                                 return_exceptions=True)  # fmt: skip
    members = tuple(m for m in found if isinstance(m, MemberSpace))
    if not members:
        raise Unavailable("no etcd member answered a status request")
    return Space(members, quota)


class StorageGuard:
    """Each cluster's level, kept fresh in the background (``run``); ``check`` is what a
    writer of new tasks asks first."""

    def __init__(
        self, clusters: Clusters, metrics: FederationMetrics | None = None, interval: float = 2.0
    ) -> None:
        self.clusters = clusters
        self.config: EtcdConfig = clusters.config
        self.metrics = metrics
        self.interval = interval
        self.levels: dict[str, Level] = {}
        self.spaces: dict[str, Space] = {}
        self._denied: set[str] = set()  # clusters whose Status this process may not call

    def level_of(self, etcd: Etcd) -> Level:
        return self.levels.get(etcd.name, Level.OK)

    def check(self, etcd: Etcd) -> None:
        """Raise StorageFull if new tasks must not go to this cluster now."""
        name = etcd.name
        lvl = self.levels.get(name, Level.OK)
        if lvl is not Level.OK:
            # Sweeping under pressure runs every reaper tick: space comes back in seconds.
            raise StorageFull(reason(name, self.spaces[name], lvl), retry_after=10)

    def reasons(self) -> list[str]:
        return [reason(n, self.spaces[n], lvl) for n, lvl in self.levels.items()
                if lvl is not Level.OK]  # fmt: skip

    async def refresh(self) -> None:
        c = self.config
        for name, etcd in self.clusters.named().items():
            try:
                space = await cluster_space(etcd, c.quota_bytes)
            except PermissionDenied as e:
                if name not in self._denied:  # a deployment's choice: say it once
                    self._denied.add(name)
                    why = "the watermark is off; etcd's own NOSPACE still answers storage_full"
                    log.warning("storage of etcd %s unknown: %s; %s", name, e, why)
                continue
            except SpilloverError as e:
                log.info("storage of etcd %s unknown: %s", name, e)
                continue
            previous = self.levels.get(name, Level.OK)
            now = level(space, previous, c.high_watermark, c.low_watermark)
            if now is not previous:
                why = reason(name, space, now) if now is not Level.OK else "space is back"
                log.warning("etcd %s storage: %s -> %s (%s)", name, previous, now, why)
            self.levels[name], self.spaces[name] = now, space
            if self.metrics is not None:
                self.metrics.storage(name, space.db_size, space.quota, now.value)

    async def run(self) -> None:
        while True:
            await self.refresh()
            busy = any(lvl is not Level.OK for lvl in self.levels.values())
            await asyncio.sleep(self.interval / 4 if busy else self.interval)


class StorageKeeper:
    """Gives space back on one cluster. The elected keeper (one per cluster in the federation:
    defragmentations must not overlap) compacts and defragments under pressure and on schedule.
    Out of space, no lease can be granted and so nobody can be elected: then every agent's
    keeper acts, after a random pause, if the cluster is still out of space (compaction and
    disarming are idempotent; a defragmentation waits for one under way on its member)."""

    def __init__(
        self,
        guard: StorageGuard,
        name: str,
        etcd: Etcd,
        session: Callable[[], Awaitable[Session]],
        *,
        defrag_every: float = 3600.0,
        defrag_timeout: float = 600.0,
        compact_lag: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.guard, self.name, self.etcd = guard, name, etcd
        self.session = session
        self.defrag_every = defrag_every
        self.defrag_timeout = defrag_timeout
        self.compact_lag = compact_lag
        self.clock = clock
        self.leading = False
        self._last_defrag = clock()
        self._revisions: deque[tuple[float, int]] = deque(maxlen=64)  # (when, revision) seen
        self._compacted = 0

    async def run(self, me: bytes) -> None:
        """Keep, forever; return at once if this process's etcd user may not (RBAC: the
        keeper's election key and the maintenance RPCs are root's)."""
        leading = asyncio.create_task(self._lead(me))
        try:
            while not leading.done():
                await asyncio.wait([leading], timeout=self.guard.interval)
                if leading.done():
                    break
                lvl = self.guard.levels.get(self.name, Level.OK)
                if not self.leading and lvl is Level.NOSPACE:
                    await asyncio.sleep(random.uniform(0, 2 * self.guard.interval))
                    await self.guard.refresh()
                    lvl = self.guard.levels.get(self.name, Level.OK)
                if self.leading or lvl is Level.NOSPACE:
                    try:
                        await self.tick()
                    except Unavailable as e:
                        log.info("storage keeper of %s: %s", self.name, e)
                    except PermissionDenied:
                        break
        finally:
            await cancel_and_wait([leading])
        log.info("storage keeper of %s: not this process's to run (etcd RBAC: the admin's "
                 "spillover etcd-keeper keeps the space)", self.name)  # fmt: skip

    async def _lead(self, me: bytes) -> None:
        """Campaign, and hold the lead while the session lives; return if not permitted."""
        key = keys.storage_leader(self.guard.clusters.root)
        while True:
            try:
                session = await self.session()
                await campaign(self.etcd, key, me, session)
            except Unavailable as e:
                log.info("storage keeper of %s: election: %s", self.name, e)
                await asyncio.sleep(1)
                continue
            except PermissionDenied:
                return
            self.leading = True
            try:
                await session.lost.wait()
            finally:
                self.leading = False

    async def tick(self) -> None:
        lvl = self.guard.levels.get(self.name, Level.OK)
        space = self.guard.spaces.get(self.name)
        if space is None:
            return
        _, now_revision, _ = await self.etcd.range(b"\0", b"\0", limit=1)
        self._revisions.append((self.clock(), now_revision))
        scheduled = self.clock() - self._last_defrag >= self.defrag_every
        if lvl is Level.OK and not scheduled:
            return
        compacted = False
        if lvl is not Level.OK:
            compacted = await self.compact(
                now_revision if lvl is Level.NOSPACE else self._lagging()
            )
            space = await cluster_space(self.etcd, space.quota)
        for m in to_defragment(space, lvl, self.guard.config.low_watermark, compacted):
            await self.defragment(m)
        self._last_defrag = self.clock()
        space = await cluster_space(self.etcd, space.quota)
        if space.nospace and space.ratio < self.guard.config.high_watermark:
            await self.disarm()
        await self.guard.refresh()

    def _lagging(self) -> int:
        """The newest revision seen ``compact_lag`` seconds ago or more (0: none yet): watchers
        that far behind re-list (every watcher here can); those near the head go on."""
        old = [rev for at, rev in self._revisions if self.clock() - at >= self.compact_lag]
        return max(old, default=0)

    async def compact(self, target: int) -> bool:
        """Drop the history of deleted and overwritten keys up to ``target``: what a finished
        task's sweep deleted frees nothing until then. Whether there was any to drop."""
        if target <= self._compacted:
            return False
        try:
            await self.etcd.compact(target)
        except SpilloverError as e:
            if "compacted" not in e.message:  # someone (auto-compaction) got there first
                raise
        self._compacted = target
        log.info("storage keeper of %s: compacted to revision %d", self.name, target)
        return True

    async def defragment(self, member: MemberSpace) -> None:
        """One member, with a client that waits as long as a large db takes (the cluster's
        clients give up after seconds); the next member only once this one is done."""
        freed = (member.db_size - member.in_use) / 2**20
        log.warning("storage keeper of %s: defragmenting %s (~%.0f MiB to free)", self.name,
                    member.url, freed)  # fmt: skip
        client = self.etcd.member(member.url, timeout=self.defrag_timeout)
        try:
            await client.defragment()
        finally:
            await client.close()

    async def disarm(self) -> None:
        if await self.etcd.disarm_nospace():
            log.warning("storage keeper of %s: NOSPACE alarm disarmed", self.name)
