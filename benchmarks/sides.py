"""The two sides of the comparison, each as real processes on loopback: Spillover (etcd, a
region's agent and its replicas) and Celery (redis-server and a prefork worker). Benchmarks drive
both from this process and read CPU and memory from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from federation import keys
from federation.apps import AppRegistry
from federation.appspec import parse_spec
from federation.etcd import Etcd
from federation.heartbeat import AppLoad, RegionHeartbeat, merge
from federation.queue import Queue
from federation.task import TaskRecord, new_task_id
from federation.topology import Clusters, EtcdConfig
from federation.waiters import TaskWaiters, until_finished
from spillover.local.etcd import LocalEtcd, free_port

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
_TICK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU of ``pids``, with that of their children already reaped: a replica
    that dies and is replaced mid-measurement is counted through its parent, not lost."""
    total = 0.0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15]) / _TICK  # utime, stime, cutime, cstime
    return total


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


async def app_loads(etcd: Etcd, root: str, app: str) -> dict[str, AppLoad]:
    """``app``'s load per region, from the regions' merged heartbeats."""
    prefix = keys.regions(root)
    kvs, _ = await etcd.range_all(prefix, keys.prefix_end(prefix))
    beats = merge(RegionHeartbeat.model_validate_json(kv.value) for kv in kvs)
    return {name: a for name, beat in beats.items() for a in beat.apps if a.app == app}


