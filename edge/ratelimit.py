"""Token buckets: pure, ``now`` passed in. A bucket holds up to ``burst`` tokens and gains
``rate`` a second; each request takes one. Over any window of t seconds it lets through at most
``burst + rate * t`` requests (tested with hypothesis).

Worked example: rate 50/s, burst 100. A quiet key sends 150 requests at once: 100 pass, 50 get
429 with Retry-After 1 (the next token comes in 20 ms; Retry-After is whole seconds). Sent evenly
after that, 50/s pass forever.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    at: float  # when ``tokens`` was counted

    @classmethod
    def full(cls, burst: float, now: float) -> Bucket:
        return cls(burst, now)

    def take(self, rate: float, burst: float, now: float) -> tuple[Bucket, float]:
        """(the bucket after, 0.0) if a token was taken, else (the bucket, seconds until one
        will be there). ``burst`` must be at least 1, or no token would ever be whole."""
        tokens = min(burst, self.tokens + max(0.0, now - self.at) * rate)
        if tokens >= 1:
            return Bucket(tokens - 1, now), 0.0
        return Bucket(tokens, now), (1 - tokens) / rate

    def full_at(self, rate: float, burst: float) -> float:
        """When it is full again: from then on it is the same as a new bucket."""
        return self.at + max(0.0, burst - self.tokens) / rate


def edge_share(rate: float, burst: float, edges: int) -> tuple[float, float]:
    """One edge's part of a federation-wide limit: rate/N and burst/N of N live edges. The burst
    part is at least 1 (a bucket of less never lets a request through), so with fewer burst
    tokens than edges the federation may let through up to N at once."""
    n = max(1, edges)
    return rate / n, max(1.0, burst / n)


class Buckets:
    """A bucket per name (an API key's digest), bounded: a bucket that has been refilled is the
    same as none and is dropped; past ``max_size`` the least recently used goes (that name then
    starts again from a full bucket — at worst one extra burst)."""

    def __init__(self, max_size: int = 100_000) -> None:
        self.max_size = max_size
        self._buckets: OrderedDict[str, tuple[Bucket, float]] = (
            OrderedDict()
        )  # name -> (b, full_at)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, name: str, rate: float, burst: float, now: float) -> float:
        """0.0 if the request may go, else seconds until it may."""
        found = self._buckets.pop(name, None)
        bucket = found[0] if found is not None else Bucket.full(burst, now)
        bucket, wait = bucket.take(rate, burst, now)
        self._buckets[name] = (bucket, bucket.full_at(rate, burst))
        self._evict(now)
        return wait

    def _evict(self, now: float) -> None:
        # Least recently used first: stop at the first still filling (an approximation that
        # keeps eviction O(1) per request; the size cap bounds what it misses).
        while self._buckets:
            name, (_, full_at) = next(iter(self._buckets.items()))
            if full_at > now and len(self._buckets) <= self.max_size:
                return
            del self._buckets[name]
