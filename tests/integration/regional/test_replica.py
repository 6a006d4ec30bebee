"""A replica process over real gRPC: the slot count the agent relies on."""

from __future__ import annotations

import json
import os
import pwd
import stat
from pathlib import Path

import grpc
import pytest

from federation.blobs import CHUNK
from regional.replicas import LocalProcessProvider
from regional.rpc import replica_pb2 as pb
from tests.apps.worker import pattern
from tests.integration.conftest import REGION, REPO, worker_spec
from tests.waiting import until

pytestmark = pytest.mark.slow


def run(function: str, body: bytes) -> pb.RunRequest:
    return pb.RunRequest(task_id=function, function=function, payload=body, size=len(body))


async def test_a_slot_frees_when_the_outcome_is_sent_and_the_limit_holds_while_it_runs() -> None:
    provider = LocalProcessProvider(REPO)
    replica = await provider.start(worker_spec(replica_concurrency=1), REGION)
    assert replica.stub is not None
    try:
        first = replica.stub.Run(run("echo", b"one"))
        assert (await first.read()).result.body == b"one"
        # The first stream has not been read to its end; the agent frees the slot on the outcome
        # and sends the next task at once, which the replica must take.
        second = replica.stub.Run(run("echo", b"two"))
        assert (await second.read()).result.body == b"two"
        # While a task runs, its one slot is taken: the hard limit refuses a second.
        sleeping = replica.stub.Run(run("sleep", json.dumps({"seconds": 2}).encode()))

        async def busy() -> bool:
            return (await replica.stub.Status(pb.StatusRequest())).busy == 1  # type: ignore[union-attr]

        await until(busy)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await replica.stub.Run(run("echo", b"three")).read()
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        events = [event async for event in sleeping]
        assert json.loads(events[-1].result.body)["slept"] == 2
    finally:
        await provider.stop(replica)


async def test_a_result_larger_than_a_grpc_message_comes_back_in_chunks() -> None:
    """A non-streamed 70 MiB result, over gRPC's 64 MiB message limit: in chunks, never one
    message (which failed the call, and the agent took the replica for dead)."""
    provider = LocalProcessProvider(REPO)
    replica = await provider.start(worker_spec(replica_concurrency=1), REGION)
    assert replica.stub is not None
    size = 70 << 20
    try:
        events = [
            e async for e in replica.stub.Run(run("big", json.dumps({"size": size}).encode()))
        ]
        body = b"".join(e.chunk for e in events[:-1]) + events[-1].result.body
        assert len(body) == size and body == pattern(size)
        assert max(e.ByteSize() for e in events) <= CHUNK + 64
        assert events[-1].result.content_type == "application/octet-stream"
    finally:
        await provider.stop(replica)


def _uid(pid: int) -> int:
    """The process's real uid (its /proc entry's owner may be root's: not dumpable)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("Uid:")).split()[1])


@pytest.mark.parametrize("isolated", [True, False])
async def test_a_replica_serves_on_a_unix_socket_only_its_user_and_the_agent_reach(
    isolated: bool,
) -> None:
    """As root with ``replica_user``, and as an agent that is not root (its own user: here,
    root, taking the non-root path)."""
    if isolated and os.geteuid() != 0:
        pytest.skip("changing user needs a root agent")
    provider = LocalProcessProvider(REPO, replica_user="nobody" if isolated else None)
    provider.users.root = isolated
    replica = await provider.start(worker_spec(replica_concurrency=1), REGION)
    assert replica.stub is not None and replica.address is not None and replica.process
    try:
        assert (await replica.stub.Run(run("echo", b"hi")).read()).result.body == b"hi"
        owner = pwd.getpwnam("nobody").pw_uid if isolated else os.geteuid()
        assert _uid(replica.process.pid) == owner
        for path, mode in ((replica.address, 0o600), (replica.address.parent, 0o700)):
            st = path.stat()
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (owner, mode)
    finally:
        await provider.stop(replica)
        provider.close()
    assert not replica.address.exists()
