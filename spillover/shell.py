"""``spillover run``, ``spillover submit`` and ``spillover task get|watch|result|cancel``: the
client from the shell. The edge is ``--url`` or ``$SPILLOVER_URL``; the key is
``$SPILLOVER_API_KEY`` (never an argument: arguments show in ``ps``).

    spillover run demo/sleep '{"seconds": 2}'
    ID=$(spillover submit demo/sleep '{"seconds": 30}') && spillover task watch "$ID"
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from spillover.client import Client, Task
from spillover.errors import SpilloverError, TaskFailed, Timeout
from spillover.events import LogEvent, ProgressEvent, StateEvent
from spillover.progress import Bar
from spillover.protocol import Status
from spillover.upload import JSON

T = TypeVar("T")


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url)


def _url(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--url", help="the edge (default: $SPILLOVER_URL, else http://127.0.0.1:8080)")


def _submit_args(prog: str, description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("target", metavar="APP/FUNCTION")
    ap.add_argument("payload", nargs="?", help="the body, JSON (default: {})")
    ap.add_argument("--file", type=Path, help="send this file as the body instead, streamed")
    ap.add_argument("--content-type", help="of --file (default application/octet-stream)")
    ap.add_argument("--region", help="hard pin: a region, or a comma list (allowed set)")
    ap.add_argument("--prefer-region", help="soft pin: the home region; the task may spill over")
    ap.add_argument("--priority", type=int, choices=range(10), metavar="0..9")
    _url(ap)
    return ap


def _task_options(args: argparse.Namespace, ap: argparse.ArgumentParser) -> dict[str, Any]:
    app, _, function = args.target.partition("/")
    if not app or not function:
        ap.error(f"{args.target!r}: expected APP/FUNCTION, e.g. demo/sleep")
    if args.file is not None and args.payload is not None:
        ap.error("give a JSON payload or --file, not both")
    if args.file is not None:
        payload: Any = sys.stdin.buffer if str(args.file) == "-" else args.file
        content_type = args.content_type
    else:
        text = "{}" if args.payload is None else args.payload
        try:
            json.loads(text)
        except ValueError as e:
            ap.error(f"the payload is not JSON ({e}); send other bodies with --file")
        payload, content_type = text.encode(), JSON
    return {
        "app": app, "function": function, "payload": payload, "content_type": content_type,
        "region": args.region, "prefer_region": args.prefer_region, "priority": args.priority,
    }  # fmt: skip


def run(argv: list[str] | None = None) -> None:
    ap = _submit_args("spillover run", "Run a task and print its result.")
    ap.add_argument("--timeout", type=float, help="seconds to wait (default: until it finishes)")
    ap.add_argument("--out", type=Path, help="stream the result into this file")
    args = ap.parse_args(argv)
    options = _task_options(args, ap)
    with _client(args) as client:
        _print(_guarded(lambda: client.run(**options, timeout=args.timeout, to=args.out)))


def submit(argv: list[str] | None = None) -> None:
    ap = _submit_args("spillover submit", "Submit a task; print its id.")
    args = ap.parse_args(argv)
    options = _task_options(args, ap)
    with _client(args) as client:
        print(_guarded(lambda: client.submit(**options)).id)


def task(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="spillover task", description="A task, by its id.")
    ap.add_argument("action", choices=("get", "watch", "result", "cancel"))
    ap.add_argument("id")
    ap.add_argument("--timeout", type=float, help="result: seconds to wait")
    ap.add_argument("--out", type=Path, help="result: stream it into this file")
    _url(ap)
    args = ap.parse_args(argv)
    with _client(args) as client:
        t = client.task(args.id)
        if args.action == "get":
            _print(_guarded(t.status))
        elif args.action == "cancel":
            _print(_guarded(t.cancel))
        elif args.action == "result":
            _print(_guarded(lambda: t.result(args.timeout, args.out)))
        else:
            final = _guarded(lambda: watch(t))
            _print(final)
            sys.exit(0 if final.state == "succeeded" else 1)


def watch(t: Task, bar: Bar | None = None) -> Status:
    """Draw the task's progress until it finishes; log lines above the bar. Its final status."""
    bar = bar or Bar(1.0, t.id)
    fraction, final = 0.0, None
    try:
        for event in t.events():
            if isinstance(event, StateEvent):
                final = event.status
                succeeded = final.state == "succeeded"
                bar.update(1.0 if succeeded else fraction, final.state)
            elif isinstance(event, ProgressEvent):
                fraction = event.fraction
                bar.update(fraction, event.message or "running")
            elif isinstance(event, LogEvent):
                bar.print(event.line)
    finally:
        bar.close()
    assert final is not None  # the stream ends after the final state
    return final


def _guarded(call: Callable[[], T]) -> T:
    """The call's value; an error exits with its code and message, not a traceback."""
    try:
        return call()
    except Timeout as e:
        _fail(f"{e.message}; follow it with: spillover task watch {e.task_id}")
    except TaskFailed as e:
        _fail(str(e))
    except SpilloverError as e:
        _fail(f"{e.code}: {e.message}")


def _fail(message: str) -> NoReturn:
    sys.exit(f"spillover: {message}")


def _print(value: Any) -> None:
    if isinstance(value, Status):
        value = value.__dict__
    if isinstance(value, bytes):
        sys.stdout.buffer.write(value)
        sys.stdout.flush()
    elif isinstance(value, Path):
        print(f"result written to {value}", file=sys.stderr)
    else:
        print(json.dumps(value, indent=2))
