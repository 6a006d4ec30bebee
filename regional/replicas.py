"""Replica processes and the provider interface that starts and stops them.

The local-process provider (what ``spillover up`` and the tests use) runs each replica as a
subprocess of the agent; other providers (a cloud autoscaling group) implement the same two
methods."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import grpc

from federation.appspec import AppSpec
from regional.rpc import GRPC_OPTIONS
from regional.rpc import replica_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
_ids = itertools.count(1)


@dataclass(eq=False)
class Replica:
    """The agent's view of one replica: where to reach it and how many of its slots are busy."""

    id: str
    capacity: int
    process: asyncio.subprocess.Process | None = None
    channel: grpc.aio.Channel | None = None
    stub: pb_grpc.ReplicaStub | None = None
    busy: int = 0
    draining: bool = False  # chosen for scale-in: takes no new work, exits when idle
    # Tasks waiting here to run alone (their last attempt, ``replicaset.alone_turn``): while
    # there are any, it takes no new claims and drains to them; they run one at a time.
    reserved: int = 0
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None  # sets ``exited``; referenced so it is not collected

    @property
    def ready(self) -> bool:
        return self.stub is not None and not self.exited.is_set()

    @property
    def free(self) -> int:
        return self.capacity - self.busy if self.ready and not self.draining else 0


class Provider(Protocol):
    async def start(self, spec: AppSpec, region: str) -> Replica:
        """Start a replica and return once it serves (its model is loaded)."""

    async def stop(self, replica: Replica) -> None:
        """Stop a replica (the agent drains it first)."""


class LocalProcessProvider:
    """Replicas as subprocesses: ``python -m regional.replica`` in ``app_root``."""

    def __init__(self, app_root: Path, start_timeout: float = 120.0) -> None:
        self.app_root = app_root
        self.start_timeout = start_timeout

    async def start(self, spec: AppSpec, region: str) -> Replica:
        replica = Replica(
            f"{region}-{spec.name}-{os.getpid()}-{next(_ids)}", spec.scaling.replica_concurrency
        )
        env = {**os.environ, "SPILLOVER_REGION": region, "SPILLOVER_REPLICA": replica.id}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "regional.replica",
            "--handler", spec.app.handler,
            "--concurrency", str(spec.scaling.replica_concurrency),
            cwd=self.app_root, env=env, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        replica.process = proc
        replica.watcher = asyncio.get_running_loop().create_task(self._reap(replica))
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(self.start_timeout):
                line = (await proc.stdout.readline()).decode().split()
            if len(line) != 2 or line[0] != "READY":
                raise RuntimeError(f"replica {replica.id} exited before it was ready")
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        replica.channel = grpc.aio.insecure_channel(f"127.0.0.1:{line[1]}", options=GRPC_OPTIONS)
        replica.stub = pb_grpc.ReplicaStub(replica.channel)  # type: ignore[no-untyped-call]
        log.info("replica %s ready on port %s (pid %d)", replica.id, line[1], proc.pid)
        return replica

    async def _reap(self, replica: Replica) -> None:
        assert replica.process is not None
        code = await replica.process.wait()
        replica.exited.set()
        if replica.channel is not None:
            await replica.channel.close()
        log.info("replica %s exited with %s", replica.id, code)

    async def stop(self, replica: Replica) -> None:
        if replica.process is not None and replica.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                replica.process.terminate()
        try:
            async with asyncio.timeout(15):
                await replica.exited.wait()
        except TimeoutError:
            if replica.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    replica.process.kill()
            await replica.exited.wait()
