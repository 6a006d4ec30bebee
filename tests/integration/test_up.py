"""``spillover up`` as a user runs it: a real federation of processes (etcd, an agent per region
with replica subprocesses, an edge), driven over HTTP, stopped by a signal."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federation import keys
from federation.errors import PermissionDenied
from federation.etcd import Etcd
from federation.etcd_tls import EtcdTls
from spillover.local.etcd import free_port
from tests.integration.conftest import REPO

pytestmark = pytest.mark.slow
WORKER_APP = """
[app]
name = "worker"
handler = "tests.apps.worker:Worker"

[scaling]
replica_concurrency = 1
min_replicas = 1
max_replicas = 1  # one slot per region, so where each task runs is known

[placement]
spillover_after = 0.3
"""


def two_free_ports() -> int:
    """A port p with p + 1 free too (etcd's client and peer ports)."""
    while True:
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (zombies count as gone)."""
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


class Up:
    def __init__(
        self,
        tmp: Path,
        app: str | None = WORKER_APP,  # None: the bundled demo app
        regions: tuple[str, ...] = ("us-east-1=39.0,-77.5", "eu-west-1=53.3,-6.3"),
        *flags: str,
        env: dict[str, str] | None = None,
        spillover: tuple[str, ...] = (sys.executable, "-m", "spillover"),  # or an installed one
        cwd: Path = REPO,  # the regions' app_root
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = tmp / "up.log"
        command = [
            *spillover, "up", "--port", str(self.port),
            "--etcd-port", str(two_free_ports()), "--data", str(tmp / "data"),
            "--regions", *regions, *flags,
        ]  # fmt: skip
        if app is not None:
            (tmp / "app.toml").write_text(app)
            command += ["--app", str(tmp / "app.toml")]
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env
            )

    def wait_up(self, timeout: float = 120) -> set[int]:
        deadline = time.monotonic() + timeout
        while "Spillover is up" not in self.output.read_text():
            assert self.proc.poll() is None, self.output.read_text()
            assert time.monotonic() < deadline, self.output.read_text()
            time.sleep(0.1)
        return descendants(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data, headers, method=method)
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "spillover", *args]
    environ = {**os.environ, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environ)


def watched(edge_url: str, out: Path, redraws: int, timeout: float = 60) -> str:
    """`spillover status --watch` until it has drawn ``redraws`` times, then Ctrl-C (SIGINT):
    it must stop at once and cleanly."""
    command = [sys.executable, "-m", "spillover", "status", "--watch", "0.2",
               "--edge", edge_url]  # fmt: skip
    with out.open("w") as f:
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while out.read_text().count("Ctrl-C stops") < redraws:
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out.read_text()


def test_status_watch_redraws_while_the_edge_is_down_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    text = watched(f"http://127.0.0.1:{free_port()}", tmp_path / "watch.txt", redraws=3)
    assert text.count("cannot reach the edge") >= 3 and "Traceback" not in text


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    u = Up(tmp_path)
    yield u
    u.stop()


def test_up_serves_spills_over_without_breaking_pins_and_stops_clean(up: Up) -> None:
    processes = up.wait_up()
    assert len(processes) >= 5  # etcd, two agents each with a replica, the edge
    pinned = {"X-Spillover-Region": "us-east-1"}
    asked = [up.call("POST", "/v1/apps/worker/sleep?async=true", {"seconds": 1.5}, **pinned)
             for _ in range(2)]  # fmt: skip
    # Home us-east-1 (the edge's region), whose one slot is taken: they spill over to eu-west-1.
    free = [up.call("POST", "/v1/apps/worker/sleep?async=true", {"seconds": 0.2}) for _ in range(2)]
    ran = {
        t["id"]: up.call("GET", f"/v1/tasks/{t['id']}/result?wait=30")["region"]
        for t in asked + free
    }
    assert [ran[t["id"]] for t in asked] == ["us-east-1", "us-east-1"]
    assert {ran[t["id"]] for t in free} == {"eu-west-1"}
    config = tomllib.loads((up.output.parent / "data" / "eu-west-1.toml").read_text())
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{config['metrics_port']}/metrics").read()
    moved = 'spillover_spillover_total{app="worker",from="us-east-1",to="eu-west-1"} 2.0'
    assert moved in metrics.decode()
    health = up.call("GET", "/v1/federation/health")
    assert health["status"] == "ok" and [r["name"] for r in health["regions"]] == [
        "eu-west-1", "us-east-1"
    ]  # fmt: skip
    status = cli("status", "--edge", up.url)
    assert "federation: ok" in status.stdout and "eu-west-1" in status.stdout
    assert watched(up.url, up.output.parent / "watch.txt", 2).count("federation: ok") >= 2
    spec = up.output.parent / "other.toml"
    spec.write_text(WORKER_APP.replace('"worker"', '"other"'))
    deploy = cli("deploy", str(spec), "--edge", up.url)
    assert deploy.returncode == 0 and "deployed other" in deploy.stdout
    assert up.call("GET", "/v1/apps/other")["spec"]["app"]["name"] == "other"
    spec.write_text(WORKER_APP.replace("replica_concurrency = 1", "replica_concurrency = 0"))
    refused = cli("deploy", str(spec), "--edge", up.url)
    assert refused.returncode != 0 and "replica_concurrency = 0" in refused.stderr

    etcd = {"SPILLOVER_ETCD_ENDPOINTS": config["etcd"]["endpoints"][0]}
    created = cli("keys", "create", "ci", "--apps", "worker", "--rate", "50", "--burst", "100",
                  env=etcd)  # fmt: skip
    assert created.returncode == 0 and created.stdout.startswith("sk_")
    listed = cli("keys", "list", env=etcd).stdout
    assert listed.rstrip("\n").split("\t") == ["ci", "worker", "50/s burst 100"]
    refused = cli("keys", "create", "bad", "--apps", "worker", "--burst", "10", env=etcd)
    assert refused.returncode != 0 and "give a rate too" in refused.stderr
    assert cli("keys", "revoke", "ci", env=etcd).returncode == 0
    assert cli("keys", "list", env=etcd).stdout == ""
    first = cli("keys", "webhook-secret", "--app", "worker", env=etcd).stdout.strip()
    assert len(first) == 64  # the app's, created with its deploy
    rotated = cli("keys", "webhook-secret", "--app", "worker", "--rotate", env=etcd)
    assert len(rotated.stdout.strip()) == 64 and rotated.stdout.strip() != first
    assert "the previous secret signs too for 86400 s more" in rotated.stderr
    assert cli("keys", "webhook-secret", "--app", "worker", env=etcd).stdout == rotated.stdout

    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(timeout=60) == 0
    assert not alive(processes)


def test_a_sigkilled_up_leaves_no_process_behind(up: Up) -> None:
    processes = up.wait_up()
    up.proc.kill()
    up.proc.wait()
    deadline = time.monotonic() + 30
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(processes)


def region_agent(up: Up, region: str) -> int:
    """The pid of ``spillover up``'s agent process for ``region``."""
    for pid in descendants(up.proc.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"region" in cmdline and any(f"{region}.toml".encode() in a for a in cmdline):
            return pid
    raise LookupError(region)


def test_a_killed_region_loses_nothing_pins_stay_and_health_follows(up: Up) -> None:
    """SIGKILL us-east-1's agent (its replicas die with it): its unpinned tasks, queued and
    running, finish in eu-west-1; a pinned one waits; health says down within lease TTL + 1 s
    (5 + 1) and ok again once an agent for the region is back."""
    up.wait_up()
    state = lambda tid: up.call("GET", f"/v1/tasks/{tid}")  # noqa: E731
    running = up.call("POST", "/v1/apps/worker/sleep?async=true", {"seconds": 8})
    deadline = time.monotonic() + 30
    while state(running["id"])["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state(running["id"])["region"] == "us-east-1"
    pinned = up.call("POST", "/v1/apps/worker/sleep?async=true", {"seconds": 0.1},
                     **{"X-Spillover-Region": "us-east-1"})  # fmt: skip
    agent = region_agent(up, "us-east-1")
    os.kill(agent, signal.SIGKILL)
    killed = time.monotonic()
    while True:
        regions = {
            r["name"]: r["status"] for r in up.call("GET", "/v1/federation/health")["regions"]
        }
        if regions["us-east-1"] == "down":
            break
        assert time.monotonic() - killed < 5 + 1 + 1  # TTL + 1 s, and a poll's slack
        time.sleep(0.1)
    # While it is down, new unpinned tasks homed there are taken by eu-west-1 at once.
    queued = up.call("POST", "/v1/apps/worker/sleep?async=true", {"seconds": 0.1})
    for task in (running, queued):
        done = up.call("GET", f"/v1/tasks/{task['id']}/result?wait=60")
        assert done["region"] == "eu-west-1"
    assert state(running["id"])["attempts"] == 2 and state(queued["id"])["attempts"] == 1
    assert state(pinned["id"])["state"] == "queued"  # never ran elsewhere
    # The region comes back: its pinned task runs there, and health is ok again.
    config = up.output.parent / "data" / "us-east-1.toml"
    back = subprocess.Popen(
        [sys.executable, "-m", "spillover", "region", "--config", str(config)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert up.call("GET", f"/v1/tasks/{pinned['id']}/result?wait=60")["region"] == "us-east-1"
        deadline = time.monotonic() + 30
        while up.call("GET", "/v1/federation/health")["status"] != "ok":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        back.terminate()
        back.wait(timeout=30)


def test_up_with_auth_writes_an_admin_key_and_then_asks_for_keys(tmp_path: Path) -> None:
    up = Up(tmp_path, WORKER_APP, ("us-east-1=39.0,-77.5",), "--auth")
    data = tmp_path / "data"
    try:
        up.wait_up()
        path = data / "admin.key"
        assert path.stat().st_mode & 0o777 == 0o600 and str(path) in up.output.read_text()
        key = path.read_text().strip()
        with pytest.raises(urllib.error.HTTPError) as refused:
            up.call("POST", "/v1/apps/worker/sleep", {"seconds": 0})
        assert refused.value.code == 401
        done = up.call(
            "POST", "/v1/apps/worker/sleep", {"seconds": 0}, Authorization=f"Bearer {key}"
        )
        assert done["slept"] == 0
        status = cli("status", "--edge", up.url, env={"SPILLOVER_API_KEY": key})
        assert status.returncode == 0 and "us-east-1" in status.stdout

        # etcd as deployed: TLS, a certificate per process kind, the RBAC roles.
        keys_ = [*(data / "tls").glob("*.key"), data / "admin.env"]
        assert len(keys_) == 7 and all(k.stat().st_mode & 0o777 == 0o600 for k in keys_)
        agent = tomllib.loads((data / "us-east-1.toml").read_text())["etcd"]
        assert agent["endpoints"][0].startswith("https://") and "agent.pem" in str(agent["tls"])
        with pytest.raises(PermissionDenied):
            asyncio.run(put_app(agent["endpoints"], EtcdTls.model_validate(agent["tls"])))
        admin = dict(line.removeprefix("export ").split("=", 1)
                     for line in (data / "admin.env").read_text().splitlines())  # fmt: skip
        spec = tmp_path / "other.toml"
        spec.write_text(WORKER_APP.replace('"worker"', '"other"'))
        through_edge = cli("deploy", str(spec), "--edge", up.url, env=admin)
        assert through_edge.returncode != 0 and "403 forbidden" in through_edge.stderr
        deployed = cli("deploy", "--etcd", str(spec), env=admin)
        assert deployed.returncode == 0 and "deployed other" in deployed.stdout
        assert up.call("GET", "/v1/apps/other", Authorization=f"Bearer {key}")
        assert cli("keys", "create", "ci", "--apps", "worker", env=admin).returncode == 0
        listed = cli("keys", "list", env=admin).stdout.split()
        assert listed == ["admin", "admin", "unlimited", "ci", "worker", "unlimited"]
    finally:
        up.proc.send_signal(signal.SIGINT)
        up.proc.wait(timeout=60)
    plain = subprocess.run([sys.executable, "-m", "spillover", "up", "--data", str(data)],
                           capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert plain.returncode != 0 and "was last run with --auth" in plain.stderr


async def put_app(endpoints: list[str], tls: EtcdTls) -> None:
    etcd = Etcd(endpoints, tls=tls, timeout=3)
    try:
        await etcd.put(keys.app(keys.DEFAULT_ROOT, "planted"), b"{}")
    finally:
        await etcd.close()
