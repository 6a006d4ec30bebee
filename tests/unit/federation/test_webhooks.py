from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.webhooks import TOLERANCE, sign, verify

SECRET = b"s" * 32


@given(st.binary(max_size=512), st.integers(min_value=0, max_value=2**40))
def test_a_signature_verifies_and_any_change_to_body_time_or_secret_breaks_it(
    body: bytes, t: int
) -> None:
    header = sign(SECRET, body, t)
    assert verify(SECRET, body, header, now=t)
    assert not verify(SECRET, body + b"x", header, now=t)
    assert not verify(b"other", body, header, now=t)
    forged_time = header.replace(f"t={t},", f"t={t + 1},")
    assert not verify(SECRET, body, forged_time, now=t)


def test_a_stale_or_malformed_signature_is_refused() -> None:
    header = sign(SECRET, b"{}", 1000)
    assert verify(SECRET, b"{}", header, now=1000 + TOLERANCE)
    assert not verify(SECRET, b"{}", header, now=1000 + TOLERANCE + 1)
    for bad in ("", "t=x,v1=00", "v1=00", "garbage"):
        assert not verify(SECRET, b"{}", bad, now=1000)
