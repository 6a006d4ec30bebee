"""A handler for benchmarks: reports when it started, so dispatch latency can be measured."""

from __future__ import annotations

import time
from typing import Any


class Probe:
    def stamp(self, payload: bytes, ctx: Any) -> dict[str, float]:
        return {"started": time.time()}
