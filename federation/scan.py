"""Reading the head of a deep queue without walking all of it.

etcd 3.4 answers a range by first collecting every key between its start and end from its index,
and only then applies ``limit``: reading the first 500 of a million queued tasks walks the
million (~0.45 s of a member's time here), and so does ``count_only``. (etcd 3.5 stops at the
limit; Debian ships 3.4.) What a range walks is what lies between its bounds, so a reader that
wants the head bounds its ranges by time instead: queue keys are
``…/ready/{app}/{9 - priority}/{enqueued_ns:020d}/{id}``, and within one priority run they are in
enqueue order.

:func:`window` gives the next range after a cursor: a time span of the current run, ending the
run (and moving to the next) once the span reaches the present. :func:`next_span` sizes the span
from what the last window held, so a window holds about a page: it doubles after a sparse window,
grows eightfold after an empty one (a gap of a day is crossed in a handful of empty windows, not
thousands), and shrinks in proportion after a window that held more than a page (that one walk
cost more than a page, once). Pure: the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass

# No queued task is older than this: response_grace_period is at most 7 days, and a task still
# waiting at its deadline is expired. A run's first window starts here.
MAX_AGE_NS = 8 * 86_400 * 10**9
# Keys carry the edge's clock at submit: a window ends a run only past now plus this margin.
SKEW_NS = 60 * 10**9
FIRST_SPAN_NS = 60 * 10**9
MIN_SPAN_NS = 10**6
RUNS = 10  # priorities 9..0 are runs "0/" .. "9/"


@dataclass(frozen=True, slots=True)
class Window:
    start: bytes  # first key to read
    end: bytes  # range end (exclusive): every key below it is covered once this window is read
    last: bool  # the window ends the last run: past it there is nothing (a complete scan)


def window(prefix: bytes, after: bytes, now_ns: int, span_ns: int) -> Window:
    """The next range after ``after`` (the cursor: a key read, or a window's end; ``b""`` to
    start) under ``prefix`` (``…/ready/{app}/``)."""
    run, since = _cursor(prefix, after, now_ns)
    start = after + b"\0" if after.startswith(prefix + b"%d/" % run) else _key(prefix, run, since)
    until = since + span_ns
    if until > now_ns + SKEW_NS:  # the rest of this run: nothing newer exists yet
        return Window(start, prefix + b"%d0" % run, run == RUNS - 1)
    return Window(start, _key(prefix, run, until), False)


def next_span(span_ns: int, count: int, limit: int) -> int:
    """The span of the next window, from ``count`` keys in one of ``span_ns``."""
    if count == 0:
        return span_ns * 8
    if count <= limit // 2:
        return span_ns * 2
    return max(MIN_SPAN_NS, span_ns * limit // (2 * count)) if count > limit else span_ns


def _cursor(prefix: bytes, after: bytes, now_ns: int) -> tuple[int, int]:
    """(run, time) the next window starts from."""
    oldest = now_ns - MAX_AGE_NS
    if not after:
        return 0, oldest
    rest = after[len(prefix) :]
    run = rest[0] - ord("0")
    if rest[1:2] == b"0":  # the end of a run (``{run}0``): the next run from its start
        return run + 1, oldest
    try:
        return run, max(oldest, int(rest[2:22]))
    except ValueError:
        return run, oldest


def _key(prefix: bytes, run: int, ns: int) -> bytes:
    return prefix + b"%d/%020d" % (run, max(0, ns))
