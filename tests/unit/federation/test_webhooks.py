from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from federation.webhooks import TOLERANCE, AppSecrets, sign, verify

SECRET = b"s" * 32
OLD, NEW = b"o" * 32, b"n" * 32


@given(st.binary(max_size=512), st.integers(min_value=0, max_value=2**40))
def test_a_signature_verifies_and_any_change_to_body_time_or_secret_breaks_it(
    body: bytes, t: int
) -> None:
    header = sign([SECRET], body, t)
    assert verify([SECRET], body, header, now=t)
    assert not verify([SECRET], body + b"x", header, now=t)
    assert not verify([b"other"], body, header, now=t)
    forged_time = header.replace(f"t={t},", f"t={t + 1},")
    assert not verify([SECRET], body, forged_time, now=t)


def test_a_stale_or_malformed_signature_is_refused() -> None:
    header = sign([SECRET], b"{}", 1000)
    assert verify([SECRET], b"{}", header, now=1000 + TOLERANCE)
    assert not verify([SECRET], b"{}", header, now=1000 + TOLERANCE + 1)
    for bad in ("", "t=x,v1=00", "v1=00", "garbage", f"{header},t=1000", "t=1000"):
        assert not verify([SECRET], b"{}", bad, now=1000)


@given(st.binary(max_size=64))
def test_during_an_overlap_either_secret_verifies_and_no_other(body: bytes) -> None:
    header = sign([NEW, OLD], body, 1000)
    assert header.count("v1=") == 2
    assert verify([NEW], body, header, now=1000) and verify([OLD], body, header, now=1000)
    assert verify([b"x", OLD], body, header, now=1000)  # a receiver holding both
    assert not verify([b"x"], body, header, now=1000)
    assert not verify([], body, header, now=1000)


def test_a_rotation_keeps_the_old_secret_signing_for_the_overlap_only() -> None:
    first = AppSecrets("a" * 64)
    assert first.signing(now=0) == [b"a" * 64]
    second = first.rotated("b" * 64, now=100, overlap=50)
    assert second.signing(now=149) == [b"b" * 64, b"a" * 64]  # the newest first
    assert second.signing(now=150) == [b"b" * 64]
    third = second.rotated("c" * 64, now=120, overlap=50)  # again within the overlap
    assert third.signing(now=121) == [b"c" * 64, b"b" * 64]  # two at most: "a" stops
    assert AppSecrets.decode(third.encode()) == third
    assert first.rotated("b" * 64, now=100, overlap=0).signing(now=100) == [b"b" * 64]
