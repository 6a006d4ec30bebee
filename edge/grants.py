"""The edge's copy of the API keys, followed from etcd, and the answer for a presented key.

**Fails closed.** The copy is trusted only while it is known to be current: a list of every key
succeeded within ``keys_stale_after`` seconds (the follower re-lists every ``keys_resync``
seconds beside its watch, which brings changes within milliseconds but cannot say it is broken).
Until the first list, or once the lists have failed for that long, ``/readyz`` is unready and
every authenticated request answers 503: a revoked key must not keep working on an edge that has
lost sight of etcd, and no key works on an edge that never saw the set.

**Unknown keys are cheap.** A key not in the copy may be new (the watch lags by a moment), so the
edge asks etcd — at most ``LOOKUPS_PER_S`` times a second, and not again for the same key for
``unknown_key_ttl`` seconds (a bounded cache of misses). Past that rate a key not in the current
copy is refused without asking: a flood of made-up keys is not a flood of etcd reads. A key
created meanwhile still works at once: the watch brings it and the copy is checked first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from pydantic import ValidationError

from edge.ratelimit import Bucket
from federation import keys
from federation.apikeys import Grant
from federation.errors import Unauthorized, Unavailable
from federation.etcd import KV, Etcd, Snapshot

log = logging.getLogger(__name__)

# etcd reads for keys not in the copy, per second per edge (and as a burst): plenty for keys
# made a moment ago, nothing that loads etcd (a read costs ~1 ms of a member's time).
LOOKUPS_PER_S = 20.0


class KeySet:
    """The grants as of ``revision``, and when the set was last confirmed whole."""

    def __init__(self) -> None:
        self.grants: dict[str, Grant] = {}  # key digest -> grant
        self.revision = 0
        self.confirmed_at: float | None = None

    def fresh(self, now: float, stale_after: float) -> bool:
        return self.confirmed_at is not None and now - self.confirmed_at <= stale_after

    def listed(self, kvs: Iterable[KV], revision: int, now: float) -> None:
        """A whole list at ``revision``; one older than changes already applied confirms the set
        without replacing it (a revoke the watch brought must not come back)."""
        if revision >= self.revision:
            self.grants = {_digest(kv): g for kv in kvs if (g := _grant(kv)) is not None}
            self.revision = revision
        self.confirmed_at = now

    def changed(self, kind: str, kv: KV) -> None:
        if kv.mod_revision <= self.revision:
            return
        self.revision = kv.mod_revision
        if kind == "put" and (grant := _grant(kv)) is not None:
            self.grants[_digest(kv)] = grant
        else:
            self.grants.pop(_digest(kv), None)


class Misses:
    """Digests etcd did not know, for ``ttl`` seconds, at most ``max_size`` of them (oldest out
    first: every entry lives as long, so insertion order is expiry order)."""

    def __init__(self, ttl: float, max_size: int = 10_000) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._until: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def add(self, digest: str, now: float) -> None:
        self._until.pop(digest, None)
        self._until[digest] = now + self.ttl
        self._expire(now)

    def hit(self, digest: str, now: float) -> bool:
        self._expire(now)
        return digest in self._until

    def _expire(self, now: float) -> None:
        while self._until and (
            next(iter(self._until.values())) <= now or len(self._until) > self.max_size
        ):
            self._until.popitem(last=False)


class ApiKeyFollower:
    def __init__(
        self,
        control: Etcd,
        root: str,
        *,
        resync: float,
        stale_after: float,
        unknown_ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.control = control
        self.root = root
        self.resync = resync
        self.stale_after = stale_after
        self.clock = clock
        self.keys = KeySet()
        self.misses = Misses(unknown_ttl)
        self._lookups = Bucket.full(LOOKUPS_PER_S, clock())

    def ready(self) -> bool:
        return self.keys.fresh(self.clock(), self.stale_after)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch())
            tg.create_task(self._relist())

    async def _watch(self) -> None:
        async for item in self.control.list_watch(keys.apikeys(self.root)):
            if isinstance(item, Snapshot):
                self.keys.listed(item.kvs, item.revision, self.clock())
            else:
                self.keys.changed(item.kind, item.kv)

    async def _relist(self) -> None:
        prefix = keys.apikeys(self.root)
        while True:
            await asyncio.sleep(self.resync)
            try:
                kvs, revision = await self.control.range_all(prefix, keys.prefix_end(prefix))
            except Unavailable as e:
                log.warning("API keys not re-listed: %s", e)
                continue
            self.keys.listed(kvs, revision, self.clock())

    async def grant(self, digest: str) -> Grant:
        """The grant of a presented key: Unauthorized if unknown, Unavailable if this edge
        cannot tell."""
        now = self.clock()
        if not self.keys.fresh(now, self.stale_after):
            raise Unavailable(
                "this edge cannot check API keys now (it has lost sight of etcd's key list); "
                "retry, or another edge"
            )
        grant = self.keys.grants.get(digest)
        if grant is not None:
            return grant
        if self.misses.hit(digest, now):
            raise Unauthorized("unknown or revoked API key")
        self._lookups, wait = self._lookups.take(LOOKUPS_PER_S, LOOKUPS_PER_S, now)
        if wait:  # too many unknown keys at once: the current copy decides
            raise Unauthorized("unknown or revoked API key")
        kv = await self.control.get(keys.apikey(self.root, digest))
        grant = _grant(kv) if kv is not None else None
        if grant is None:
            self.misses.add(digest, now)
            raise Unauthorized("unknown or revoked API key")
        return grant


def _digest(kv: KV) -> str:
    return kv.key.decode().rsplit("/", 1)[1]


def _grant(kv: KV) -> Grant | None:
    """None for a value that is not a grant (it grants nothing; the others still work)."""
    try:
        return Grant.model_validate_json(kv.value)
    except ValidationError as e:
        log.error("API key %s has an unreadable grant: %s", _digest(kv), e)
        return None
