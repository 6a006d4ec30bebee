"""Loading a user's handler class and calling one of its functions with a task context.

The handler API (spec): ``load()`` once per replica, then one method per function,
``def f(payload: bytes, ctx) -> bytes | dict`` or ``async def``. A dict result is JSON. Large
bodies: ``@stream`` handlers and async-iterator results (``regional/streams.py``).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from federation.limits import MAX_LINE
from regional.streams import Body, wants_stream


class Context:
    """What a handler sees of its task: its id, ``progress()``, ``log()`` and ``cancelled``.

    Sync handlers run in worker threads; events cross back to the loop thread-safely."""

    def __init__(
        self, task_id: str, loop: asyncio.AbstractEventLoop, emit: Callable[[Any], None]
    ) -> None:
        self.task_id = task_id
        self._loop = loop
        self._emit = emit
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    # Cut here already: each goes to the agent as one gRPC message, and one past gRPC's limit
    # would break the task's stream as if the replica had died.
    def progress(self, fraction: float, message: str = "") -> None:
        self._send(("progress", float(fraction), str(message)[:MAX_LINE]))

    def log(self, line: str) -> None:
        self._send(("log", str(line)[:MAX_LINE]))

    def _send(self, event: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._emit(event)
        else:
            self._loop.call_soon_threadsafe(self._emit, event)


class UnknownFunction(LookupError):
    pass


def load_handler(path: str) -> Any:
    """``"spillover.demo.app:Model"`` → an instance with ``load()`` already called."""
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    instance = cls()
    if hasattr(instance, "load"):
        instance.load()
    return instance


def function_of(
    instance: Any, name: str, listed: tuple[str, ...] | None = None
) -> Callable[..., Any]:
    """The method a task named. With the app's ``functions`` list, only those; without it, only
    methods defined (``def``, ``async def``, decorated) in the handler class's own body: not
    inherited ones (a base class's or ``object``'s), not attributes set on the instance (a
    model ``load()`` keeps is callable too), never ``load`` or a ``_private`` one."""
    cls = type(instance)
    private = name.startswith("_") or name == "load"
    if listed is not None:
        if private or name not in listed:
            raise UnknownFunction(f"the handler has no function {name!r} (the app's functions, "
                                  f"listed in [app] functions: {', '.join(listed)})")  # fmt: skip
        fn = getattr(instance, name, None)
        if not callable(fn):
            raise UnknownFunction(f"function {name!r} is listed in [app] functions, but "
                                  f"{cls.__name__} has no such method")  # fmt: skip
        return fn  # type: ignore[no-any-return]
    if private or not inspect.isfunction(vars(cls).get(name)):
        names = ", ".join(functions(cls)) or "none"
        raise UnknownFunction(f"the handler has no function {name!r} (its functions, the "
                              f"methods defined in {cls.__name__}: {names})")  # fmt: skip
    return getattr(instance, name)  # type: ignore[no-any-return]


def functions(cls: type) -> list[str]:
    """The functions a handler class offers without a ``functions`` list."""
    return [
        n for n, v in vars(cls).items()
        if inspect.isfunction(v) and not n.startswith("_") and n != "load"
    ]  # fmt: skip


async def call(fn: Callable[..., Any], body: Body, ctx: Context, pool: ThreadPoolExecutor) -> Any:
    """Run the function (async on the loop, sync in the pool) on the body, as a stream if it
    asked for one (``@stream``), else as bytes. Returns what it returned."""
    if wants_stream(fn):
        if inspect.isasyncgenfunction(fn):
            return fn(body, ctx)
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@stream needs an async handler; {fn.__name__} is not")
        return await fn(body, ctx)
    payload = await body.read()
    if inspect.isasyncgenfunction(fn):
        return fn(payload, ctx)
    if inspect.iscoroutinefunction(fn):
        return await fn(payload, ctx)
    return await asyncio.get_running_loop().run_in_executor(pool, fn, payload, ctx)


def streamed(result: Any) -> AsyncIterator[bytes] | None:
    """A result to send in chunks: an async iterator of bytes."""
    return result.__aiter__() if hasattr(result, "__aiter__") else None


def encode_result(result: Any) -> tuple[bytes, str]:
    if isinstance(result, bytes | bytearray | memoryview):
        return bytes(result), "application/octet-stream"
    if isinstance(result, str):
        return result.encode(), "text/plain; charset=utf-8"
    return json.dumps(result).encode(), "application/json"
