import asyncio

import pytest

from federation.errors import StorageFull, Unavailable
from federation.retry import retried


class Flaky:
    """Fails with ``errors`` in turn, then answers "ok"; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, x: int) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return f"ok {x}"


async def test_a_call_that_works_is_made_once() -> None:
    fn = Flaky()
    assert await retried(fn, 1) == "ok 1"
    assert fn.calls == 1


async def test_etcd_briefly_away_is_retried_until_it_answers() -> None:
    fn = Flaky(Unavailable("leader changed"), Unavailable("again"))
    assert await retried(fn, 2, deadline=30) == "ok 2"
    assert fn.calls == 3


@pytest.mark.parametrize("error", [ValueError("bad"), StorageFull("etcd is out of space")])
async def test_what_retrying_cannot_heal_is_raised_at_once(error: Exception) -> None:
    fn = Flaky(error)
    with pytest.raises(type(error)):
        await retried(fn, 3)
    assert fn.calls == 1


async def test_the_deadline_counts_from_the_first_try() -> None:
    fn = Flaky(*[Unavailable("down")] * 1000)
    with pytest.raises(Unavailable):
        await retried(fn, 4, deadline=0.3)
    assert 2 <= fn.calls < 1000


async def test_a_set_event_ends_the_retries() -> None:
    lost = asyncio.Event()
    fn = Flaky(*[Unavailable("down")] * 1000)
    lost.set()
    with pytest.raises(Unavailable):
        await retried(fn, 5, until=lost)
    assert fn.calls == 1
