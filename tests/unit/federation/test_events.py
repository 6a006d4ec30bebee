from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.events import KEEP_LINES, MAX_LINE, TaskEvents


@given(st.lists(st.text(max_size=20), max_size=3 * KEEP_LINES))
def test_lines_keep_the_last_ones_numbered_and_a_reader_sees_each_once(lines: list[str]) -> None:
    events, seen, read = TaskEvents(), 0, []
    for i, line in enumerate(lines):
        events = events.with_line(line)
        if i % 7 == 0:  # a reader polling now and then, never falling KEEP_LINES behind
            new = events.lines_after(seen)
            read += [x.line for x in new]
            seen = events.seq
    read += [x.line for x in events.lines_after(seen)]
    assert read == lines and events.seq == len(lines)
    assert len(events.lines) == min(len(lines), KEEP_LINES)


def test_progress_is_the_latest_value() -> None:
    events = TaskEvents().with_progress(0.1, "a").with_progress(0.5, "b")
    assert events.progress is not None and (events.progress.fraction, events.progress.message) == (
        0.5,
        "b",
    )


def test_lines_and_messages_are_capped_so_the_value_stays_small() -> None:
    events = TaskEvents().with_progress(0.5, "m" * 10_000)
    for _ in range(3 * KEEP_LINES):
        events = events.with_line("x" * 10_000)
    assert len(events.model_dump_json()) < 64 * 1024


def test_a_huge_progress_message_or_line_is_cut() -> None:
    events = TaskEvents().with_progress(0.5, "p" * 10_000_000).with_line("l" * 10_000_000)
    assert events.progress is not None and len(events.progress.message) == MAX_LINE
    assert len(events.lines[-1].line) == MAX_LINE
