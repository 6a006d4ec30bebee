"""schemathesis against a live edge process: no server errors, no response that breaks the
schema the edge serves at /openapi.json."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from edge import openapi
from federation.etcd_server import LocalEtcd, free_port
from tests.integration.conftest import REPO

schema = schemathesis.openapi.from_dict(openapi.spec(["us-east-1"], max_wait=300))
pytestmark = pytest.mark.slow

WORKER = (
    '[app]\nname = "worker"\nhandler = "tests.apps.worker:Worker"\n[scaling]\nmin_replicas = 1\n'
)


def _wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"edge at {url} not ready")


@pytest.fixture(scope="module")
def edge_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("schema")
    with LocalEtcd(tmp / "etcd") as etcd:
        etcd_toml = f'[etcd]\nendpoints = ["{etcd.endpoints[0]}"]\n'
        port = free_port()
        edge = tmp / "edge.toml"
        edge.write_text(
            f'region = "us-east-1"\nport = {port}\nauth = false\n'
            '[[regions]]\nname = "us-east-1"\nlat = 39.0\nlon = -77.5\n' + etcd_toml
        )
        region = tmp / "region.toml"
        region.write_text(
            f'name = "us-east-1"\nlat = 39.0\nlon = -77.5\napp_root = "{REPO}"\n' + etcd_toml
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", m, "--config", str(c)], cwd=REPO, stderr=subprocess.DEVNULL
            )
            for m, c in (("edge.main", edge), ("regional.main", region))
        ]
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url)
            request = urllib.request.Request(
                url + "/v1/apps/worker", data=WORKER.encode(), method="PUT"
            )
            urllib.request.urlopen(request, timeout=5).close()
            yield url
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_edge_keeps_its_own_schema(case: schemathesis.Case, edge_url: str) -> None:
    # positive_data_acceptance is left out: some 4xx answer rules no JSON schema can state
    # (min_replicas ≤ max_replicas, the body's app name = the path's, a deployed app).
    case.call_and_validate(
        base_url=edge_url, timeout=30, excluded_checks=[positive_data_acceptance]
    )
