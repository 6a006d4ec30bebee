"""A claimer's local view of an app's queue across partitions, and the claim step that picks
from it. The view is what makes claims cheap: the claimer learns of a new task from the watch
(one event, ~2 ms after enqueue) and claims it in one txn, without racing peers for the head of
a range read.

It holds only the head of each partition: the first ``size`` entries (in claim order: priority,
then age) that this region may take, never the whole backlog. So a million queued tasks cost a
claimer what a thousand do: memory, sorting and claims stay bounded. See :class:`Head`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from federation import keys
from federation.errors import Unavailable
from federation.etcd import KV, Compacted, Etcd, Event
from federation.placement import ClaimRules, ReadyEntry, claim_order
from federation.queue import MAX_BATCH, Claim, Claimer, Queue, decode
from federation.scan import FIRST_SPAN_NS, Window, next_span, window
from federation.task import TaskRecord

HEAD = 1000  # entries held per partition (~1 KiB each)
PAGE = 500
# The depth past the head is counted by etcd, which walks it all (``scan.py``): at most every
# 2 s, and no more often than 50 times the count took (a million queued: every ~20 s).
COUNT_EVERY, COUNT_SHARE = 2.0, 50
# An entry a claim tried and did not win is skipped this long, or until its key changes: a peer
# that won it is seen on the watch within ms (the entry goes then); a claim txn refused as a whole
# (a lease etcd expired while we were paused, an election) leaves it queued, to be tried again.
RETRY_AFTER = 0.5


class Head:
    """One partition's head: every entry this region may take whose key sorts at or before
    ``scanned`` (all of them once ``complete``). Pure: the view feeds it listings and watch
    events; it says when it wants more.

    Keys past ``scanned`` are ignored as they change, and read when the head runs low, in
    windows of time (``scan.py``): etcd 3.4 walks whatever a range spans, so a range bounded by
    ``limit`` alone would walk the whole backlog. A listing in flight is read at one revision;
    events that arrive meanwhile for keys it covers are kept and replayed after it if they are
    newer, so nothing is lost between the read and the watch. Entries this region may never take
    (pinned elsewhere) are not held: a deep backlog pinned elsewhere does not hide the tasks
    behind it.
    """

    def __init__(self, allows: Callable[[TaskRecord], bool], size: int = HEAD) -> None:
        self.allows = allows
        self.size = size
        self.held: dict[bytes, ReadyEntry] = {}
        self.scanned = b""  # every key up to here was read (b"": none yet)
        self.complete = False  # and there was nothing after it
        self.total = 0  # keys in the partition, all priorities and pins, when last counted
        self.span = FIRST_SPAN_NS  # of the next listing window
        self._listing = False
        self._listed_at: int | None = None  # the revision the listing in flight read pages at
        self._pending: list[Event] = []

    def covers(self, key: bytes) -> bool:
        return self.complete or key <= self.scanned

    @property
    def wants_more(self) -> bool:
        return not self.complete and not self._listing and len(self.held) < self.size // 2

    @property
    def beyond(self) -> int:
        """Queue entries not held (past the head, or pinned elsewhere), as last counted."""
        return 0 if self.complete else max(0, self.total - len(self.held))

    def apply(self, event: Event) -> None:
        if self.covers(event.kv.key):
            self._apply(event)
        elif self._listing:
            self._pending.append(event)

    def _apply(self, event: Event) -> None:
        kv = event.kv
        if event.kind == "delete":
            self.held.pop(kv.key, None)
            return
        self._put(kv)
        if len(self.held) > 2 * self.size:
            self._trim()

    def _put(self, kv: KV) -> None:
        record = decode(kv.value)
        if self.allows(record):
            self.held[kv.key] = ReadyEntry(kv.key, kv.mod_revision, record)
        else:
            self.held.pop(kv.key, None)

    def _trim(self) -> None:
        """Keep the first ``size``: the rest is read again when its turn comes."""
        kept = sorted(self.held)[: self.size]
        self.held = {k: self.held[k] for k in kept}
        self.scanned, self.complete = kept[-1], False

    def begin_listing(self) -> None:
        self._listing, self._pending, self._listed_at = True, [], None

    def listed(self, kvs: list[KV], revision: int, w: Window, more: bool, count: int) -> None:
        """Window ``w`` read at ``revision``: its first keys in order (``more``: not all of its
        ``count``). The listing goes on (at the same revision) until the head is full or every
        window is read (``listing``)."""
        for kv in kvs:
            self._put(kv)
        self.scanned = kvs[-1].key if more else w.end
        self.complete = w.last and not more
        self.span = next_span(self.span, count, PAGE)
        self._listed_at = revision
        self._replay()
        if not self.complete and len(self.held) < self.size:
            return
        self._end_listing()

    @property
    def listing(self) -> bool:
        return self._listing

    def abort_listing(self) -> None:
        """A page failed: what the pages read so far holds (``scanned`` covers it)."""
        self._end_listing()

    def _replay(self) -> None:
        """Events that came during the listing for keys a page now covers, in order, if newer
        than the page (now, before any later event for them is applied directly)."""
        if self._listed_at is None:
            return
        kept = []
        for ev in self._pending:
            if not self.covers(ev.kv.key):
                kept.append(ev)
            elif ev.kv.mod_revision > self._listed_at:
                self._apply(ev)
        self._pending = kept

    def _end_listing(self) -> None:
        self._listing, self._pending = False, []  # what is left is past the head: ignored


class ReadyView:
    def __init__(
        self,
        queue: Queue,
        app: str,
        partitions: Iterable[str],
        *,
        allows: Callable[[TaskRecord], bool] = lambda record: True,
        size: int = HEAD,
    ) -> None:
        self.queue = queue
        self.app = app
        self.partitions = tuple(partitions)
        self.allows = allows
        self.size = size
        self.heads: dict[str, Head] = {p: Head(allows, size) for p in self.partitions}
        self.changed = asyncio.Event()
        self.synced: dict[str, asyncio.Event] = {p: asyncio.Event() for p in self.partitions}
        self._low: dict[str, asyncio.Event] = {p: asyncio.Event() for p in self.partitions}
        self._tried: dict[bytes, tuple[int, float]] = {}  # key: (mod revision, skipped until)

    @property
    def entries(self) -> dict[bytes, ReadyEntry]:
        """Every held entry, all partitions."""
        return {k: e for h in self.heads.values() for k, e in h.held.items()}

    @property
    def beyond(self) -> int:
        """Queue entries past the heads, as last counted (a backlog deeper than the heads)."""
        return sum(h.beyond for h in self.heads.values())

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for p in self.partitions:
                tg.create_task(self._follow(p))

    async def wait_synced(self) -> None:
        for ev in self.synced.values():
            await ev.wait()

    async def _follow(self, partition: str) -> None:
        """List the head, then watch; list more when it runs low; start over after falling
        behind compaction."""
        etcd = self.queue.clusters.for_partition(partition)
        prefix = keys.ready_app(self.queue.root, partition, self.app)
        while True:
            head = self.heads[partition] = Head(self.allows, self.size)
            try:
                revision = await self._list(etcd, prefix, head)
            except Unavailable:
                await asyncio.sleep(0.5)
                continue
            self.changed.set()
            self.synced[partition].set()
            # The watch returns once behind compaction: the refill stops and all starts over.
            # (Not a TaskGroup whose failure is caught: on Python 3.11 that leaves this task
            # counted as cancelling, and its next etcd call raised CancelledError: the view died.)
            async with asyncio.TaskGroup() as tg:
                refill = tg.create_task(self._refill(etcd, prefix, head, self._low[partition]))
                await self._watch(etcd, prefix, head, revision, self._low[partition])
                refill.cancel()

    async def _list(self, etcd: Etcd, prefix: bytes, head: Head) -> int:
        """Read windows after ``head.scanned`` until the head is full or the partition read;
        returns the revision it was read at."""
        head.begin_listing()
        try:
            revision = 0
            while head.listing:
                w = window(prefix, head.scanned, round(self.queue.clock() * 1e9), head.span)
                kvs, rev, more, count = await etcd.page(
                    w.start, w.end, limit=PAGE, revision=revision
                )
                revision = revision or rev
                head.listed(kvs, revision, w, more, count)
        except BaseException:
            head.abort_listing()
            raise
        return revision

    async def _count(self, etcd: Etcd, prefix: bytes, head: Head) -> float:
        """Count the partition's entries (for the depth past the head); returns when to count
        again (``COUNT_EVERY`` s, or ``COUNT_SHARE`` times as long as counting took)."""
        started = time.monotonic()
        with contextlib.suppress(Unavailable):
            head.total = await etcd.count(prefix)
        return max(COUNT_EVERY, COUNT_SHARE * (time.monotonic() - started))

    async def _watch(
        self, etcd: Etcd, prefix: bytes, head: Head, revision: int, low: asyncio.Event
    ) -> None:
        """Apply the partition's changes to ``head`` until the watch falls behind compaction."""
        with contextlib.suppress(Compacted):
            async for event in etcd.watch(prefix, revision + 1):
                head.apply(event)
                if head.wants_more:  # peers claimed it low
                    low.set()
                self.changed.set()

    async def _refill(self, etcd: Etcd, prefix: bytes, head: Head, low: asyncio.Event) -> None:
        """Read more when claims left the head half empty; while a backlog lies beyond it,
        count it now and then (for the depth heartbeats report)."""
        wait = 0.0 if head.complete else await self._count(etcd, prefix, head)
        while True:
            low.clear()
            if head.wants_more:
                try:
                    await self._list(etcd, prefix, head)
                    self.changed.set()
                except Unavailable:
                    await asyncio.sleep(0.5)
                continue
            try:
                async with asyncio.timeout(wait or COUNT_EVERY):
                    await low.wait()
            except TimeoutError:
                if not head.complete:
                    wait = await self._count(etcd, prefix, head)

    async def claim(
        self,
        claimer: Claimer,
        n: int,
        rules: ClaimRules | None = None,
        *,
        rank: int = 0,
        n_claimers: int = 1,
    ) -> list[Claim]:
        """Claim up to ``n`` tasks in claim order (never more: no prefetch), at most
        ``MAX_BATCH`` per call: the caller claims again while it has free slots."""
        if n <= 0:
            return []
        rules = rules or ClaimRules(claimer.region)
        now = self.queue.clock()
        self._tried = {k: t for k, t in self._tried.items() if now < t[1]}
        candidates = [e for e in self.entries.values() if not self._skipped(e)]
        # At most one claim txn's worth, so every entry in ``order`` is tried.
        order = claim_order(candidates, rules, now, rank=rank, n_claimers=n_claimers)[
            : min(n, MAX_BATCH)
        ]
        by_partition: dict[str, list[ReadyEntry]] = {}
        for e in order:
            by_partition.setdefault(e.record.partition, []).append(e)
        # One txn per partition, all at once: a local claim does not wait for a peer region's
        # cluster a WAN round trip away (or one that hangs).
        groups = list(by_partition.values())
        outcomes: list[list[Claim] | BaseException]
        if len(groups) == 1:  # the usual round: no task to spawn on the hot path
            outcomes = [await self.queue.claim(claimer, groups[0])]
        else:
            outcomes = await asyncio.gather(
                *(self.queue.claim(claimer, entries) for entries in groups), return_exceptions=True
            )
        claimed: list[Claim] = []
        errors: list[Exception] = []
        for entries, won in zip(groups, outcomes, strict=True):
            if isinstance(won, BaseException):
                if not isinstance(won, Exception):
                    raise won
                errors.append(won)
                continue  # its entries stay untried: claimed again at the next try
            claimed.extend(won)
            ids = {c.record.id for c in won}
            for e in entries:
                if e.record.id in ids:
                    self._won(e)
                else:  # lost to a peer (its watch event removes it), or refused whole: kept
                    self._tried[e.key] = (e.mod_revision, now + RETRY_AFTER)
        if errors and not claimed:
            raise errors[0]  # nothing won: the caller's retry policy decides
        return claimed  # what was won must run, even if another partition failed

    def _skipped(self, e: ReadyEntry) -> bool:
        tried = self._tried.get(e.key)
        return tried is not None and tried[0] == e.mod_revision

    def _won(self, e: ReadyEntry) -> None:
        """A claimed entry leaves the view at once (its delete comes later on the watch). If a
        newer entry for its key came while the claim was in flight, that one stays: only the
        very entry we tried goes."""
        head = self.heads[e.record.partition]
        if head.held.get(e.key) is e:
            del head.held[e.key]
        if head.wants_more:
            self._low[e.record.partition].set()
