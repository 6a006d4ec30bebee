"""Which claims ended, from a list-watch of a claimer's claim keys, gaps included."""

from __future__ import annotations

from federation.claims import step
from federation.etcd import KV, Event, Snapshot


def kv(key: bytes) -> KV:
    return KV(key, b"token", mod_revision=1)


def test_deletes_end_claims_and_a_new_listing_ends_those_it_no_longer_holds() -> None:
    held, gone = step(frozenset(), Snapshot([kv(b"a"), kv(b"b")], revision=5))
    assert held == {b"a", b"b"} and gone == []
    held, gone = step(held, Event("put", kv(b"c")))
    assert held == {b"a", b"b", b"c"} and gone == []
    held, gone = step(held, Event("delete", kv(b"a")))
    assert held == {b"b", b"c"} and gone == [b"a"]
    # A gap: the watch fell behind compaction; b's delete and d's put and delete were missed.
    held, gone = step(held, Snapshot([kv(b"c"), kv(b"e")], revision=9))
    assert held == {b"c", b"e"} and gone == [b"b"]
