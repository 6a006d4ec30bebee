"""schemathesis against a live edge process (API keys on): no server errors, no response that
breaks the schema the edge serves at /openapi.json — with data the schema allows, with submit
headers it does not allow, with bodies over the app's limit, and with any Authorization."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from edge import openapi
from federation.apikeys import ApiKeys, Grant
from federation.topology import Clusters, EtcdConfig
from spillover.local.etcd import LocalEtcd, free_port
from tests.conftest import own_dir
from tests.integration.conftest import REPO

schema = schemathesis.openapi.from_dict(openapi.spec(["us-east-1"], max_wait=300))
# The submit route again, with headers (and bodies) outside the schema: each must be a 4xx.
violations = schemathesis.openapi.from_dict(openapi.spec(["us-east-1"], max_wait=300)).include(
    method="POST", path_regex="^/v1/apps/{app}/{function}$"
)
# Headers the edge does not know are no violation: HTTP lets a client send any.
violations.config.generation.update(modes=[GenerationMode.NEGATIVE], allow_extra_parameters=False)
pytestmark = pytest.mark.slow

LIMIT = 4096  # the worker's max_payload_bytes here: bodies over it are cheap to send
WORKER = (
    '[app]\nname = "worker"\nhandler = "tests.apps.worker:Worker"\n'
    f"[scaling]\nmin_replicas = 1\nmax_payload_bytes = {LIMIT}\n"
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
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with own_dir(tmp_path_factory, "schema") as tmp, LocalEtcd(tmp / "etcd") as etcd:
        etcd_toml = f'[etcd]\nendpoints = ["{etcd.endpoints[0]}"]\n'
        port = free_port()
        edge = tmp / "edge.toml"
        edge.write_text(
            f'region = "us-east-1"\nport = {port}\n'
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
            key = asyncio.run(_admin_key(etcd))
            _wait_ready(url)
            request = urllib.request.Request(
                url + "/v1/apps/worker", data=WORKER.encode(), method="PUT",
                headers={"Authorization": f"Bearer {key}"},
            )  # fmt: skip
            urllib.request.urlopen(request, timeout=5).close()
            yield Live(url, {"Authorization": f"Bearer {key}"})
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_edge_keeps_its_own_schema(case: schemathesis.Case, edge: Live) -> None:
    # positive_data_acceptance is left out: some 4xx answer rules no JSON schema can state
    # (min_replicas ≤ max_replicas, the body's app name = the path's, a deployed app).
    case.call_and_validate(
        base_url=edge.url, headers=edge.auth, timeout=30,
        excluded_checks=[positive_data_acceptance],
    )  # fmt: skip


@violations.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_submit_headers_outside_the_rules_are_4xx_never_5xx(
    case: schemathesis.Case, edge: Live
) -> None:
    # A real app and function and a valid key, so the request reaches the header checks.
    # negative_data_rejection is left out: it counts the replaced path and the missing key as
    # the case's violations; positive_data_acceptance too: a valid Idempotency-Key reused for
    # another body is rightly a 422. What is checked: no 5xx, and every answer in the schema.
    case.path_parameters = {"app": "worker", "function": "echo"}
    response = case.call_and_validate(
        base_url=edge.url, headers=edge.auth, timeout=30,
        excluded_checks=[negative_data_rejection, positive_data_acceptance],
    )  # fmt: skip
    if response.status_code == 400:
        message = response.json()["error"]["message"]
        assert any(name in message for name in (*(case.headers or {}), "async")), message


@given(size=st.integers(LIMIT + 1, 4 * LIMIT), declared=st.booleans())
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_bodies_over_the_apps_limit_are_413(edge: Live, size: int, declared: bool) -> None:
    """With a Content-Length (refused before reading) and chunked (refused at the limit)."""
    body = b"x" * size
    data: Any = body if declared else iter([body[: size // 2], body[size // 2 :]])
    request = urllib.request.Request(
        edge.url + "/v1/apps/worker/echo?async=true", data=data, method="POST", headers=edge.auth
    )
    status, error = _call(request)
    assert status == 413 and error["code"] == "payload_too_large"


# What http.client lets through in a header value: any character but CR, LF and NUL.
HEADER_VALUE = st.text(st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=600)


@given(value=st.one_of(HEADER_VALUE, HEADER_VALUE.map(lambda v: "Bearer " + v)))
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_authorization_is_a_400_or_401_never_5xx(edge: Live, value: str) -> None:
    request = urllib.request.Request(edge.url + "/v1/apps", headers={"Authorization": value})
    try:
        status, error = _call(request)
    except json.JSONDecodeError:  # not the edge's answer: aiohttp's HTTP parser refused it
        assert any(c < " " or c == "\x7f" for c in value)  # control characters (RFC 9110)
        return
    assert status in (400, 401) and error["code"] in ("bad_request", "unauthorized")


def _call(request: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())["error"]


async def _admin_key(etcd: LocalEtcd) -> str:
    clusters = Clusters(EtcdConfig(endpoints=tuple(etcd.endpoints)))
    try:
        return await ApiKeys(clusters.control, clusters.root).create(
            Grant(name="schema", admin=True)
        )
    finally:
        await clusters.close()


@dataclass(frozen=True)
class Live:
    url: str
    auth: dict[str, str]
