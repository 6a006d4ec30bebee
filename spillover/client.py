"""``spillover.Client``: the blocking client.

    with spillover.Client() as client:          # SPILLOVER_URL, SPILLOVER_API_KEY
        client.run("demo", "sleep", {"seconds": 2})            # {"slept": 2.0, ...}
        task = client.submit("demo", "sleep", {"seconds": 60})
        for event in task.events(): ...
        task.cancel()

One ``httpx2.Client`` (a connection pool, safe to share between threads) per ``Client``.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx2
from tenacity import Retrying

from spillover import protocol
from spillover.events import Event, EventReader
from spillover.progress import Bar
from spillover.protocol import RECONNECT_PAUSE, Call, Deadline, Flow, Reply, Status, as_path
from spillover.retry import policy
from spillover.transport import NETWORK, Download, Settings, reaching, timeouts

T = TypeVar("T")
R = TypeVar("R")
_END = object()


class Client:
    """``url`` and ``api_key`` default to ``$SPILLOVER_URL`` (else ``http://127.0.0.1:8080``)
    and ``$SPILLOVER_API_KEY``. ``retry_for``: seconds one request is retried for (connection
    failures, 429, 503) before its last error is raised. ``verify``: as httpx2's (a CA bundle's
    path or an ``ssl.SSLContext`` for an edge with a private CA)."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        retry_for: float = 60.0,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        self.settings = Settings.of(url, api_key, retry_for)
        self._http = httpx2.Client(**self.settings.http_options(verify))

    # -- tasks -----------------------------------------------------------------------------

    def run(
        self,
        app: str,
        function: str,
        payload: Any = b"",
        *,
        timeout: float | None = None,
        to: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Any:
        """Submit and wait for the result: a dict (or list) for JSON, bytes otherwise, or the
        path of ``to`` when given (the result is streamed into that file). ``timeout``: seconds
        to wait in all (None: as long as the task takes), then :class:`~spillover.Timeout`.

        ``options``: ``region`` (a hard pin; a list is an allowed set), ``prefer_region``,
        ``priority`` (0..9), ``webhook``, ``idempotency_key``, ``content_type``."""
        deadline = Deadline(timeout)
        sub = protocol.submission(app, function, payload, **options)
        return self._drive(protocol.run(sub, deadline, as_path(to)), deadline)

    def submit(
        self,
        app: str,
        function: str,
        payload: Any = b"",
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> Task:
        """Submit without waiting: the task, queued. ``timeout`` bounds the retries of the
        submit itself; options as for :meth:`run`."""
        flow = protocol.submit(protocol.submission(app, function, payload, **options))
        return Task(self, self._drive(flow, Deadline(timeout)).id)

    def task(self, task_id: str) -> Task:
        """A task submitted earlier (by anyone holding a key for its app)."""
        return Task(self, task_id)

    def map(
        self,
        app: str,
        function: str,
        payloads: Iterable[Any],
        *,
        concurrency: int = 32,
        return_exceptions: bool = False,
        progress: bool = False,
        **options: Any,
    ) -> Iterator[Any]:
        """Results of ``run`` for each payload, in input order, with at most ``concurrency``
        calls in flight (payloads are read lazily, so a generator of a million is fine). A
        failure is raised where it falls in the order, or yielded as the exception object
        when ``return_exceptions``. Leaving early stops submitting; calls in flight finish in
        the background and their results are dropped."""
        if concurrency < 1:
            raise ValueError(f"concurrency = {concurrency}, must be ≥ 1")
        items = iter(payloads)
        bar = Bar.counting(payloads, f"{app}/{function}") if progress else None
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="spillover-map")
        window: collections.deque[Future[Any]] = collections.deque(
            pool.submit(self.run, app, function, p, **options)
            for p in itertools.islice(items, concurrency)
        )
        done = 0
        try:
            while window:
                head = window.popleft()
                if (p := next(items, _END)) is not _END:  # keep the window full while we yield
                    window.append(pool.submit(self.run, app, function, p, **options))
                try:
                    result = head.result()
                except Exception as e:
                    if not return_exceptions:
                        raise
                    result = e
                done += 1
                if bar is not None:
                    bar.update(done)
                yield result
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            if bar is not None:
                bar.close()

    # -- sending ---------------------------------------------------------------------------

    def _drive(self, flow: Flow[T], deadline: Deadline) -> T:
        call = next(flow)
        while True:
            reply = self._retried(self._once, call, deadline)
            try:
                call = flow.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def _retried(self, send: Callable[[Call], R], call: Call, deadline: Deadline) -> R:
        replayable = call.body is None or call.body.replayable
        for attempt in Retrying(**policy(deadline, self.settings.retry_for, replayable)):
            with attempt:
                return send(call)
        raise AssertionError("tenacity re-raises the last error")

    def _open(self, call: Call) -> httpx2.Response:
        """Sent, its body still to read; an error answer raises its exception."""
        request = self._http.build_request(
            call.method, call.path, headers=dict(call.headers), timeout=timeouts(call),
            content=call.body.content() if call.body is not None else None,
        )  # fmt: skip
        with reaching(self.settings.url):
            response = self._http.send(request, stream=True)
            if response.status_code >= 400 and response.status_code not in call.accept:
                with contextlib.closing(response):
                    Reply(
                        response.status_code, response.headers, response.read()
                    ).raise_for_status()
        return response

    def _once(self, call: Call) -> Reply:
        response = self._open(call)
        with reaching(self.settings.url), contextlib.closing(response):
            if call.to is not None and response.status_code == 200:
                self._download(response, call.to)
                return Reply(response.status_code, response.headers, b"")
            return Reply(response.status_code, response.headers, response.read())

    def _download(self, response: httpx2.Response, to: Path) -> None:
        download = Download(to, response)
        try:
            for chunk in response.iter_bytes():
                download.write(chunk)
            download.finish()
        except BaseException:
            download.abort()
            raise

    def _events(self, task_id: str) -> Iterator[Event]:
        reader, call = EventReader(), protocol.events_call(task_id)
        while True:
            response = self._retried(self._open, call, Deadline(None))
            try:
                for line in response.iter_lines():
                    if (event := reader.feed(line)) is not None:
                        yield event
                        if reader.done:
                            return
            except NETWORK:
                pass  # cut off: open it again
            finally:
                response.close()
            reader.reconnected()
            time.sleep(RECONNECT_PAUSE)

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Task:
    """A submitted task: its ``id``, and what can be asked of it."""

    def __init__(self, client: Client, task_id: str) -> None:
        self.client, self.id = client, task_id

    def __repr__(self) -> str:
        return f"Task({self.id!r})"

    def status(self) -> Status:
        return self.client._drive(protocol.status(self.id), Deadline(None))

    def result(self, timeout: float | None = None, to: str | os.PathLike[str] | None = None) -> Any:
        """As :meth:`Client.run`: the result once the task succeeds; its failure raised."""
        deadline = Deadline(timeout)
        return self.client._drive(protocol.result(self.id, deadline, as_path(to)), deadline)

    def events(self) -> Iterator[Event]:
        """State changes, progress and log lines as they happen; ends after the final state.
        A dropped stream is opened again; nothing is delivered twice."""
        return self.client._events(self.id)

    def cancel(self) -> Status:
        """Cancel: a queued task never starts, a running one is told to stop. A task that
        already finished is left as it is. Its status either way."""
        return self.client._drive(protocol.cancel(self.id), Deadline(None))
