"""The edge's copy of the API keys and its cache of unknown ones, with a fake clock."""

from __future__ import annotations

from edge.grants import KeySet, Misses
from federation.apikeys import Grant
from federation.etcd import KV

A, B = "a" * 64, "b" * 64


def kv(digest: str, revision: int, grant: Grant | None = None) -> KV:
    value = grant.model_dump_json().encode() if grant is not None else b""
    return KV(f"/r/apikeys/{digest}".encode(), value, revision)


def test_never_listed_is_never_fresh_and_a_list_goes_stale() -> None:
    keys = KeySet()
    assert not keys.fresh(0.0, 20)
    keys.listed([kv(A, 3, Grant(name="a"))], 5, now=100.0)
    assert keys.fresh(110.0, 20) and not keys.fresh(121.0, 20)
    assert set(keys.grants) == {A}


def test_a_list_older_than_a_change_confirms_but_does_not_undo_it() -> None:
    keys = KeySet()
    keys.listed([kv(A, 3, Grant(name="a"))], 5, now=0.0)
    keys.changed("delete", kv(A, 7))  # revoked, through the watch
    keys.listed([kv(A, 3, Grant(name="a"))], 6, now=10.0)  # a list that began before
    assert keys.grants == {} and keys.fresh(10.0, 1)
    keys.changed("put", kv(B, 6, Grant(name="b")))  # an event older than what we have
    assert keys.grants == {}
    keys.changed("put", kv(B, 8, Grant(name="b")))
    assert set(keys.grants) == {B}


def test_an_unreadable_grant_grants_nothing_and_spoils_nothing() -> None:
    keys = KeySet()
    bad = KV(f"/r/apikeys/{B}".encode(), b"{not json", 4)
    keys.listed([kv(A, 3, Grant(name="a")), bad], 5, now=0.0)
    assert set(keys.grants) == {A}


def test_misses_expire_and_stay_bounded() -> None:
    misses = Misses(ttl=5, max_size=3)
    misses.add(A, now=0.0)
    assert misses.hit(A, 4.9) and not misses.hit(A, 5.0)
    for i in range(10):
        misses.add(f"{i:064d}", now=10.0)
    assert len(misses) == 3 and misses.hit(f"{9:064d}", 10.0) and not misses.hit(f"{0:064d}", 10.0)
