"""A federation of real processes for the reliability suite, and the faults it takes: etcd (one or
three members; agents and edges may reach them through cuttable proxies), agents with their
replica subprocesses, and edges, each as ``spillover region`` / ``spillover edge`` would run.
The suite itself talks to etcd directly (never through a proxy): it is the observer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from benchmarks.chaos.workload import RUNS_ENV
from benchmarks.sides import EdgeProcess, app_loads, run_log, serving, start_edge, tree
from federation.apps import AppRegistry
from federation.appspec import AppSpec, parse_spec
from federation.heartbeat import AppLoad
from federation.queue import Queue
from federation.topology import Clusters, EtcdConfig
from spillover.local.configs import DEFAULT_REGIONS, parse_region
from spillover.local.etcd import LocalEtcd, free_port
from tests.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parents[2]
ROOT = "/chaos"
APP = "chaos"
HANDLER = "benchmarks.chaos.workload:Chaos"
WHERE = {r.name: r for r in map(parse_region, DEFAULT_REGIONS)}


@dataclass(frozen=True)
class Shape:
    """What a scenario's federation is made of."""

    regions: tuple[str, ...] = ("us-east-1",)
    agents: int = 1  # per region
    replicas: int = 1  # per agent, pinned in region.toml unless ``pinned`` is off
    slots: int = 4  # replica_concurrency
    members: int = 1  # etcd
    edges: int = 1
    lease_ttl: int = 2
    proxied: bool = False  # agents and edges reach each etcd member through a TcpProxy
    quota_bytes: int = 2 << 30  # etcd's --quota-backend-bytes, and every config's [etcd] quota
    compaction: str = "0"  # off: the ledger reads the whole history of the run
    auth: bool = False
    pinned: bool = True  # False: the app spec's min/max_replicas size the pool
    scaling: Mapping[str, Any] = field(default_factory=dict)  # more [scaling] keys
    spillover_after: float = 0.5


@dataclass
class AgentProcess:
    name: str
    region: str
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def replicas(self) -> list[int]:
        """The agent's replica processes (its children)."""
        return tree(self.pid)[1:] if self.alive else []


