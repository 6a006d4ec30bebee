"""The local federation's processes: each a ``spillover`` command (``python -m spillover region
--config ...``), as an operator runs it, logging to its own file and dying with ``spillover up``
even if that is SIGKILLed."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from federation.proc import die_with_parent


class Processes:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.gone: set[str] = set()

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        """``spillover <command>`` as ``name``, its output in ``<logs>/<name>.log``."""
        log = (self.logs / f"{name}.log").open("ab")
        self.running[name] = subprocess.Popen(
            [sys.executable, "-m", "spillover", *command], stdout=log, stderr=subprocess.STDOUT,
            env=env, preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )  # fmt: skip
        log.close()

    def exited(self) -> list[str]:
        """Processes that exited since the last call."""
        gone = [n for n, p in self.running.items() if p.poll() is not None and n not in self.gone]
        self.gone.update(gone)
        return gone

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM all (agents drain and stop their replicas), SIGKILL what is left after
        ``grace`` seconds."""
        for p in self.running.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.running.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
