"""The handler API in the replica: what a handler reports is bounded before it leaves (it
travels to the agent as gRPC messages), and which of its methods a task may call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from federation.events import MAX_LINE
from regional.batching import batch
from regional.handler import Context, UnknownFunction, function_of
from regional.streams import stream


async def test_a_huge_log_line_or_progress_message_is_cut_in_the_replica() -> None:
    sent: list[Any] = []
    ctx = Context("t1", asyncio.get_running_loop(), sent.append)
    ctx.log("l" * 100_000_000)
    ctx.progress(0.5, "p" * 100_000_000)
    assert [len(e[-1]) for e in sent] == [MAX_LINE, MAX_LINE]


class Base:
    def inherited(self, payload: bytes, ctx: Any) -> bytes:
        return b"base"


class Handler(Base):
    def load(self) -> None:
        self.model = lambda payload, ctx: b"model"  # callable, but no function

    def predict(self, payload: bytes, ctx: Any) -> bytes:
        return b"predicted"

    @batch(max_batch_size=2)
    async def batched(self, payloads: list[bytes], ctxs: list[Any]) -> list[bytes]:
        return payloads

    @stream
    async def streamed(self, body: Any, ctx: Any) -> bytes:
        return b""

    def _helper(self) -> None: ...


@pytest.mark.parametrize(
    "name", ["inherited", "model", "load", "_helper", "__init__", "__class__", "mro", "missing"]
)
def test_without_a_list_only_the_classs_own_methods_are_callable(name: str) -> None:
    handler = Handler()
    handler.load()
    for fn in ("predict", "batched", "streamed"):
        assert callable(function_of(handler, fn))
    with pytest.raises(UnknownFunction) as e:
        function_of(handler, name)
    assert f"no function {name!r}" in str(e.value)
    assert "defined in Handler: predict, batched, streamed" in str(e.value)


def test_with_a_list_only_its_functions_are_callable_inherited_ones_too() -> None:
    handler, listed = Handler(), ("inherited", "predict", "absent")
    assert function_of(handler, "inherited", listed)(b"", None) == b"base"
    assert function_of(handler, "predict", listed)(b"", None) == b"predicted"
    for name in ("batched", "load", "_helper"):
        with pytest.raises(UnknownFunction, match=r"listed in \[app\] functions: inherited, pre"):
            function_of(handler, name, listed)
    with pytest.raises(UnknownFunction, match=r"'absent' is listed .* Handler has no such method"):
        function_of(handler, "absent", listed)
