"""A claimer's claims from a list-watch of its claim keys, gaps included; which ended, and which
nothing of it runs past a grace period (a fake clock)."""

from __future__ import annotations

from federation.claims import Held, orphaned, step
from federation.etcd import KV, Event, Snapshot

P = b"/r/q/us-east-1/claims/agent-1/"


def kv(key: bytes, token: bytes = b"token") -> KV:
    return KV(key, token, mod_revision=1)


def test_deletes_end_claims_and_a_new_listing_ends_those_it_no_longer_holds() -> None:
    held, gone = step({}, Snapshot([kv(b"a"), kv(b"b")], revision=5), now=1)
    assert held.keys() == {b"a", b"b"} and gone == []
    held, gone = step(held, Event("put", kv(b"c")), now=2)
    assert held.keys() == {b"a", b"b", b"c"} and gone == []
    held, gone = step(held, Event("delete", kv(b"a")), now=3)
    assert held.keys() == {b"b", b"c"} and gone == [b"a"]
    # A gap: the watch fell behind compaction; b's delete and d's put and delete were missed.
    held, gone = step(held, Snapshot([kv(b"c"), kv(b"e")], revision=9), now=4)
    assert held.keys() == {b"c", b"e"} and gone == [b"b"]


def test_a_claim_nothing_runs_is_an_orphan_after_the_grace_and_a_settled_one_never() -> None:
    held, _ = step({}, Snapshot([kv(P + b"a", b"t1")], 5), now=100)
    held, _ = step(held, Event("put", kv(P + b"b", b"t2")), now=101)
    held, _ = step(held, Event("put", kv(P + b"c", b"t3")), now=101)
    held, _ = step(held, Event("delete", kv(P + b"c", b"")), now=102)  # settled: its key went
    a, b = (P + b"a", Held(b"t1", 100)), (P + b"b", Held(b"t2", 101))
    assert orphaned(held, now=114, grace=15, running=lambda t: False) == []
    assert orphaned(held, now=115, grace=15, running=lambda t: False) == [a]
    assert orphaned(held, now=116, grace=15, running=lambda t: t == "b") == [a]
    assert orphaned(held, now=116, grace=15, running=lambda t: False) == [a, b]


def test_a_new_claim_of_the_same_task_starts_its_grace_again_and_a_relist_keeps_old_times() -> None:
    held, _ = step({}, Event("put", kv(P + b"a", b"t1")), now=100)
    held, _ = step(held, Event("put", kv(P + b"a", b"t2")), now=110)  # requeued, claimed again
    assert orphaned(held, now=120, grace=15, running=lambda t: False) == []
    held, _ = step(held, Snapshot([kv(P + b"a", b"t2")], 9), now=124)  # a re-list (compaction)
    assert orphaned(held, now=125, grace=15, running=lambda t: False) == [
        (P + b"a", Held(b"t2", 110))
    ]
