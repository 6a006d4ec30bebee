"""The request headers the edge reads, each checked against a strict rule before it is used.
Pure: a header's value goes in, a value or a :class:`BadRequest` naming the header and the rule
comes out — never another exception (tested with hypothesis on arbitrary text), so no header
can cause a 500.

Every value must be printable ASCII (0x20-0x7e): HTTP allows other bytes in a field value
(obs-text), but none of these headers has a use for them, and refusing them up front keeps
control characters and odd Unicode (``²`` is a digit to ``str.isdigit``) away from parsers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import yarl

from federation.errors import BadRequest, Unauthorized

_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_NAME = r"[a-z0-9-]{1,63}"
_REGIONS = re.compile(rf" *{_NAME} *(, *{_NAME} *)*")
_DIGIT = re.compile(r"[0-9]")
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?")  # no nan, inf, sign or _
# RFC 6750's b64token: what `spillover keys` makes (sk_ + URL-safe base64) and more.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
MAX_TOKEN = 512
MAX_REGIONS = 1024  # characters: ~60 region names
MAX_WEBHOOK = 2048
MAX_IDEMPOTENCY_KEY = 255
MAX_CONTENT_TYPE = 255
MAX_PREFER = 1024


def _show(value: str) -> str:
    return repr(value[:100] + ("…" if len(value) > 100 else ""))


def printable(name: str, value: str, max_len: int) -> str:
    if len(value) > max_len:
        raise BadRequest(f"{name}: {len(value)} characters, at most {max_len}")
    if not _PRINTABLE.fullmatch(value):
        raise BadRequest(f"{name} = {_show(value)}: must be printable ASCII")
    return value


def regions(headers: Mapping[str, str], name: str) -> str | None:
    """A region name or a comma list of them (which regions exist is routing's to say)."""
    value = headers.get(name)
    if value is None:
        return None
    printable(name, value, MAX_REGIONS)
    if not _REGIONS.fullmatch(value):
        raise BadRequest(
            f"{name} = {_show(value)}: must be a region name ([a-z0-9-], 1 to 63 characters) "
            "or a comma list of them"
        )
    return value


def priority(headers: Mapping[str, str], default: int = 5) -> int:
    value = headers.get("X-Spillover-Priority")
    if value is None:
        return default
    if not _DIGIT.fullmatch(value):
        raise BadRequest(f"X-Spillover-Priority = {_show(value)}: must be an integer from 0 to 9")
    return int(value)


def seconds(headers: Mapping[str, str], name: str, default: float, hi: float) -> float:
    value = headers.get(name)
    if value is None:
        return default
    if len(value) > 32 or not _SECONDS.fullmatch(value) or float(value) > hi:
        raise BadRequest(f"{name} = {_show(value)}: must be a number of seconds from 0 to {hi:g}")
    return float(value)


def webhook(headers: Mapping[str, str], allow_http: bool) -> str | None:
    value = headers.get("X-Spillover-Webhook")
    if value is None:
        return None
    name = "X-Spillover-Webhook"
    printable(name, value, MAX_WEBHOOK)
    schemes = ("https", "http") if allow_http else ("https",)
    try:
        url = yarl.URL(value)
        ok = url.is_absolute() and url.scheme in schemes and bool(url.host) and url.port != 0
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise BadRequest(f"{name} = {_show(value)}: must be an absolute {' or '.join(schemes)} URL")
    return value


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    value = headers.get("Idempotency-Key")
    if value is None:
        return None
    if not value:
        raise BadRequest("Idempotency-Key is empty: 1 to 255 printable ASCII characters")
    return printable("Idempotency-Key", value, MAX_IDEMPOTENCY_KEY)


def respond_async(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """``Prefer: respond-async`` (RFC 7240; other preferences are ignored) or ``?async=``."""
    prefer = printable("Prefer", headers.get("Prefer", ""), MAX_PREFER)
    raw = query.get("async")
    if raw is not None and raw.lower() not in ("true", "false", "1", "0"):
        raise BadRequest(f"async = {_show(raw)}: must be true, false, 1 or 0")
    return (raw is not None and raw.lower() in ("true", "1")) or "respond-async" in prefer.lower()


def content_type(headers: Mapping[str, str]) -> str:
    """Stored with the task and handed to the handler as it came."""
    value = headers.get("Content-Type", "application/octet-stream")
    return printable("Content-Type", value, MAX_CONTENT_TYPE)


def bearer_token(headers: Mapping[str, str]) -> str:
    """The API key of ``Authorization: Bearer <key>``. None or another scheme: 401 (the caller
    is not authenticated); a malformed bearer token: 400 (RFC 6750's invalid_request)."""
    value = headers.get("Authorization", "")
    printable("Authorization", value, MAX_TOKEN + 7)
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an API key as Authorization: Bearer <key>")
    token = token.strip()
    if len(token) > MAX_TOKEN or not _TOKEN.fullmatch(token):
        raise BadRequest(
            f"Authorization: the bearer token must be 1 to {MAX_TOKEN} characters of "
            "A-Z a-z 0-9 - . _ ~ + / (then = padding)"
        )
    return token
