"""A task's events (``GET /v1/tasks/{id}/events``, server-sent events) as values:
:class:`StateEvent` on every state change, :class:`ProgressEvent` and :class:`LogEvent` as the
handler reports them; the last is the final state."""

from __future__ import annotations

import json
from dataclasses import dataclass

from spillover.protocol import Status


@dataclass(frozen=True)
class StateEvent:
    status: Status


@dataclass(frozen=True)
class ProgressEvent:
    fraction: float  # 0..1, as the handler reported it
    message: str = ""


@dataclass(frozen=True)
class LogEvent:
    seq: int  # 1, 2, ... over the task's life
    line: str


Event = StateEvent | ProgressEvent | LogEvent


class EventReader:
    """Frames in, events out, over one connection or several: a reconnect starts over with the
    current state and every log line, so what an earlier connection delivered is dropped here.
    ``done`` once the final state has been read."""

    def __init__(self) -> None:
        self.state: str | None = None
        self.progress: ProgressEvent | None = None
        self.seq = 0
        self.done = False
        self._kind = ""
        self._data: list[str] = []

    def reconnected(self) -> None:
        """A new connection: a frame the old one left half-read is dropped."""
        self._kind, self._data = "", []

    def feed(self, line: str) -> Event | None:
        """One line of the stream (without its line break)."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):  # a comment: the edge's keep-alive
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._kind = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> Event | None:
        kind, data = self._kind, "\n".join(self._data)
        self.reconnected()
        if not data:
            return None
        value = json.loads(data)
        if kind == "state":
            status = Status.of(value)
            if status.state == self.state:
                return None
            self.state, self.done = status.state, status.done
            return StateEvent(status)
        if kind == "progress":
            progress = ProgressEvent(float(value["fraction"]), str(value.get("message", "")))
            if progress == self.progress:
                return None
            self.progress = progress
            return progress
        if kind == "log" and int(value["seq"]) > self.seq:
            self.seq = int(value["seq"])
            return LogEvent(self.seq, str(value["line"]))
        return None  # a log line already read, or a kind this client does not know yet
