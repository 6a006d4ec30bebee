"""Blob URL signatures and the checks every blob reader runs: pure, no I/O."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
import yarl
from hypothesis import given
from hypothesis import strategies as st

from federation.blobs import (
    BlobRef,
    BlobUnavailable,
    checked,
    owner_ulid,
    rechunk,
    result_name,
    signing,
)

SECRET = b"s" * 32
URL = "http://10.0.0.5:8080/internal/blobs/01J00000000000000000000000-payload"


def parts(url: str) -> tuple[str, str, str]:
    u = yarl.URL(url)
    return u.path, u.query["exp"], u.query["sig"]


def test_a_signed_url_is_valid_until_it_expires() -> None:
    path, exp, sig = parts(signing.sign(SECRET, URL, now=1000.0, ttl=300))
    assert signing.valid(SECRET, path, exp, sig, now=1299.0)
    assert not signing.valid(SECRET, path, exp, sig, now=1301.0)


def test_a_signature_covers_the_path_and_expiry_and_needs_the_secret() -> None:
    path, exp, sig = parts(signing.sign(SECRET, URL, now=1000.0))
    assert not signing.valid(SECRET, path.replace("payload", "result-1"), exp, sig, now=1000.0)
    assert not signing.valid(SECRET, path, str(int(exp) + 3600), sig, now=1000.0)
    assert not signing.valid(b"other", path, exp, sig, now=1000.0)
    assert not signing.valid(SECRET, path, "soon", sig, now=1000.0)


async def _aiter(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


def ref_of(data: bytes) -> BlobRef:
    return BlobRef(url=URL, size=len(data), sha256=hashlib.sha256(data).hexdigest())


async def test_checked_passes_a_matching_blob_and_refuses_altered_or_short_ones() -> None:
    data = b"abc" * 1000
    assert (
        b"".join([c async for c in checked(ref_of(data), _aiter([data[:10], data[10:]]))]) == data
    )
    with pytest.raises(BlobUnavailable, match="sha256"):
        [c async for c in checked(ref_of(data), _aiter([data[:-1] + b"x"]))]
    with pytest.raises(BlobUnavailable, match="2999 bytes"):
        [c async for c in checked(ref_of(data), _aiter([data[:-1]]))]
    with pytest.raises(BlobUnavailable, match="longer"):
        [c async for c in checked(ref_of(data), _aiter([data, b"!"]))]


@given(st.lists(st.binary(max_size=50), max_size=20), st.integers(1, 64))
async def test_rechunk_keeps_the_bytes_and_cuts_full_chunks(chunks: list[bytes], size: int) -> None:
    out = [c async for c in rechunk(_aiter(chunks), size)]
    assert b"".join(out) == b"".join(chunks)
    assert all(len(c) == size for c in out[:-1]) and all(out)


def test_blob_names_lead_with_their_tasks_ulid() -> None:
    assert owner_ulid(result_name("01J00000000000000000000000", 2)) == "01J00000000000000000000000"
