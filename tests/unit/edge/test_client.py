"""Which GeoLite2 City database places clients, and the warning when it is old."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.client import BUNDLED_DATABASE, choose_database, open_database


def test_the_config_wins_then_the_environment_then_a_system_database_then_the_bundled_one(
    tmp_path: Path,
) -> None:
    system = tmp_path / "GeoLite2-City.mmdb"
    configured, env = Path("/etc/city.mmdb"), {"SPILLOVER_GEOIP_DB": "/env/city.mmdb"}
    assert choose_database(configured, env, [system]) == configured
    assert choose_database(None, env, [system]) == Path("/env/city.mmdb")
    assert choose_database(None, {}, [system]) == BUNDLED_DATABASE  # not installed
    system.write_bytes(b"")
    assert choose_database(None, {}, [system]) == system
    assert choose_database(None, {"SPILLOVER_GEOIP_DB": ""}, [system]) == system


def test_the_bundled_database_is_a_city_database_and_is_logged_with_its_build_date(
    caplog: pytest.LogCaptureFixture,
) -> None:
    built = datetime(2019, 12, 24, tzinfo=UTC).timestamp()
    with caplog.at_level(logging.INFO, logger="edge.client"):
        reader, info = open_database(BUNDLED_DATABASE, now=built + 30 * 86400)
    reader.close()
    assert info.type == "GeoLite2-City" and info.built.startswith("2019-12")
    assert not info.stale
    assert f"GeoIP: {BUNDLED_DATABASE} (GeoLite2-City, built {info.built})" in caplog.text
    assert "WARNING" not in caplog.text


def test_a_database_over_a_year_old_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    now = datetime(2021, 1, 1, tzinfo=UTC).timestamp()
    with caplog.at_level(logging.INFO, logger="edge.client"):
        reader, info = open_database(BUNDLED_DATABASE, now=now)
    reader.close()
    assert info.stale and info.age_days > 365
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "days old" in warnings[0].getMessage()
