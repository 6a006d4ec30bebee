from benchmarks.profile import top_frames

RAW = """\
<module> (regional/main.py:51);run (uvloop/__init__.py:92);claim (federation/queue.py:262) 6
<module> (regional/main.py:51);run (uvloop/__init__.py:92);settle (regional/outcomes.py:73) 3
run (threading.py:982) 1
"""


def test_top_frames_ranks_by_inclusive_samples_without_the_entry_frames() -> None:
    rows = top_frames(RAW, top=2)
    assert rows[2:] == [
        "| 60% | `claim (federation/queue.py:262)` |",
        "| 30% | `settle (regional/outcomes.py:73)` |",
    ]
