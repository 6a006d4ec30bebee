"""The storage levels and what the keeper defragments: pure, no etcd."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.admission import retry_after
from federation.storage import Level, MemberSpace, Space, level, to_defragment

MiB = 1 << 20
QUOTA = 100 * MiB


def space(*sizes: tuple[int, int], nospace: bool = False) -> Space:
    members = tuple(
        MemberSpace(f"m{i}", s * MiB, u * MiB, nospace) for i, (s, u) in enumerate(sizes)
    )
    return Space(members, QUOTA)


def test_levels_have_hysteresis_between_the_watermarks() -> None:
    assert level(space((50, 50)), Level.OK, 0.8, 0.7) is Level.OK
    assert level(space((80, 80)), Level.OK, 0.8, 0.7) is Level.HIGH
    assert level(space((75, 75)), Level.HIGH, 0.8, 0.7) is Level.HIGH  # not back yet
    assert level(space((69, 69)), Level.HIGH, 0.8, 0.7) is Level.OK
    assert level(space((10, 10), nospace=True), Level.OK, 0.8, 0.7) is Level.NOSPACE
    assert level(space((75, 75)), Level.NOSPACE, 0.8, 0.7) is Level.HIGH  # disarmed, draining


def test_the_fullest_member_decides() -> None:
    assert level(space((10, 10), (85, 20)), Level.OK, 0.8, 0.7) is Level.HIGH


@given(st.lists(st.floats(0, 1.2), min_size=1, max_size=50))
def test_a_level_changes_only_across_a_watermark(ratios: list[float]) -> None:
    lvl = Level.OK
    for r in ratios:
        s = space((round(r * 100), 0))
        new = level(s, lvl, 0.8, 0.7)
        if new is not lvl:
            assert (new is Level.HIGH and s.ratio >= 0.8) or (new is Level.OK and s.ratio < 0.7)
        lvl = new


def test_defragment_only_members_with_enough_to_give_back_most_first() -> None:
    s = space((90, 80), (90, 20), (90, 50))
    assert [m.url for m in to_defragment(s, Level.HIGH, 0.7)] == ["m1", "m2", "m0"]
    assert [m.url for m in to_defragment(s, Level.OK, 0.7)] == ["m1", "m2"]
    assert [m.url for m in to_defragment(space((90, 89)), Level.NOSPACE, 0.7)] == ["m0"]


def test_out_of_space_every_member_is_defragmented_after_a_compaction() -> None:
    """etcd counts what a compaction freed as in use until its next commit, and out of space
    nothing commits: the figure alone would leave the alarm raised for good."""
    s = space((90, 90), (90, 89))
    assert [m.url for m in to_defragment(s, Level.NOSPACE, 0.7)] == ["m1"]
    assert [m.url for m in to_defragment(s, Level.NOSPACE, 0.7, compacted=True)] == ["m1", "m0"]
    assert to_defragment(space((90, 90)), Level.HIGH, 0.7, compacted=True) == []


def test_a_file_that_alone_keeps_the_level_high_is_defragmented() -> None:
    """Live data under the low watermark, the file over it, too little free for the 5 % rule:
    without this the level would stay high and submits refused for good."""
    stuck = space((72, 68))
    assert [m.url for m in to_defragment(stuck, Level.HIGH, 0.7)] == ["m0"]
    assert to_defragment(space((72, 71)), Level.HIGH, 0.7) == []


def test_retry_after_a_full_queue_follows_its_drain_rate() -> None:
    assert retry_after(10_050, 10_000, 200.0) == (50 + 1_000) / 200
    assert retry_after(10_000, 10_000, 0.0) == 30.0  # nothing drains it
    assert retry_after(10, 10, 1e6) == 1.0  # at least a second
    assert retry_after(10**6, 10, 1.0) == 60.0  # at most a minute
