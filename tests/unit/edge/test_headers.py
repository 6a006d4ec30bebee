"""Header rules: each bad value is a BadRequest naming the header and the rule, and no value
at all raises anything else (hypothesis over arbitrary text)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge import headers
from federation.errors import BadRequest, Unauthorized


def test_good_values() -> None:
    h = {
        "X-Spillover-Region": "us-east-1, eu-west-1", "X-Spillover-Priority": "9",
        "X-Spillover-Timeout": "2.5", "X-Spillover-Webhook": "https://hooks.example.com/a?b=1",
        "Idempotency-Key": "order 7/b",
        "Authorization": "Bearer sk_AbC-123_x=", "Content-Type": "application/json",
    }  # fmt: skip
    assert headers.regions(h, "X-Spillover-Region") == "us-east-1, eu-west-1"
    assert headers.priority(h) == 9 and headers.seconds(h, "X-Spillover-Timeout", 60, 300) == 2.5
    assert headers.webhook(h, allow_http=False) == h["X-Spillover-Webhook"]
    assert headers.bearer_token(h) == "sk_AbC-123_x="
    assert headers.content_type(h) == "application/json"
    assert headers.priority({}) == 5 and headers.webhook({}, False) is None


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("X-Spillover-Priority", "²", "integer from 0 to 9"),
        ("X-Spillover-Priority", "10", "integer from 0 to 9"),
        ("X-Spillover-Priority", " 5", "integer from 0 to 9"),
        ("X-Spillover-Timeout", "1e3", "number of seconds from 0 to 300"),
        ("X-Spillover-Timeout", "nan", "number of seconds"),
        ("X-Spillover-Timeout", "301", "from 0 to 300"),
        ("X-Spillover-Region", "us-east-1\x00", "printable ASCII"),
        ("X-Spillover-Region", "US-EAST-1", "region name"),
        ("X-Spillover-Region", "a,,b", "comma list"),
        ("X-Spillover-Prefer-Region", "", "region name"),
        ("X-Spillover-Webhook", "http://example.com/", "absolute https URL"),
        ("X-Spillover-Webhook", "https://exa mple.com:99999/", "absolute https URL"),
        ("X-Spillover-Webhook", "https://ex\u00e4mple.com/", "printable ASCII"),
        ("Idempotency-Key", "", "1 to 255"),
        ("Idempotency-Key", "k" * 256, "at most 255"),
        ("Idempotency-Key", "caf\u00e9", "printable ASCII"),
        ("Content-Type", "text/plain\x7f", "printable ASCII"),
        ("Authorization", "Bearer sk_\u00e9", "printable ASCII"),
        ("Authorization", "Bearer a b", "bearer token"),
        ("Authorization", "Bearer " + "a" * 513, "at most"),
    ],
)
def test_bad_values_name_the_header_and_the_rule(name: str, value: str, words: str) -> None:
    with pytest.raises(BadRequest, match=name.split("-")[-1]) as e:
        read({name: value})
    assert words in e.value.message


def test_no_key_or_another_scheme_is_401() -> None:
    for h in ({}, {"Authorization": "Basic eDp5"}, {"Authorization": "Bearer "}):
        with pytest.raises(Unauthorized):
            headers.bearer_token(h)


def read(h: dict[str, str]) -> None:
    headers.regions(h, "X-Spillover-Region")
    headers.regions(h, "X-Spillover-Prefer-Region")
    headers.priority(h)
    headers.seconds(h, "X-Spillover-Timeout", 60, 300)
    headers.webhook(h, allow_http=False)
    headers.idempotency_key(h)
    headers.content_type(h)
    if "Authorization" in h:
        headers.bearer_token(h)


NAMES = ["X-Spillover-Region", "X-Spillover-Prefer-Region", "X-Spillover-Priority",
         "X-Spillover-Timeout", "X-Spillover-Webhook", "Idempotency-Key", "Content-Type",
         "Authorization"]  # fmt: skip


ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=3000)


@given(name=st.sampled_from(NAMES), value=st.one_of(ASCII, st.text(max_size=3000)))
def test_any_value_is_read_or_refused_as_a_bad_request(name: str, value: str) -> None:
    with contextlib.suppress(BadRequest, Unauthorized):
        read({name: value})
