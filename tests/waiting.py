"""Waiting in tests for state held by another process or task, with a generous deadline."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10, every: float = 0.02
) -> None:
    """Poll ``condition`` (sync or async) until it holds; fail after ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while True:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return
            await asyncio.sleep(every)
