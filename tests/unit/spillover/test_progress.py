from __future__ import annotations

import io

from spillover.progress import Bar


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_a_line_a_second_and_the_last() -> None:
    out, now = io.StringIO(), [0.0]
    bar = Bar(4, "map", out=out, clock=lambda: now[0])
    for done in (1, 2, 3):
        bar.update(done)
        now[0] += 0.6
    bar.update(4)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "map [########......................]  25% 1/4"
    assert lines[1].endswith("75% 3/4") and len(lines) == 3  # 2/4 came within the second
    assert lines[-1] == "map [##############################] 100% 4/4"


def test_a_terminal_redraws_in_place_with_lines_above() -> None:
    out = Tty()
    bar = Bar(1.0, "t1", out=out, clock=lambda: 0.0)
    bar.update(0.5, "halfway")
    bar.print("a log line")
    bar.close()
    text = out.getvalue()
    assert text.startswith("\r") and "a log line\n" in text and "50% halfway" in text
    assert "/1" not in text and text.endswith("\n")


def test_without_a_total_it_counts() -> None:
    out = io.StringIO()
    Bar(None, out=out, clock=lambda: 5.0).update(7)
    assert out.getvalue() == "7 done\n"