async def serving(
    etcd: Etcd, root: str, app: str, region: str, replicas: int, timeout: float = 180
) -> None:
    """Until the region's heartbeat shows ``replicas`` ready replicas of ``app``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        load = (await app_loads(etcd, root, app)).get(region)
        if load is not None and load.ready_replicas >= replicas:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{replicas} replicas of {app} not serving in {region} after {timeout} s")


@contextlib.contextmanager
def run_log() -> Iterator[Path]:
    """An empty file any user may append to (not read), in a directory any user may enter;
    removed afterwards. Replicas run as their app's own user when the agent runs as root, so a
    handler's log of its runs cannot live in the benchmark's private temporary directory."""
    directory = Path(tempfile.mkdtemp(prefix="spillover-runs-"))
    try:
        directory.chmod(0o711)
        log = directory / "runs.log"
        log.touch()
        log.chmod(0o622)  # others append; only the benchmark reads
        yield log
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Spillover:
    """etcd and an agent process per region, each with ``replicas`` replicas of
    ``concurrency`` slots; every region follows the others' partitions (spillover)."""

    def __init__(
        self,
        tmp: Path,
        concurrency: int,
        replicas: int = 1,
        regions: tuple[str, ...] = (REGION,),
        *,
        queue: dict[str, Any] | None = None,
        quota_bytes: int = 2 << 30,
        **scaling: Any,
    ) -> None:
        self.tmp = tmp
        self.concurrency = concurrency
        self.replicas = replicas
        self.regions = regions
        self.scaling = scaling
        self.queue_settings = queue or {}
        self.etcd = LocalEtcd(tmp / "etcd", quota_bytes=quota_bytes)
        self.config = EtcdConfig(
            endpoints=tuple(self.etcd.endpoints), root="/bench", quota_bytes=quota_bytes
        )
        self.clusters = Clusters(self.config)  # connects on first use
        self.queue = Queue(self.clusters)
        self.waiters = TaskWaiters(self.queue, self.regions)
        self.bg: asyncio.Task[None] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.env: dict[str, str] = {}

    @property
    def agent(self) -> subprocess.Popen[bytes]:
        return self.agents[self.regions[0]]

    async def start(
        self,
        runs_log: Path | None = None,
        handler: str = "benchmarks.probe:Probe",
        autoscale: bool = False,
    ) -> Spillover:
        """Everything up and serving; on failure or cancellation (SIGTERM), all of it closed."""
        try:
            await self._start(runs_log, handler, autoscale)
        except BaseException:
            await self.close()
            raise
        return self

    async def _start(self, runs_log: Path | None, handler: str, autoscale: bool) -> None:
        self.etcd.start()
        self.bg = asyncio.create_task(self.waiters.run())
        spec = {
            "app": {"name": "bench", "handler": handler},
            "scaling": {
                "replica_concurrency": self.concurrency,
                "min_replicas": self.replicas,
                **self.scaling,
            },
            "placement": {"regions": list(self.regions)},
            "queue": self.queue_settings,
        }
        await AppRegistry(self.clusters.control, "/bench").put(parse_spec(spec))
        # `parked`: an app no replica serves, for a backlog that stays queued.
        parked = {**spec, "app": {"name": "parked", "handler": handler}}
        await AppRegistry(self.clusters.control, "/bench").put(parse_spec(parked))
        replicas = "" if autoscale else f"bench = {self.replicas}\n"
        pinned = f"[replicas]\n{replicas}parked = 0\n"
        for region in self.regions:
            peers = json.dumps([r for r in self.regions if r != region])
            (self.tmp / f"{region}.toml").write_text(
                f'name = "{region}"\nlat = 39.0\nlon = -77.5\napp_root = "{REPO}"\n'
                f"peers = {peers}\nautoscale = {'true' if autoscale else 'false'}\n"
                f'[etcd]\nendpoints = ["{self.etcd.endpoints[0]}"]\nroot = "/bench"\n'
                f"quota_bytes = {self.config.quota_bytes}\n"
                f'[blobs]\ndir = "{self.tmp / region}-blobs"\n' + pinned
            )
        self.env = {**os.environ, "BENCH_RUNS": str(runs_log or "")}
        for region in self.regions:
            self.start_agent(region)
        for region in self.regions:
            await self.serving(self.replicas, region=region)

    def start_agent(self, region: str = REGION) -> None:
        self.agents[region] = subprocess.Popen(
            [sys.executable, "-m", "regional.main", "--config", str(self.tmp / f"{region}.toml")],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def serving(self, replicas: int, timeout: float = 180, region: str = REGION) -> None:
        await serving(self.clusters.control, "/bench", "bench", region, replicas, timeout)

    def record(self, function: str, home: str = REGION) -> TaskRecord:
        now = time.time()
        return TaskRecord(
            id=new_task_id(home),
            app="bench",
            function=function,
            home_region=home,
            created_at=now,
            deadline=now + 3600,
        )

    async def submit(self, function: str, args: dict[str, Any], home: str = REGION) -> TaskRecord:
        r = self.record(function, home)
        await self.queue.enqueue(r, json.dumps(args).encode())
        return r

    async def call(self, function: str, args: dict[str, Any], timeout: float = 120) -> Any:
        r = self.record(function)
        async with self.waiters.subscribe(r.id) as updates:
            await self.queue.enqueue(r, json.dumps(args).encode())
            done = await until_finished(updates, r, timeout)
        return json.loads(await self.queue.result(done))

    async def result(self, r: TaskRecord, timeout: float = 120) -> Any:
        done = await self.waiters.wait(r.id, timeout)
        if done.state.value != "succeeded":
            return None
        return json.loads(await self.queue.result(done))

    async def burst(self, n: int, seconds: float = 0.0) -> None:
        """``n`` ``work`` tasks of ``seconds``, 64 in flight, each waited for with its result."""
        gate = asyncio.Semaphore(64)

        async def one(i: int) -> None:
            async with gate:
                await self.call("work", {"key": str(i), "seconds": seconds})

        await asyncio.gather(*(one(i) for i in range(n)))

    def server_pids(self) -> list[int]:
        etcd = [m.process.pid for m in self.etcd.members if m.process is not None]
        return etcd + [p for a in self.agents.values() for p in tree(a.pid)]

    async def close(self) -> None:
        if self.bg is not None:
            self.bg.cancel()
            await asyncio.gather(self.bg, return_exceptions=True)
        await self.clusters.close()
        for agent in self.agents.values():
            if agent.poll() is None:
                agent.terminate()
        for agent in self.agents.values():
            agent.wait(timeout=60)
        self.etcd.close()


class Celery:
    """redis-server and ``workers`` prefork workers of ``concurrency`` processes each (0: none
    until ``start_worker``). ``durable``: Redis appends every write to its log and fsyncs it
    before answering (``appendfsync always``), so an acknowledged task survives a crash, as
    Spillover's do in etcd; otherwise Redis writes nothing to disk."""

    def __init__(
        self,
        tmp: Path,
        concurrency: int,
        *,
        workers: int = 1,
        prefetch: int = 4,
        acks_late: bool = False,
        model: bool = False,
        durable: bool = False,
    ) -> None:
        self.tmp = tmp
        self.concurrency = concurrency
        self.n_workers = workers
        self.durable = durable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.env = {
            **os.environ,
            "BENCH_REDIS": self.url,
            "BENCH_PREFETCH": str(prefetch),
            "BENCH_ACKS_LATE": "1" if acks_late else "0",
            "BENCH_MODEL": "1" if model else "0",
        }
        self.redis: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def start(self, runs_log: Path | None = None) -> Celery:
        """Redis and the workers serving; on failure, all of them stopped again."""
        try:
            self._start(runs_log)
        except BaseException:
            self.close()
            raise
        return self

    def _start(self, runs_log: Path | None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.tmp.mkdir(parents=True, exist_ok=True)
        aof = ["yes", "--appendfsync", "always"] if self.durable else ["no"]  # append-only file
        self.redis = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                *aof,
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:  # until it accepts connections
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.env["BENCH_RUNS"] = str(runs_log or "")
        import celery  # the bench extra: imported only when the Celery side runs

        # A client app of its own per run: Celery caches connections per app.
        self.app = celery.Celery("bench-client", broker=self.url, backend=self.url)
        self.app.conf.update(task_serializer="json", result_serializer="json",
                             accept_content=["json"])  # fmt: skip
        for i in range(self.n_workers):
            # Several workers on one queue need names of their own (and a readiness check
            # that a stamp, taken by whichever worker is up, cannot give).
            self.start_worker(node=f"w{i}" if self.n_workers > 1 else None)

    def start_worker(
        self, queue: str | None = None, node: str | None = None
    ) -> subprocess.Popen[bytes]:
        """A prefork worker (on ``queue`` only, when given), named ``node`` (or after its queue),
        serving when this returns; the first is ``self.worker``."""
        node = node or queue
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "benchmarks.celery_app",
                "worker",
                "-c",
                str(self.concurrency),
                "-P",
                "prefork",
                "-l",
                "warning",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                *(["-Q", queue] if queue else []),
                *(["-n", f"{node}@%h"] if node else []),
            ],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a SIGKILL takes the children too
        )
        self.workers.append(worker)
        self.worker = self.workers[0] if self.workers[0].poll() is None else worker
        if queue is None and node is not None:
            self._answers_ping(node)
        else:
            self.app.send_task("stamp", queue=queue).get(timeout=120)  # serving
        return worker

    def _answers_ping(self, node: str, timeout: float = 120) -> None:
        """Until the worker named ``node`` answers a ping: its consumer runs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = self.app.control.ping(timeout=0.5)
            if any(name.startswith(f"{node}@") for reply in replies for name in reply):
                return
        raise TimeoutError(f"Celery worker {node} not serving after {timeout} s")

    def kill_worker(self) -> None:
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()
        self.workers.remove(self.worker)

    def burst(self, n: int, seconds: float = 0.0) -> None:
        """``n`` ``work`` tasks of ``seconds``, all sent at once, then every result fetched."""
        for r in [self.app.send_task("work", args=(str(i), seconds)) for i in range(n)]:
            r.get(timeout=300)

    def server_pids(self) -> list[int]:
        assert self.redis is not None
        return [self.redis.pid, *(p for w in self.workers for p in tree(w.pid))]

    def close(self) -> None:
        gc.collect()  # results unsubscribe from Redis when collected: while it still runs
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(timeout=30)


@dataclass
class EdgeProcess:
    url: str
    process: asyncio.subprocess.Process


async def start_edge(config: dict[str, Any], tmp: Path) -> EdgeProcess:
    """An edge process of ``config`` (an ``edge.toml`` as a dict: ``port`` must be set), serving
    once this returns; its stderr goes to ``tmp/<id>.err``."""
    import aiohttp

    name = config.get("id", "edge")
    await asyncio.to_thread(tmp.mkdir, parents=True, exist_ok=True)
    toml = tmp / f"{name}.toml"
    toml.write_text(tomli_w.dumps(config))
    err = tmp / f"{name}.err"
    with err.open("ab") as errors:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge.main", "--config", str(toml),
            cwd=str(REPO), stdout=asyncio.subprocess.DEVNULL, stderr=errors,
        )  # fmt: skip
    edge = EdgeProcess(f"http://127.0.0.1:{config['port']}", proc)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):  # until it serves
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{edge.url}/readyz") as r:
                        if r.status == 200:
                            return edge
                if proc.returncode is not None:
                    raise RuntimeError(f"the edge exited ({proc.returncode}): {err.read_text()}")
                await asyncio.sleep(0.1)
        raise TimeoutError(f"the edge is not ready: {err.read_text()}")
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        raise


@contextlib.asynccontextmanager
async def edge_process(sp: Spillover, tmp: Path) -> AsyncIterator[str]:
    """An edge process in front of ``sp``'s etcd, ready; yields its URL."""
    config = {
        "region": REGION, "port": free_port(), "auth": False,
        "regions": [{"name": REGION, "lat": 39.0, "lon": -77.5}],
        "etcd": {"endpoints": [sp.etcd.endpoints[0]], "root": "/bench",
                 "quota_bytes": sp.config.quota_bytes},
        "blobs": {"dir": str(tmp / "edge-blobs")},
    }  # fmt: skip
    edge = await start_edge(config, tmp)
    try:
        yield edge.url
    finally:
        if edge.process.returncode is None:
            edge.process.terminate()
        await edge.process.wait()
