"""``spillover.AsyncClient``: the asyncio client, the same operations as
:class:`~spillover.Client` (the same steps, from ``spillover/protocol.py``), awaited.

    async with spillover.AsyncClient() as client:
        result = await client.run("demo", "sleep", {"seconds": 2})
        async for result in client.map("demo", "echo", payloads): ...
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx2
from tenacity import AsyncRetrying

from spillover import protocol
from spillover.events import Event, EventReader
from spillover.progress import Bar
from spillover.protocol import RECONNECT_PAUSE, Call, Deadline, Flow, Reply, Status, as_path
from spillover.retry import policy
from spillover.transport import NETWORK, Download, Settings, reaching, timeouts

T = TypeVar("T")
R = TypeVar("R")
_END = object()


class AsyncClient:
    """As :class:`~spillover.Client`, with ``await``; one ``httpx2.AsyncClient`` inside."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        retry_for: float = 60.0,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        self.settings = Settings.of(url, api_key, retry_for)
        self._http = httpx2.AsyncClient(**self.settings.http_options(verify))

    # -- tasks -----------------------------------------------------------------------------

    async def run(
        self,
        app: str,
        function: str,
        payload: Any = b"",
        *,
        timeout: float | None = None,
        to: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Any:
        """See :meth:`spillover.Client.run`."""
        deadline = Deadline(timeout)
        sub = protocol.submission(app, function, payload, **options)
        return await self._drive(protocol.run(sub, deadline, as_path(to)), deadline)

    async def submit(
        self,
        app: str,
        function: str,
        payload: Any = b"",
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> AsyncTask:
        """See :meth:`spillover.Client.submit`."""
        flow = protocol.submit(protocol.submission(app, function, payload, **options))
        return AsyncTask(self, (await self._drive(flow, Deadline(timeout))).id)

    def task(self, task_id: str) -> AsyncTask:
        return AsyncTask(self, task_id)

    async def map(
        self,
        app: str,
        function: str,
        payloads: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 32,
        return_exceptions: bool = False,
        progress: bool = False,
        **options: Any,
    ) -> AsyncIterator[Any]:
        """See :meth:`spillover.Client.map`; ``payloads`` may be an async iterable too. Leaving
        early cancels the calls in flight (their tasks still run); close the generator
        (``contextlib.aclosing``) to have that happen at once."""
        if concurrency < 1:
            raise ValueError(f"concurrency = {concurrency}, must be ≥ 1")
        items = _aiter(payloads)
        bar = Bar.counting(payloads, f"{app}/{function}") if progress else None
        window: collections.deque[asyncio.Task[Any]] = collections.deque()

        async def more() -> None:
            if (p := await anext(items, _END)) is not _END:
                window.append(asyncio.create_task(self.run(app, function, p, **options)))

        done = 0
        try:
            for _ in range(concurrency):
                await more()
            while window:
                head = window.popleft()
                await more()  # keep the window full while we yield
                try:
                    result = await head
                except Exception as e:
                    if not return_exceptions:
                        raise
                    result = e
                done += 1
                if bar is not None:
                    bar.update(done)
                yield result
        finally:
            for t in window:
                t.cancel()
            await asyncio.gather(*window, return_exceptions=True)
            if bar is not None:
                bar.close()

    # -- sending ---------------------------------------------------------------------------

    async def _drive(self, flow: Flow[T], deadline: Deadline) -> T:
        call = next(flow)
        while True:
            reply = await self._retried(self._once, call, deadline)
            try:
                call = flow.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def _retried(
        self, send: Callable[[Call], Awaitable[R]], call: Call, deadline: Deadline
    ) -> R:
        replayable = call.body is None or call.body.replayable
        retrying = AsyncRetrying(**policy(deadline, self.settings.retry_for, replayable))
        async for attempt in retrying:
            with attempt:
                return await send(call)
        raise AssertionError("tenacity re-raises the last error")

    async def _open(self, call: Call) -> httpx2.Response:
        request = self._http.build_request(
            call.method, call.path, headers=dict(call.headers), timeout=timeouts(call),
            content=call.body.acontent() if call.body is not None else None,
        )  # fmt: skip
        with reaching(self.settings.url):
            response = await self._http.send(request, stream=True)
            if response.status_code >= 400 and response.status_code not in call.accept:
                async with contextlib.aclosing(response):
                    body = await response.aread()
                Reply(response.status_code, response.headers, body).raise_for_status()
        return response

    async def _once(self, call: Call) -> Reply:
        response = await self._open(call)
        with reaching(self.settings.url):
            async with contextlib.aclosing(response):
                if call.to is not None and response.status_code == 200:
                    await self._download(response, call.to)
                    return Reply(response.status_code, response.headers, b"")
                return Reply(response.status_code, response.headers, await response.aread())

    async def _download(self, response: httpx2.Response, to: Path) -> None:
        download = await asyncio.to_thread(Download, to, response)
        try:
            async for chunk in response.aiter_bytes():
                await asyncio.to_thread(download.write, chunk)
            await asyncio.to_thread(download.finish)
        except BaseException:
            await asyncio.to_thread(download.abort)
            raise

    async def _events(self, task_id: str) -> AsyncIterator[Event]:
        reader, call = EventReader(), protocol.events_call(task_id)
        while True:
            response = await self._retried(self._open, call, Deadline(None))
            try:
                async for line in response.aiter_lines():
                    if (event := reader.feed(line)) is not None:
                        yield event
                        if reader.done:
                            return
            except NETWORK:
                pass  # cut off: open it again
            finally:
                await response.aclose()
            reader.reconnected()
            await asyncio.sleep(RECONNECT_PAUSE)

    # -- lifetime --------------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class AsyncTask:
    """See :class:`spillover.Task`."""

    def __init__(self, client: AsyncClient, task_id: str) -> None:
        self.client, self.id = client, task_id

    def __repr__(self) -> str:
        return f"AsyncTask({self.id!r})"

    async def status(self) -> Status:
        return await self.client._drive(protocol.status(self.id), Deadline(None))

    async def result(
        self, timeout: float | None = None, to: str | os.PathLike[str] | None = None
    ) -> Any:
        deadline = Deadline(timeout)
        return await self.client._drive(protocol.result(self.id, deadline, as_path(to)), deadline)

    def events(self) -> AsyncIterator[Event]:
        return self.client._events(self.id)

    async def cancel(self) -> Status:
        return await self.client._drive(protocol.cancel(self.id), Deadline(None))


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for x in items:
            yield x
    else:
        for x in items:
            yield x
