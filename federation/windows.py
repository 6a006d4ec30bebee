"""Time windows for the autoscaler: values recorded over the last ``span`` seconds, read back as
an average or a slope. Frozen: ``record`` returns a new window, so the policy's state is a value.

One bucket per second, as knative's ``aggregation/bucketing.go``: a window holds at most ``span``
buckets however often it is fed (a leader ticking ten times a second keeps 60, not 600), and a
second with several samples counts once, as their mean.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, replace

Bucket = tuple[int, float, int]  # (second, sum of the values recorded in it, how many)


@dataclass(frozen=True, slots=True)
class Window:
    span: float  # seconds
    buckets: tuple[Bucket, ...] = ()  # oldest first

    def record(self, now: float, value: float) -> Window:
        second = math.floor(now)
        kept = self._within(second, self.span)
        if kept and kept[-1][0] == second:
            _, total, n = kept[-1]
            return replace(self, buckets=(*kept[:-1], (second, total + value, n + 1)))
        return replace(self, buckets=(*kept, (second, value, 1)))

    def average(self, now: float, last: float | None = None) -> float:
        """The mean over the window, or over its ``last`` seconds; 0 with nothing recorded."""
        kept = self._within(math.floor(now), min(last or self.span, self.span))
        return sum(total / n for _, total, n in kept) / len(kept) if kept else 0.0

    def slope(self, now: float, last: float | None = None) -> float:
        """Change per second from the oldest bucket in the window (or its ``last`` seconds) to the
        newest: how fast a queue grows. 0 with fewer than two seconds recorded."""
        kept = self._within(math.floor(now), min(last or self.span, self.span))
        if len(kept) < 2:
            return 0.0
        (t0, s0, n0), (t1, s1, n1) = kept[0], kept[-1]
        return (s1 / n1 - s0 / n0) / (t1 - t0)

    def _within(self, second: int, span: float) -> tuple[Bucket, ...]:
        # Buckets are in time order: two bisections, not a scan (the policy reads them every tick).
        first = bisect_right(self.buckets, second - span, key=_second)
        return self.buckets[first : bisect_right(self.buckets, second, key=_second)]


def _second(b: Bucket) -> int:
    return b[0]
