"""A running task's progress and log lines, as the agent publishes them and SSE clients read
them: one small etcd value per task, rewritten as events come (at most a few times a second), so
a client that connects late still sees the progress and the recent lines."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from federation.limits import KEEP_LINES, MAX_LINE, MAX_MESSAGE


class Progress(BaseModel):
    model_config = ConfigDict(frozen=True)

    fraction: float
    message: str = ""


class LogLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int  # 1, 2, ... over the task's life, so a reader knows what it has seen
    line: str


class TaskEvents(BaseModel):
    model_config = ConfigDict(frozen=True)

    progress: Progress | None = None
    lines: tuple[LogLine, ...] = ()  # the last KEEP_LINES
    seq: int = 0  # lines ever logged

    def with_progress(self, fraction: float, message: str) -> TaskEvents:
        progress = Progress(fraction=fraction, message=message[:MAX_MESSAGE])
        return self.model_copy(update={"progress": progress})

    def with_line(self, line: str) -> TaskEvents:
        seq = self.seq + 1
        lines = (*self.lines, LogLine(seq=seq, line=line[:MAX_LINE]))[-KEEP_LINES:]
        return self.model_copy(update={"lines": lines, "seq": seq})

    def lines_after(self, seq: int) -> tuple[LogLine, ...]:
        return tuple(x for x in self.lines if x.seq > seq)
