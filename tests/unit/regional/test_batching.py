import asyncio
from typing import Any

import pytest

from regional.batching import batch


class Doubler:
    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []

    @batch(max_batch_size=4, max_batch_wait_ms=50)
    def double(self, payloads: list[bytes], ctxs: list[Any]) -> list[bytes]:
        self.calls.append(payloads)
        return [p * 2 for p in payloads]

    @batch(max_batch_size=8, max_batch_wait_ms=20)
    async def fails(self, payloads: list[bytes], ctxs: list[Any]) -> list[bytes]:
        raise ValueError("model exploded")


async def test_concurrent_calls_become_batches_and_each_caller_gets_its_own_result() -> None:
    d = Doubler()
    results = await asyncio.gather(*(d.double(str(i).encode(), None) for i in range(10)))
    assert results == [str(i).encode() * 2 for i in range(10)]
    assert sum(len(c) for c in d.calls) == 10
    assert max(len(c) for c in d.calls) == 4  # never more than max_batch_size
    assert len(d.calls) < 10  # concurrent calls were really batched


async def test_a_lone_call_goes_alone_after_the_wait() -> None:
    d = Doubler()
    assert await d.double(b"x", None) == b"xx"
    assert d.calls == [[b"x"]]


async def test_a_failing_batch_fails_each_of_its_callers() -> None:
    d = Doubler()
    outcomes = await asyncio.gather(
        *(d.fails(b"x", None) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, ValueError) and str(o) == "model exploded" for o in outcomes)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch_size = 0"):
        batch(max_batch_size=0)
