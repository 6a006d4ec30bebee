"""The reliability suite's app. Every execution gets a run id of its own and appends a line to the
file named by ``CHAOS_RUNS`` when it starts and when it ends, and the result carries the run id,
so the suite counts tasks run twice from the file and checks that the committed result came from
a recorded run (see ``ledger.py``).

    start <task id> <run id> <pid> <region> <epoch s>
    end   <task id> <run id> <pid> <region> <epoch s>
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from typing import Any

RUNS_ENV = "CHAOS_RUNS"


def _record(event: str, task_id: str, run: str) -> None:
    path = os.environ.get(RUNS_ENV)
    if not path:
        return
    region = os.environ.get("SPILLOVER_REGION", "-")
    line = f"{event} {task_id} {run} {os.getpid()} {region} {time.time():.3f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one short write under O_APPEND: lines never interleave
    finally:
        os.close(fd)


def _args(payload: bytes) -> dict[str, Any]:
    return json.loads(payload) if payload else {}


def _pause(ctx: Any, seconds: float) -> bool:
    """Sleep ``seconds`` in short steps; False if the task was cancelled meanwhile."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if ctx.cancelled:
            return False
        time.sleep(min(left, 0.05))
    return True


class Chaos:
    def _run(self, ctx: Any) -> tuple[str, dict[str, Any]]:
        run = secrets.token_hex(6)
        _record("start", ctx.task_id, run)
        result = {
            "task": ctx.task_id,
            "run": run,
            "pid": os.getpid(),
            "region": os.environ.get("SPILLOVER_REGION", "-"),
        }
        return run, result

    def sleep(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        """``{"seconds": s}``: stand-in work of s seconds."""
        run, result = self._run(ctx)
        if _pause(ctx, float(_args(payload).get("seconds", 0))):
            _record("end", ctx.task_id, run)
        return result

    def progress(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        """``{"seconds": d, "every": k, "quiet": q}``: reports progress every k s for d s, then
        q s of silence (no event at all: what the events stream's keep-alive covers)."""
        args = _args(payload)
        seconds, every = float(args["seconds"]), float(args["every"])
        run, result = self._run(ctx)
        steps = max(1, round(seconds / every))
        for i in range(steps):
            if not _pause(ctx, every):
                return result
            ctx.progress((i + 1) / steps, f"step {i + 1} of {steps}")
        if _pause(ctx, float(args.get("quiet", 0))):
            _record("end", ctx.task_id, run)
        return {**result, "steps": steps}

    def poison(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        """Kills the replica that runs it, every time."""
        self._run(ctx)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    def boom(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        """Raises: the handler's own failure."""
        self._run(ctx)
        raise ValueError("boom: the chaos workload raises on purpose")
