"""A retry across an edge restart: the edge is SIGKILLed while a synchronous call waits on it,
comes back on the same port, and the client's retry (same Idempotency-Key) finds the task the
first attempt stored. Exactly one task exists."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomli_w

import spillover
from spillover.local.etcd import free_port
from tests.integration.client.conftest import Federation
from tests.integration.conftest import REPO

pytestmark = pytest.mark.slow


class EdgeProcess:
    """A second edge in front of the federation, as its own process, on a port of its own."""

    def __init__(self, federation: Federation, tmp: Path) -> None:
        config = tomllib.loads((federation.data / "edge.toml").read_text())
        self.port = free_port()
        config.update(id="edge-restart", port=self.port, blobs={"dir": str(tmp / "blobs")})
        self.config, self.log = tmp / "edge.toml", tmp / "edge.log"
        self.config.write_text(tomli_w.dumps(config))
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge.main", "--config", str(self.config)],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self._ready():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def edge(federation: Federation, tmp_path: Path) -> Iterator[EdgeProcess]:
    e = EdgeProcess(federation, tmp_path)
    e.start()
    yield e
    if e.proc is not None and e.proc.poll() is None:
        e.kill()


def test_a_retry_across_an_edge_restart_creates_no_second_task(
    federation: Federation, edge: EdgeProcess
) -> None:
    before = set(federation.tasks("again"))
    with (
        spillover.Client(edge.url, retry_for=60) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        call = pool.submit(client.run, "again", "sleep", {"seconds": 3})
        deadline = time.monotonic() + 30
        while not set(federation.tasks("again")) - before:  # stored: the call waits on the edge
            assert time.monotonic() < deadline and not call.done()
            time.sleep(0.02)
        edge.kill()  # the waiting connection dies without an answer
        time.sleep(1)  # down for a while: the client's retries find nothing listening
        assert not call.done()
        edge.start()
        result = call.result(timeout=60)
    assert result["slept"] == 3
    assert len(set(federation.tasks("again")) - before) == 1
