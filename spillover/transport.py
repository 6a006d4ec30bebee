"""What the blocking and the asyncio client share about HTTP (httpx2): where the edge is, the
headers every request carries, timeouts, and how a failed connection is reported."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from spillover.errors import Unavailable
from spillover.protocol import Call

DEFAULT_URL = "http://127.0.0.1:8080"  # what `spillover up` runs
# A request that could not complete for network reasons: retried (as Unavailable) like a 503.
# Not here: UnsupportedProtocol and LocalProtocolError, which are the caller's to fix.
NETWORK = (
    httpx2.NetworkError, httpx2.TimeoutException, httpx2.RemoteProtocolError, httpx2.ProxyError,
)  # fmt: skip
# Per-request slack over how long the edge was asked to hold it, before it counts as lost.
SLACK = 60.0
LIMITS = httpx2.Limits(max_connections=None, max_keepalive_connections=64)  # map()'s 32 stay open


@dataclass(frozen=True)
class Settings:
    url: str
    api_key: str | None
    retry_for: float

    @classmethod
    def of(
        cls,
        url: str | None,
        api_key: str | None,
        retry_for: float,
        environ: Mapping[str, str] = os.environ,
    ) -> Settings:
        if retry_for < 0:
            raise ValueError(f"retry_for = {retry_for}, must be ≥ 0")
        url = (url or environ.get("SPILLOVER_URL") or DEFAULT_URL).rstrip("/")
        return cls(url, api_key or environ.get("SPILLOVER_API_KEY") or None, retry_for)

    def headers(self) -> dict[str, str]:
        h = {"User-Agent": "spillover-client"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def http_options(self, verify: bool | str | ssl.SSLContext) -> dict[str, Any]:
        """For ``httpx2.Client`` / ``AsyncClient``."""
        return {
            "base_url": self.url,
            "headers": self.headers(),
            "limits": LIMITS,
            "verify": verify,
        }


def timeouts(call: Call) -> httpx2.Timeout:
    """Connect quickly or retry; a read may wait as long as the edge was asked to hold the
    request, and some; writes of a large body proceed chunk by chunk."""
    return httpx2.Timeout(connect=10.0, read=call.wait + SLACK, write=SLACK, pool=None)


@contextlib.contextmanager
def reaching(url: str) -> Iterator[None]:
    """Network failures inside become ``Unavailable``: retried as a 503 would be."""
    try:
        yield
    except NETWORK as e:
        message = f"cannot reach the edge at {url}: {type(e).__name__}: {e}"
        raise Unavailable(message, retry_after=None) from e


class Download:
    """A result into a file: written to ``<to>.part``, renamed to ``to`` once whole, removed if
    the transfer breaks, so a file at ``to`` is always a whole result."""

    def __init__(self, to: Path, response: httpx2.Response) -> None:
        self.to, self.part = to, to.with_name(to.name + ".part")
        # The length on the wire; a compressed body (the edge sends none) decodes to more.
        encoded = "Content-Encoding" in response.headers
        self.declared = None if encoded else response.headers.get("Content-Length")
        self.got = 0
        self.file = self.part.open("wb")

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.got += len(chunk)

    def finish(self) -> None:
        self.file.close()
        if self.declared is not None and self.declared.isdigit() and self.got != int(self.declared):
            # The edge cuts a result whose blob broke mid-stream: fetch it again.
            message = f"result ended after {self.got} of {self.declared} bytes"
            raise Unavailable(message, retry_after=None)
        self.part.replace(self.to)

    def abort(self) -> None:
        self.file.close()
        self.part.unlink(missing_ok=True)
