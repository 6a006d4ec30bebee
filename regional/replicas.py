"""Replica processes and the provider interface that starts and stops them.

The local-process provider (what ``spillover up``, the Terraform GPU nodes and the tests use)
runs each replica as a subprocess of the agent, isolated from it (``users.py``, ``sandbox.py``);
other providers (a cloud autoscaling group) implement the same two
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

from federation.aio import cancel_and_wait
from federation.appspec import AppSpec
from regional.rpc import GRPC_OPTIONS
from regional.rpc import replica_pb2_grpc as pb_grpc
from regional.session import Session
from regional.users import Users, replica_env, socket_path

log = logging.getLogger(__name__)
_ids = itertools.count(1)


@dataclass(eq=False)
class Replica:
    """The agent's view of one replica: where to reach it and how many of its slots are busy."""

    id: str
    capacity: int
    process: asyncio.subprocess.Process | None = None
    address: Path | None = None  # the Unix socket it serves on (local processes)
    channel: grpc.aio.Channel | None = None
    stub: pb_grpc.ReplicaStub | None = None
    session: Session | None = None  # its tasks' stream (inline payloads), open while it serves
    busy: int = 0
    draining: bool = False  # chosen for scale-in: takes no new work, exits when idle
    # Tasks waiting here to run alone (their last attempt, ``replicaset.alone_turn``): while
    # there are any, it takes no new claims and drains to them; they run one at a time.
    reserved: int = 0
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None  # sets ``exited``; referenced so it is not collected
    serving: asyncio.Task[None] | None = None  # runs ``session``

    @property
    def ready(self) -> bool:
        return self.stub is not None and not self.exited.is_set()

    @property
    def free(self) -> int:
        return self.capacity - self.busy if self.ready and not self.draining else 0


class Provider(Protocol):
    async def start(self, spec: AppSpec, region: str) -> Replica:
        """Start a replica and return once it serves (its model is loaded), its session open."""

    async def stop(self, replica: Replica) -> None:
        """Stop a replica (the agent drains it first)."""


class LocalProcessProvider:
    """Replicas as subprocesses: ``python -m regional.replica`` importing from ``app_root``,
    each app's as its own user when the agent is root, on Unix sockets (``users.py``)."""

    def __init__(
        self, app_root: Path, start_timeout: float = 120.0, replica_user: str | None = None
    ) -> None:
        self.app_root = app_root
        self.start_timeout = start_timeout
        self.users = Users(replica_user)

    def close(self) -> None:
        """Remove the replicas' directories (at exit anyway)."""
        self.users.close()

    async def start(self, spec: AppSpec, region: str) -> Replica:
        n = next(_ids)
        concurrency = spec.scaling.replica_concurrency
        replica = Replica(f"{region}-{spec.name}-{os.getpid()}-{n}", concurrency)
        user, directory = await self.users.of(spec.name)
        replica.address = socket_path(directory, n)
        # A replica of its own user has no home: it gets its directory (caches, config).
        home = {} if user is None else {"HOME": str(directory)}
        env = {**replica_env(os.environ, region=region, replica=replica.id), **home}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "regional.replica",
            "--handler", spec.app.handler,
            "--concurrency", str(spec.scaling.replica_concurrency),
            *(("--functions", ",".join(spec.app.functions)) if spec.app.functions else ()),
            "--app-root", str(self.app_root), "--socket", str(replica.address),
            *(("--user", user.name) if user is not None else ()),
            cwd=directory, env=env, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        replica.process = proc
        replica.watcher = asyncio.get_running_loop().create_task(self._reap(replica))
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(self.start_timeout):
                line = (await proc.stdout.readline()).decode().strip()
            if line != "READY":
                raise RuntimeError(f"replica {replica.id} exited before it was ready")
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        target = f"unix:{replica.address}"
        replica.channel = grpc.aio.insecure_channel(target, options=GRPC_OPTIONS)
        replica.stub = pb_grpc.ReplicaStub(replica.channel)  # type: ignore[no-untyped-call]
        replica.session = Session(replica.stub)
        replica.serving = asyncio.get_running_loop().create_task(self._serve(replica))
        who = user.name if user is not None else "the agent's user"
        log.info("replica %s ready on %s as %s (pid %d)", replica.id, target, who, proc.pid)
        return replica

    async def _serve(self, replica: Replica) -> None:
        """Its session, until it ends. One that ends unasked is a replica taken for dead, as a
        broken call is: killed, and the replica set replaces it (not the session reopened: one
        rule for every break, whatever the process would do next; and no replica lingers with
        its model loaded and nothing to feed it)."""
        assert replica.session is not None and replica.process is not None
        await replica.session.run()
        if not replica.session.closed:
            with contextlib.suppress(ProcessLookupError):
                replica.process.kill()

    async def _reap(self, replica: Replica) -> None:
        assert replica.process is not None
        code = await replica.process.wait()
        replica.exited.set()
        if replica.address is not None:
            replica.address.unlink(missing_ok=True)
        if replica.channel is not None:
            await replica.channel.close()
        log.info("replica %s exited with %s", replica.id, code)

    async def stop(self, replica: Replica) -> None:
        if replica.session is not None:
            replica.session.close()  # an open stream would hold the replica's graceful stop
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
        if replica.serving is not None:
            await cancel_and_wait([replica.serving])
