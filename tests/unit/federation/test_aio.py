import asyncio

import pytest

from federation.aio import cancel_and_wait


async def test_cancelling_the_waiter_is_not_swallowed() -> None:
    """The shutdown hang this helper exists for: a task that cancels and awaits its children is
    itself cancelled meanwhile; it must stop, not carry on."""

    async def stubborn_child() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # takes a moment to clean up
            raise

    async def parent() -> str:
        child = asyncio.create_task(stubborn_child())
        await asyncio.sleep(0)  # the child is running
        await cancel_and_wait([child])
        return "carried on"

    task = asyncio.create_task(parent())
    await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_children_are_cancelled_and_awaited_whatever_they_raise() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    async def sleeps() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(fails()), asyncio.create_task(sleeps())]
    await asyncio.sleep(0)
    await cancel_and_wait(tasks)
    assert all(t.done() for t in tasks) and tasks[1].cancelled()