class Federation:
    def __init__(self, tmp: Path, shape: Shape) -> None:
        self.tmp = tmp
        self.shape = shape
        self.etcd = LocalEtcd(
            tmp / "etcd",
            members=shape.members,
            compaction_retention=shape.compaction,
            quota_bytes=shape.quota_bytes,
        )
        self.config = EtcdConfig(
            endpoints=tuple(self.etcd.endpoints), root=ROOT, quota_bytes=shape.quota_bytes
        )
        self.clusters = Clusters(self.config)  # the observer's: straight to etcd
        self.queue = Queue(self.clusters)
        self.proxies: list[TcpProxy] = []
        self._cleanup = contextlib.ExitStack()
        self.runs = self._cleanup.enter_context(run_log())  # handlers run as another user
        self.agents: dict[str, AgentProcess] = {}
        self.edges: list[EdgeProcess] = []
        self.spec: AppSpec | None = None

    @property
    def partitions(self) -> tuple[str, ...]:
        return self.shape.regions

    def system_endpoints(self) -> list[str]:
        """What agents and edges are configured with: the proxies, when there are some."""
        return [p.endpoint for p in self.proxies] or list(self.etcd.endpoints)

    # -- start and stop -------------------------------------------------------------------------

    async def start(self, **scaling: Any) -> Federation:
        """Everything serving; on failure, everything stopped again."""
        try:
            await self._start(scaling)
        except BaseException:
            await self.close()
            raise
        return self

    async def _start(self, scaling: dict[str, Any]) -> None:
        await asyncio.to_thread(self.tmp.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(self.etcd.start)
        if self.shape.proxied:
            self.proxies = [
                await TcpProxy(("127.0.0.1", m.client_port)).start() for m in self.etcd.members
            ]
        await self.deploy(**scaling)
        for region in self.shape.regions:
            for i in range(self.shape.agents):
                self.add_agent(region, i)
        edges = [self._edge_config(i) for i in range(self.shape.edges)]
        self.edges = list(await asyncio.gather(*(start_edge(c, self.tmp) for c in edges)))
        for region in self.shape.regions:
            await self.serving(region, self.shape.agents * self.shape.replicas)

    async def deploy(self, **scaling: Any) -> AppSpec:
        """Deploy (or update) the app; ``scaling`` overrides the shape's [scaling] keys, and a
        ``queue`` key becomes the spec's [queue] section."""
        s = self.shape
        queue = scaling.pop("queue", None)
        data: dict[str, Any] = {
            "app": {"name": APP, "handler": HANDLER},
            "scaling": {
                "replica_concurrency": s.slots,
                "min_replicas": s.replicas,
                "max_replicas": max(8, s.replicas),
                **s.scaling,
                **scaling,
            },
            "placement": {"regions": list(s.regions), "spillover_after": s.spillover_after},
        }
        if queue is not None:
            data["queue"] = queue
        self.spec = parse_spec(data)
        await AppRegistry(self.clusters.control, ROOT).put(self.spec)
        return self.spec

    def _agent_config(self, region: str, name: str) -> Path:
        s, where = self.shape, WHERE[region]
        config = {
            "name": region,
            "lat": where.lat,
            "lon": where.lon,
            "peers": [r for r in s.regions if r != region],
            "app_root": str(REPO),
            "autoscale": False,
            "replicas": {APP: s.replicas} if s.pinned else {},
            "lease_ttl": s.lease_ttl,
            "heartbeat_interval": 0.5,
            "etcd": self._etcd_config(),
            "blobs": {"dir": str(self.tmp / "blobs" / name)},
        }
        path = self.tmp / f"{name}.toml"
        path.write_text(tomli_w.dumps(config))
        return path

    def _etcd_config(self) -> dict[str, Any]:
        """The ``[etcd]`` section of agents and edges: they measure storage against the quota
        etcd runs with."""
        return {
            "endpoints": self.system_endpoints(),
            "root": ROOT,
            "quota_bytes": self.shape.quota_bytes,
        }

    def _edge_config(self, i: int) -> dict[str, Any]:
        return {
            "id": f"edge-{i}",
            "region": self.shape.regions[0],
            "port": free_port(),
            "auth": self.shape.auth,
            "regions": [
                {"name": r.name, "lat": r.lat, "lon": r.lon}
                for r in WHERE.values()
                if r.name in self.shape.regions
            ],
            "etcd": self._etcd_config(),
            "blobs": {"dir": str(self.tmp / "blobs" / f"edge-{i}")},
            "default_sync_timeout": 30,
        }

    def add_agent(self, region: str, i: int) -> AgentProcess:
        name = f"{region}-{i}"
        agent = AgentProcess(
            name, region, self._agent_config(region, name), self.tmp / f"{name}.log"
        )
        self.agents[name] = agent
        self.start_agent(name)
        return agent

    def start_agent(self, name: str) -> None:
        """Start (or start again, after a kill) an agent process."""
        agent = self.agents[name]
        env = {**os.environ, RUNS_ENV: str(self.runs), "PYTHONUNBUFFERED": "1"}
        with agent.log.open("ab") as log:
            agent.process = subprocess.Popen(
                [sys.executable, "-m", "regional.main", "--config", str(agent.config)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def serving(self, region: str, replicas: int, timeout: float = 120) -> None:
        await serving(self.clusters.control, ROOT, APP, region, replicas, timeout)

    async def loads(self) -> dict[str, AppLoad]:
        """The app's load per region, as the heartbeats say."""
        return await app_loads(self.clusters.control, ROOT, APP)

    async def close(self) -> None:
        for agent in self.agents.values():
            if agent.alive:
                assert agent.process is not None
                with contextlib.suppress(ProcessLookupError):
                    agent.process.send_signal(signal.SIGCONT)  # a stopped one cannot exit
                    agent.process.terminate()
        for agent in self.agents.values():
            if agent.process is not None:
                await _reap(agent.process)
        for edge in self.edges:
            if edge.process.returncode is None:
                edge.process.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(20):
                    await edge.process.wait()
            if edge.process.returncode is None:
                edge.process.kill()
                await edge.process.wait()
        await self.clusters.close()
        for proxy in self.proxies:
            await proxy.close()
        await asyncio.to_thread(self.etcd.close)
        self._cleanup.close()

    # -- faults ---------------------------------------------------------------------------------

    def signal(self, pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    async def kill_agent(self, name: str) -> None:
        """SIGKILL an agent; its replicas die with it (they are set to, as in production)."""
        agent = self.agents[name]
        assert agent.process is not None
        self.signal(agent.pid, signal.SIGKILL)
        await asyncio.to_thread(agent.process.wait)

    async def kill_edge(self, i: int) -> None:
        self.signal(self.edges[i].process.pid, signal.SIGKILL)
        await self.edges[i].process.wait()

    async def leader(self) -> int:
        """The index of the etcd member that leads now."""
        _, name = await self.clusters.control.status()
        return next(i for i, m in enumerate(self.etcd.members) if m.name == name)


async def _reap(process: subprocess.Popen[bytes], grace: float = 20) -> None:
    try:
        await asyncio.to_thread(process.wait, grace)
    except subprocess.TimeoutExpired:
        process.kill()
        await asyncio.to_thread(process.wait)
