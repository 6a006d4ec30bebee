"""Token buckets: pure, ``now`` passed in. A bucket holds up to ``burst`` tokens and gains
``rate`` a second; each request takes one. Over any window of t seconds it lets through at most
``burst + rate * t`` requests (tested with hypothesis).

Worked example: rate 50/s, burst 100. A quiet key sends 150 requests at once: 100 pass, 50 get
429 with Retry-After 1 (the next token comes in 20 ms; Retry-After is whole seconds). Sent evenly
after that, 50/s pass forever.
"""

from __future__ import annotations

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
