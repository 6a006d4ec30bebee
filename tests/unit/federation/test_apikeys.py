"""A grant's rate limit: optional, burst defaults to one second's worth, never without a rate."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from federation.apikeys import Grant


def test_rate_and_burst() -> None:
    assert Grant(name="a").limit is None
    assert Grant(name="a", rate=50, burst=100).limit == (50, 100)
    assert Grant(name="a", rate=50).limit == (50, 50)
    assert Grant(name="a", rate=0.2).limit == (0.2, 1.0)
    with pytest.raises(ValidationError, match="give a rate too"):
        Grant(name="a", burst=10)
    with pytest.raises(ValidationError, match="greater than 0"):
        Grant(name="a", rate=0)
