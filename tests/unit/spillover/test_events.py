"""Server-sent events to values, across reconnects: nothing delivered twice, done after the
final state."""

from __future__ import annotations

import json

from spillover.events import EventReader, LogEvent, ProgressEvent, StateEvent

TID = "01J00000000000000000000000.us-east-1"


def state(s: str) -> list[str]:
    status = {"id": TID, "app": "a", "function": "f", "state": s, "home_region": "us-east-1"}
    return ["event: state", f"data: {json.dumps(status)}", ""]


def progress(f: float, message: str = "") -> list[str]:
    return ["event: progress", f"data: {json.dumps({'fraction': f, 'message': message})}", ""]


def log(seq: int, line: str) -> list[str]:
    return ["event: log", f"data: {json.dumps({'seq': seq, 'line': line})}", ""]


def read(reader: EventReader, lines: list[str]) -> list[object]:
    return [e for line in lines if (e := reader.feed(line)) is not None]


def test_frames_become_events_and_comments_are_skipped() -> None:
    reader = EventReader()
    got = read(reader, [*state("running"), ": keep-alive", "", *progress(0.5, "half"),
                        *log(1, "hello"), *state("succeeded")])  # fmt: skip
    assert [type(e) for e in got] == [StateEvent, ProgressEvent, LogEvent, StateEvent]
    assert got[1] == ProgressEvent(0.5, "half") and got[2] == LogEvent(1, "hello")
    assert isinstance(got[3], StateEvent) and got[3].status.done and reader.done


def test_a_reconnect_delivers_only_what_is_new() -> None:
    reader = EventReader()
    first = read(reader, [*state("running"), *progress(0.2), *log(1, "a"), *log(2, "b"),
                          "event: progress"])  # cut off mid-frame  # fmt: skip
    reader.reconnected()
    # The edge starts over: the current state, the last progress, every recent line.
    second = read(reader, [*state("running"), *progress(0.2), *log(1, "a"), *log(2, "b"),
                           *log(3, "c"), *progress(0.9), *state("failed")])  # fmt: skip
    assert len(first) == 4
    assert second[:2] == [LogEvent(3, "c"), ProgressEvent(0.9)]
    assert isinstance(second[2], StateEvent) and second[2].status.state == "failed"
    assert reader.done


def test_kinds_from_a_newer_edge_are_ignored() -> None:
    reader = EventReader()
    assert read(reader, ["event: metrics", 'data: {"gpu": 1}', "", "data: {}", ""]) == []
    assert not reader.done
