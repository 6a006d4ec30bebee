"""One real federation for the client's tests: ``spillover up`` (etcd, a region's agent with
replica subprocesses, an edge) serving the test worker app, plus apps with other limits."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from federation import keys
from federation.etcd import Etcd
from federation.queue import decode
from tests.integration.conftest import REGION
from tests.integration.test_up import Up

WORKER = """
[app]
name = "worker"
handler = "tests.apps.worker:Worker"

[scaling]
replica_concurrency = 32
min_replicas = 1
max_replicas = 1
"""
# Apps deployed beside it: one whose tasks may run 0.5 s (a task error "timeout"), one whose
# tasks are counted by the restart test, one that takes 1000-byte bodies (never runs a task).
OTHERS = {
    "short": {"replica_concurrency": 4, "min_replicas": 1, "max_replicas": 1, "max_runtime": 0.5},
    "again": {"replica_concurrency": 4, "min_replicas": 1, "max_replicas": 1},
    "small": {"min_replicas": 0, "max_replicas": 1, "max_payload_bytes": 1000},
}


@dataclass(frozen=True)
class Federation:
    url: str
    data: Path  # spillover up's data directory: its edge.toml, logs
    etcd: list[str]

    def tasks(self, app: str) -> list[str]:
        """Ids of the app's tasks, from etcd itself."""

        async def read() -> list[str]:
            etcd = Etcd(self.etcd)
            try:
                prefix = keys.tasks(keys.DEFAULT_ROOT, REGION)
                kvs, _ = await etcd.range_all(prefix, keys.prefix_end(prefix))
            finally:
                await etcd.close()
            return [r.id for r in map(decode, (kv.value for kv in kvs)) if r.app == app]

        return asyncio.run(read())

    def serving(self) -> set[str]:
        with urllib.request.urlopen(f"{self.url}/v1/federation/health", timeout=10) as r:
            health = json.loads(r.read())
        return {a["app"] for region in health["regions"] for a in region["apps"]
                if a["ready_replicas"] > 0}  # fmt: skip


def deploy(url: str, name: str, scaling: dict[str, object]) -> None:
    spec = {"app": {"name": name, "handler": "tests.apps.worker:Worker"}, "scaling": scaling}
    req = urllib.request.Request(f"{url}/v1/apps/{name}", json.dumps(spec).encode(),
                                 {"Content-Type": "application/json"}, method="PUT")  # fmt: skip
    urllib.request.urlopen(req, timeout=30).close()


@pytest.fixture(scope="package")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    tmp = tmp_path_factory.mktemp("client")
    up = Up(tmp, app=WORKER, regions=(f"{REGION}=39.0,-77.5",))
    try:
        up.wait_up(timeout=180)
        for name, scaling in OTHERS.items():
            deploy(up.url, name, scaling)
        edge = tomllib.loads((tmp / "data" / "edge.toml").read_text())
        fed = Federation(up.url, tmp / "data", edge["etcd"]["endpoints"])
        wanted = {n for n, s in OTHERS.items() if s["min_replicas"]}
        deadline = time.monotonic() + 120
        while not wanted <= fed.serving():  # as Up.wait_up: a blocking poll, in a sync fixture
            assert up.proc.poll() is None and time.monotonic() < deadline, up.output.read_text()
            time.sleep(0.2)
        yield fed
    finally:
        up.proc.send_signal(signal.SIGINT)
        try:
            up.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.proc.kill()
            up.proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)  # etcd's data: pytest would keep it to the end
