"""The head of a partition a claimer holds: whatever the interleaving of writes, watch events
and listings in flight, once the events are in it holds exactly the entries it covers — no
phantom, none missing — and never more than a bounded number. Pure: no etcd."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from federation.etcd import KV, Event
from federation.queue import decode, encode
from federation.ready import Head
from federation.scan import window
from tests.factories import task

PREFIX = b"/q/p/ready/app/"
NOW_NS = 1_800_000_000 * 10**9
# Queue keys in two priority runs ("0/": priority 9, "5/": priority 4), a second apart or a day.
KEYS = [
    PREFIX + b"%d/%020d/t%02d" % (run, NOW_NS - (40 - i) * gap, i)
    for i, (run, gap) in enumerate([(0, 10**9), (5, 10**9), (5, 86_400 * 10**9 // 40)] * 14)
][:40]
HERE = "us-east-1"


def allows(record: object) -> bool:
    pins = record.allowed_regions  # type: ignore[attr-defined]
    return not pins or HERE in pins


class HeadMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.head = Head(allows, size=6)
        self.truth: dict[bytes, KV] = {}
        self.revision = 0
        self.undelivered: list[Event] = []
        self.listing: tuple[int, dict[bytes, KV]] | None = None  # (revision, snapshot)
        self.page = 4

    def _write(self, kind: str, key: bytes, pinned: bool = False) -> None:
        self.revision += 1
        if kind == "put":
            record = task("p", allowed_regions=("eu-west-1",) if pinned else ())
            kv = KV(key, encode(record), self.revision)
            self.truth[key] = kv
        else:
            kv = KV(key, b"", self.revision)
            del self.truth[key]
        self.undelivered.append(Event("put" if kind == "put" else "delete", kv))  # type: ignore[arg-type]

    @rule(i=st.integers(0, len(KEYS) - 1), pinned=st.booleans())
    def put(self, i: int, pinned: bool) -> None:
        self._write("put", KEYS[i], pinned)

    @precondition(lambda self: self.truth)
    @rule(i=st.integers(0, 100))
    def delete(self, i: int) -> None:
        self._write("delete", sorted(self.truth)[i % len(self.truth)])

    @precondition(lambda self: self.head.held)
    @rule(i=st.integers(0, 100))
    def claim(self, i: int) -> None:
        """A claim moves the entry out of the queue and out of the head at once."""
        key = sorted(self.head.held)[i % len(self.head.held)]
        self.head.held.pop(key)
        if key in self.truth:
            self._write("delete", key)

    @precondition(lambda self: self.undelivered)
    @rule(n=st.integers(1, 5))
    def deliver(self, n: int) -> None:
        for ev in self.undelivered[:n]:
            self.head.apply(ev)
        del self.undelivered[:n]

    @precondition(
        lambda self: (
            self.listing is None
            and (self.head.wants_more or not (self.head.scanned or self.head.complete))
        )
    )
    @rule()
    def start_listing(self) -> None:
        self.head.begin_listing()
        self.listing = (self.revision, dict(self.truth))

    @precondition(lambda self: self.listing is not None)
    @rule()
    def listing_page_arrives(self) -> None:
        """The next window of the listing (``scan.window``), read at the listing's revision."""
        assert self.listing is not None
        revision, snapshot = self.listing
        w = window(PREFIX, self.head.scanned, NOW_NS, self.head.span)
        inside = [k for k in sorted(snapshot) if w.start <= k < w.end]
        page = inside[: self.page]
        self.head.listed([snapshot[k] for k in page], revision, w, len(inside) > len(page),
                         len(inside))  # fmt: skip
        if not self.head.listing:
            self.listing = None

    @precondition(lambda self: self.listing is not None)
    @rule()
    def listing_page_fails(self) -> None:
        """The next page is refused (etcd away, the revision compacted): the listing ends."""
        self.head.abort_listing()
        self.listing = None

    @invariant()
    def bounded(self) -> None:
        assert len(self.head.held) <= 2 * self.head.size + self.page

    @invariant()
    def once_quiet_it_holds_exactly_what_it_covers(self) -> None:
        started = self.head.scanned or self.head.complete
        if self.undelivered or self.listing is not None or not started:
            return
        expected = {
            k: kv.mod_revision
            for k, kv in self.truth.items()
            if self.head.covers(k) and allows(_record(kv))
        }
        assert {k: e.mod_revision for k, e in self.head.held.items()} == expected


def _record(kv: KV) -> object:
    return decode(kv.value)


TestHead = HeadMachine.TestCase
