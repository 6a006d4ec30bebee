"""edge.toml's rules: errors name the key, the value and the rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge.config import EdgeConfig, RegionPoint

BASE: dict[str, Any] = {
    "region": "us-east-1", "regions": (RegionPoint(name="us-east-1", lat=39.0, lon=-77.5),),
}  # fmt: skip


def test_auth_off_only_on_loopback(tmp_path: Path) -> None:
    tls = {"tls_cert": tmp_path / "c.pem", "tls_key": tmp_path / "k.pem"}
    with pytest.raises(ValidationError, match="auth = false: only on a loopback host"):
        EdgeConfig(**BASE, **tls, host="0.0.0.0", auth=False)
    assert not EdgeConfig(**BASE, host="127.0.0.1", auth=False).auth
    assert EdgeConfig(**BASE, **tls, host="0.0.0.0").auth


def test_limits_are_validated() -> None:
    with pytest.raises(ValidationError, match="keys_stale_after = 5: must be more than"):
        EdgeConfig(**BASE, keys_resync=5, keys_stale_after=5)
    for key, value in {"sse_keepalive": 0, "body_timeout": -1, "max_connections": 0,
                       "body_min_rate": 0, "idle_timeout": 0}.items():  # fmt: skip
        with pytest.raises(ValidationError, match=key):
            EdgeConfig(**BASE, **{key: value})
