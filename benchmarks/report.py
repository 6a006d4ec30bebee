"""What a benchmark reports: rows of figures, both sides, every repetition."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SLOTS = 4


@dataclass
class Row:
    """One figure, both sides, every repetition (the median is reported, with the spread)."""

    figure: str
    unit: str
    spillover: list[float] = field(default_factory=list)
    celery: list[float] = field(default_factory=list)
    better: str = "lower"  # or "higher"
    note: str = ""

    def add(self, s: float | None = None, c: float | None = None) -> None:
        if s is not None:
            self.spillover.append(s)
        if c is not None:
            self.celery.append(c)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    waits: dict[str, list[float]] = field(default_factory=dict)  # for the plot
    sections: dict[str, list[str]] = field(default_factory=dict)  # heading: Markdown lines

    def row(self, figure: str, unit: str, **kw: Any) -> Row:
        r = Row(figure, unit, **kw)
        self.rows.append(r)
        return r
