from hypothesis import given
from hypothesis import strategies as st

from federation import keys


def test_prefix_end_covers_exactly_the_prefix() -> None:
    assert keys.prefix_end(b"/a/") == b"/a0"
    assert keys.prefix_end(b"a\xff") == b"b"
    assert keys.prefix_end(b"\xff\xff") == b"\x00"


@given(
    st.lists(
        st.tuples(st.integers(0, 9), st.integers(0, 2**62)), min_size=2, max_size=30, unique=True
    )
)
def test_ready_keys_sort_in_claim_order(items: list[tuple[int, int]]) -> None:
    """Lexical key order is priority (high first), then age (oldest first)."""
    by_key = sorted(items, key=lambda it: keys.ready("/r", "p", "app", it[0], it[1], "id"))
    assert by_key == sorted(items, key=lambda it: (-it[0], it[1]))


def test_task_id_is_the_last_segment_of_every_per_task_key() -> None:
    tid = "01JD3ZZZZZZZZZZZZZZZZZZZZZ.eu-west-1"
    for key in (
        keys.task("/r", "eu-west-1", tid),
        keys.ready("/r", "eu-west-1", "demo", 5, 123, tid),
        keys.claim("/r", "eu-west-1", "c1", tid),
        keys.running("/r", "eu-west-1", tid),
        keys.done("/r", "eu-west-1", 5, tid),
    ):
        assert keys.task_id_of(key) == tid


def test_done_before_bounds_older_entries_only() -> None:
    older = keys.done("/r", "p", 100, "x")
    newer = keys.done("/r", "p", 200, "x")
    assert keys.done_all("/r", "p") <= older < keys.done_before("/r", "p", 150) <= newer


def test_idempotency_key_is_hashed_and_scoped_by_app() -> None:
    a = keys.idempotency("/r", "a", "key with / slashes and spaces")
    assert b" " not in a and a.count(b"/") == keys.idempotency("/r", "a", "k").count(b"/")
    assert a != keys.idempotency("/r", "b", "key with / slashes and spaces")


def test_a_claim_key_lies_under_its_claimers_prefix_and_the_partitions() -> None:
    claim = keys.claim("/r", "p", "c1", "t")
    assert claim.startswith(keys.claims_of("/r", "p", "c1"))
    assert keys.claims_of("/r", "p", "c1").startswith(keys.claims_all("/r", "p"))
    assert not claim.startswith(keys.claims_all("/r", "p2"))
