"""The agent as its own process: `spillover region --config region.toml`, killed for real."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from federation.task import State
from tests.integration.conftest import REPO, Harness, region_toml, worker_spec
from tests.waiting import until

pytestmark = pytest.mark.slow


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


async def test_sigkilled_agent_releases_its_task_and_its_replicas_die_with_it(
    harness: Harness, tmp_path: Path
) -> None:
    await harness.apps.put(worker_spec())
    config = region_toml(harness, tmp_path / "region.toml")
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "regional.main", "--config", str(config)
    )
    try:
        record = await harness.submit("worker", "sleep", {"seconds": 3})

        async def running() -> bool:
            return (await harness.queue.get(record.id)).state is State.RUNNING

        await until(running, timeout=30)
        replicas = children(agent.pid)
        assert replicas
        agent.send_signal(signal.SIGKILL)
        await agent.wait()
        # Its replicas get SIGKILL when it dies (PR_SET_PDEATHSIG): no orphan holds the model.
        await until(lambda: not any(alive(p) for p in replicas), timeout=20)
        # Another agent's reaper finds the claim gone with the lease and the task runs again.
        survivor = await harness.start_agent()
        done = await harness.result(record, timeout=30)
        assert done.state is State.SUCCEEDED and done.attempts == 2
        assert done.claimer == survivor.claimer.id
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()


def test_grpc_fork_support_is_off_before_grpc_loads_in_the_agent() -> None:
    # The agent forks only to exec its replicas. With grpcio's fork handlers on (its core's
    # default), a replica forked while other threads were in gRPC died of SIGSEGV before exec:
    # 5 of 83 replica starts under repeated kills (0 of 67 with them off); the pool retried a
    # second later, so recovery from every replica death was slower than it had to be. Only the
    # agent sets it: importing the handler API (``spillover``) changes nobody's environment.
    code = """
import os, sys
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "grpc":
            print("grpc", os.environ.get("GRPC_ENABLE_FORK_SUPPORT"))
sys.meta_path.insert(0, Spy())
import spillover
print("spillover", os.environ.get("GRPC_ENABLE_FORK_SUPPORT"))
import regional.main
"""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=REPO, check=True).stdout.splitlines()  # fmt: skip
    assert out[:2] == ["spillover None", "grpc false"]
