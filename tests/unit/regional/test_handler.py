"""What a handler reports travels to the agent as gRPC messages: bounded before it leaves."""

from __future__ import annotations

import asyncio
from typing import Any

from federation.events import MAX_LINE
from regional.handler import Context


async def test_a_huge_log_line_or_progress_message_is_cut_in_the_replica() -> None:
    sent: list[Any] = []
    ctx = Context("t1", asyncio.get_running_loop(), sent.append)
    ctx.log("l" * 100_000_000)
    ctx.progress(0.5, "p" * 100_000_000)
    assert [len(e[-1]) for e in sent] == [MAX_LINE, MAX_LINE]
