from __future__ import annotations

from regional.webhooks import delay


def test_retries_back_off_doubling_to_a_minute_and_a_takeover_goes_on_from_its_count() -> None:
    assert [delay(n, 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert delay(30, 1.0) == 60.0 and delay(2, 0.05) == 0.1
