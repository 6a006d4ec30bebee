"""A one-line progress bar on stderr, for ``map(progress=True)`` and ``spillover task watch``:
redrawn in place on a terminal (at most 10 times a second); elsewhere (a log file) a plain line
at most once a second, and the last one."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sized
from typing import TextIO

WIDTH = 30


class Bar:
    def __init__(
        self,
        total: float | None,
        label: str = "",
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.label, self.clock = total, label, clock
        self.out = out or sys.stderr
        self.live = self.out.isatty()
        self.shown = ""
        self.drawn_at = -1.0

    @classmethod
    def counting(cls, items: object, label: str) -> Bar:
        """A bar over ``items``: out of their number when they have one, else a count."""
        return cls(len(items) if isinstance(items, Sized) else None, label)

    def update(self, done: float, note: str = "") -> None:
        text = self._text(done, note)
        if text == self.shown:
            return
        now = self.clock()
        if now - self.drawn_at < (0.1 if self.live else 1.0) and done != self.total:
            return
        self.shown, self.drawn_at = text, now
        self.out.write(f"\r{text}\x1b[K" if self.live else text + "\n")
        self.out.flush()

    def print(self, line: str) -> None:
        """A line of text above the bar."""
        redraw = f"{self.shown}" if self.live and self.shown else ""
        clear = "\r\x1b[K" if redraw else ""
        self.out.write(f"{clear}{line}\n{redraw}")
        self.out.flush()

    def close(self) -> None:
        if self.live and self.shown:
            self.out.write("\n")
            self.out.flush()

    def _text(self, done: float, note: str) -> str:
        prefix = f"{self.label} " if self.label else ""
        if not self.total:
            return f"{prefix}{done:g} done {note}".rstrip()
        share = min(1.0, max(0.0, done / self.total))
        filled = round(share * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        count = f" {done:g}/{self.total:g}" if self.total != 1 else ""
        return f"{prefix}[{bar}] {share:4.0%}{count} {note}".rstrip()
