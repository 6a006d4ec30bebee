"""Small asyncio helpers that are easy to get wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until they have finished, whatever they raise.

    Not ``with suppress(CancelledError): await task``: if the *waiting* task is cancelled
    meanwhile, that swallows its own cancellation and it carries on (a shutdown that hangs)."""
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending)
