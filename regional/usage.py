"""CPU and memory utilisation of local replica processes, read from /proc, for the
``cpu_utilization`` and ``memory_utilization`` scaling metrics."""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


class Usage:
    """``sample(pids)``: mean CPU (fraction of one core, since the last sample of each pid) and
    mean memory (RSS as a fraction of the machine's) over the live ``pids``."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}  # pid -> (cpu seconds, wall clock)
        self._mem_total = _mem_total()

    def sample(self, pids: list[int]) -> tuple[float, float]:
        cpus, mems = [], []
        now = time.monotonic()
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # exited between listing and reading
            cpu = (int(stat[11]) + int(stat[12])) / _TICK  # utime + stime
            before = self._last.get(pid)
            self._last[pid] = (cpu, now)
            if before is not None and now > before[1]:
                cpus.append((cpu - before[0]) / (now - before[1]))
            mems.append(rss_pages * _PAGE / self._mem_total)
        self._last = {p: v for p, v in self._last.items() if p in pids}
        return _mean(cpus), _mean(mems)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0
