"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) in front of a real
``spillover up`` of three regions: the page loads without console errors, shows the regions,
and draws an arrow while a skewed load spills over. The same federation shows what a fresh
clone's ``make up`` does with client addresses: the bundled GeoIP database places them.

``SPILLOVER_DASHBOARD_PNG=docs/dashboard.png`` also saves the screenshot there."""

from __future__ import annotations

import contextlib
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from tests.integration.test_up import WORKER_APP, Up

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
# As root and offline: no sandbox (root), and nothing that reaches for the network by itself.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Two replicas at most: the autoscaler's moves show in the decisions list.
APP = WORKER_APP.replace("max_replicas = 1", "max_replicas = 2")
THREE = ("us-east-1=39.0,-77.5", "eu-west-1=53.3,-6.3", "ap-south-1=19.1,72.9")


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: `make test` installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def up3(tmp_path: Path) -> Iterator[Up]:
    env = {k: v for k, v in os.environ.items() if k != "SPILLOVER_GEOIP_DB"}
    u = Up(tmp_path, APP, THREE, env=env)
    yield u
    u.stop()


def submit(up: Up, seconds: float, **headers: str) -> dict[str, Any]:
    return up.call("POST", "/v1/apps/worker/sleep?async=true", {"seconds": seconds}, **headers)  # type: ignore[no-any-return]


def test_the_dashboard_shows_regions_and_spillover_arrows_without_console_errors(
    up3: Up, browser: Any, tmp_path: Path
) -> None:
    up3.wait_up()
    # A fresh clone's geo: the bundled GeoLite2 City places clients (no database installed).
    homes = {
        ip: submit(up3, 0, **{"X-Forwarded-For": ip})["home_region"]
        for ip in ("49.36.0.1", "81.2.69.142", "8.8.8.8", "1.1.1.1")
    }
    assert homes == {"49.36.0.1": "ap-south-1", "81.2.69.142": "eu-west-1",
                     "8.8.8.8": "us-east-1", "1.1.1.1": "ap-south-1"}  # fmt: skip

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(up3.url + "/dashboard")
    # Locators, not wait_for_function: the page's CSP forbids the eval that one polls with.
    page.locator("#regions .region").nth(2).wait_for()
    shown = page.eval_on_selector_all("#regions .region", "gs => gs.map(g => g.dataset.region)")
    assert sorted(shown) == ["ap-south-1", "eu-west-1", "us-east-1"]

    # Skewed: every task homes in us-east-1 (the edge's region; loopback has no location),
    # whose one slot is busy, so after spillover_after the others take them.
    tasks = [submit(up3, 1.5) for _ in range(16)]
    arrow = page.wait_for_selector(".flow-group[data-source='us-east-1']", timeout=60_000)
    assert arrow.get_attribute("data-target") in ("eu-west-1", "ap-south-1")
    if target := os.environ.get("SPILLOVER_DASHBOARD_PNG"):
        with contextlib.suppress(PlaywrightTimeout):  # both arrows, for the picture
            page.locator(".flow-group").nth(1).wait_for(timeout=10_000)
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        shutil.copy(tmp_path / "dashboard.png", target)
    data = up3.call("GET", "/v1/federation/dashboard")
    assert {r["name"] for r in data["regions"]} == {"us-east-1", "eu-west-1", "ap-south-1"}
    ran = {up3.call("GET", f"/v1/tasks/{t['id']}/result?wait=60")["region"] for t in tasks}
    assert ran - {"us-east-1"}, "nothing spilled over"
    assert errors == []
    assert data["geoip"]["type"] == "GeoLite2-City"
    edge_log = (tmp_path / "data" / "logs" / "edge.log").read_text()
    assert "(GeoLite2-City, built 2019-12-24)" in edge_log and "days old" in edge_log
    # The assets are the package's files, with a CSP that keeps the page to them.
    for path, ctype in (("/dashboard", "text/html"), ("/dashboard/world.svg", "image/svg+xml")):
        with urllib.request.urlopen(up3.url + path, timeout=10) as r:
            assert r.headers["Content-Type"].startswith(ctype)
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(up3.url + "/dashboard/nothing.js", timeout=10)
    assert e.value.code == 404
