from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import tomli_w
from aiohttp import web

from federation.aio import cancel_and_wait
from federation.apps import AppRegistry
from federation.appspec import AppSpec, parse_spec
from federation.blobs.config import BlobConfig
from federation.queue import Queue
from federation.task import TaskRecord, new_ulid
from federation.topology import Clusters
from federation.waiters import TaskWaiters
from regional.agent import Agent
from regional.config import RegionConfig
from regional.replicas import LocalProcessProvider
from spillover.local.etcd import LocalEtcd, free_port
from tests.conftest import make_config
from tests.factories import task
from tests.waiting import until

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def worker_spec(
    name: str = "worker",
    handler: str = "tests.apps.worker:Worker",
    functions: list[str] | None = None,
    **scaling: Any,
) -> AppSpec:
    listed = {} if functions is None else {"functions": functions}
    return parse_spec(
        {
            "app": {"name": name, "handler": handler, **listed},
            "scaling": {"replica_concurrency": 4, "min_replicas": 1, **scaling},
            "placement": {"regions": [REGION], "spillover_after": 0.5},
        }
    )


def region_toml(harness: Harness, path: Path, **settings: Any) -> Path:
    """A ``region.toml`` for an agent of its own process (``spillover region``) beside the
    harness: its etcd and key root, and ``settings``."""
    etcd = {"endpoints": list(harness.etcd_config.endpoints), "root": harness.etcd_config.root}
    config = {"name": REGION, "lat": 39.0, "lon": -77.5, "app_root": str(REPO), "lease_ttl": 2,
              "etcd": etcd, **settings}  # fmt: skip
    path.write_text(tomli_w.dumps(config))
    return path


class Harness:
    """A real etcd, an agent with real replica subprocesses, and a client's view of the queue."""

    def __init__(self, cluster: LocalEtcd, root: str) -> None:
        self.etcd_config = make_config(cluster, root)
        self.clusters = Clusters(self.etcd_config)
        self.queue = Queue(self.clusters)
        self.waiters = TaskWaiters(self.queue, [REGION])
        self.apps = AppRegistry(self.clusters.control, root)
        self.agents: list[tuple[Agent, asyncio.Task[None]]] = []
        self._scratch = tempfile.TemporaryDirectory(prefix="harness-")  # the agents' blob stores
        self._bg = [asyncio.create_task(self.waiters.run())]

    async def start_agent(self, **config: Any) -> Agent:
        # The autoscaler is off unless a test asks: these tests count slots and replicas.
        cfg = RegionConfig(
            name=REGION, lat=39.0, lon=-77.5, etcd=self.etcd_config, app_root=REPO,
            heartbeat_interval=0.2,
            **{"autoscale": False, "blobs": {"dir": self.scratch()},
               "lease_ttl": 2, **config},
        )  # fmt: skip
        provider = LocalProcessProvider(REPO, replica_user=cfg.replica_user)
        agent = Agent(cfg, Clusters(self.etcd_config), provider)
        self.agents.append((agent, asyncio.create_task(agent.run())))
        return agent

    def scratch(self) -> str:
        """A new directory, removed with the harness."""
        return tempfile.mkdtemp(dir=self._scratch.name)

    async def ready(self, agent: Agent, app: str, replicas: int, timeout: float = 30) -> None:
        def serving() -> bool:
            runner = agent.runners.get(app)
            return runner is not None and len(runner.pool.ready_replicas) >= replicas

        await until(serving, timeout)

    async def submit(self, app: str, function: str, body: Any, **fields: Any) -> TaskRecord:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        record = task(REGION, app=app, function=function, **fields)
        await self.queue.enqueue(record, payload)
        return record

    async def result(self, record: TaskRecord, timeout: float = 30) -> TaskRecord:
        return await self.waiters.wait(record.id, timeout)

    async def close(self) -> None:
        for agent, running in self.agents:
            await cancel_and_wait([running])
            await agent.clusters.close()
            assert isinstance(agent.provider, LocalProcessProvider)
            agent.provider.close()
        await cancel_and_wait(self._bg)
        await self.clusters.close()
        self._scratch.cleanup()


@pytest.fixture
async def harness(etcd1: LocalEtcd, root: str) -> AsyncIterator[Harness]:
    h = Harness(etcd1, root)
    yield h
    await h.close()


class Receiver:
    """Answers the statuses in ``script`` in turn, then 200; records what it got."""

    def __init__(self, *script: int) -> None:
        self.script = list(script)
        self.got: list[tuple[int, bytes, dict[str, str]]] = []  # (status answered, body, headers)

    async def handle(self, request: web.Request) -> web.Response:
        status = self.script.pop(0) if self.script else 200
        self.got.append((status, await request.read(), dict(request.headers)))
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """A webhook receiver on a real socket, and its URL."""
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield r, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    await runner.cleanup()


@pytest.fixture(scope="session")
def moto() -> Iterator[str]:
    """moto's server mode: the S3 HTTP API on loopback."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_blobs(moto: str, monkeypatch: pytest.MonkeyPatch) -> BlobConfig:
    """A fresh bucket in moto, as a ``[blobs]`` config."""
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(k, v)
    bucket = f"b{new_ulid().lower()}"
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto).create_bucket(Bucket=bucket)
    return BlobConfig(backend="s3", bucket=bucket, s3_region="us-east-1", endpoint_url=moto)
