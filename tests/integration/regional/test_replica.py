"""A replica process over real gRPC: its session (runs multiplexed on one stream), the slot
count the agent relies on, and results' flow control."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import signal
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from federation.blobs import CHUNK
from regional.job import IN_FLIGHT
from regional.replicas import LocalProcessProvider, Replica
from regional.rpc import replica_pb2 as pb
from regional.session import Run, Session
from tests.apps.worker import pattern
from tests.integration.conftest import REGION, REPO, worker_spec
from tests.waiting import until

pytestmark = pytest.mark.slow


def run(function: str, body: bytes) -> pb.RunRequest:
    return pb.RunRequest(task_id=function, function=function, payload=body, size=len(body))


def sleep(seconds: float) -> pb.RunRequest:
    return run("sleep", json.dumps({"seconds": seconds}).encode())


async def events(running: Run) -> list[pb.RunEvent]:
    return [e async for e in running]


@contextlib.asynccontextmanager
async def serving(concurrency: int) -> AsyncIterator[tuple[Replica, Session]]:
    """A replica process of the worker app, its session open; stopped afterwards."""
    provider = LocalProcessProvider(REPO)
    replica = await provider.start(worker_spec(replica_concurrency=concurrency), REGION)
    assert replica.session is not None
    try:
        yield replica, replica.session
    finally:
        await provider.stop(replica)


async def busy(replica: Replica) -> int:
    assert replica.stub is not None
    return (await replica.stub.Status(pb.StatusRequest())).busy


async def test_a_slot_frees_when_the_outcome_is_sent_and_runs_share_the_session() -> None:
    async with serving(2) as (replica, session):
        assert (await events(session.start(run("echo", b"one"))))[-1].result.body == b"one"
        # The agent frees its count of the slot on the outcome and sends the next task at
        # once, which the replica must take.
        assert (await events(session.start(run("echo", b"two"))))[-1].result.body == b"two"
        # Two at once, each with its own events, the short one answered first.
        slow, quick = session.start(sleep(1)), session.start(run("echo", b"three"))
        assert [e.WhichOneof("kind") for e in await events(quick)] == ["result"]
        slept = await events(slow)
        assert slept[0].log.line == "sleeping 1.0" and json.loads(slept[-1].result.body)["slept"]
        assert await busy(replica) == 0 and not session.runs
    assert replica.process is not None and replica.process.returncode == 0  # a graceful stop


async def test_a_cancelled_run_stops_on_the_replica_and_frees_its_slot_at_once() -> None:
    async with serving(1) as (replica, session):
        sleeping = session.start(sleep(60))
        assert (await anext(sleeping)).log.line == "sleeping 60.0"  # it runs
        assert await busy(replica) == 1
        sleeping.cancel()
        # The cancel is read before the next start: the one slot is free for it, already.
        assert (await events(session.start(run("echo", b"next"))))[-1].result.body == b"next"
        assert await busy(replica) == 0


async def test_a_start_past_the_replicas_slots_breaks_its_session_and_the_replica_dies() -> None:
    """The agent never sends more than the free slots: a replica sent more takes its session
    for broken, and a broken session is a replica taken for dead (killed, to be replaced)."""
    async with serving(1) as (replica, session):
        assert replica.process is not None
        sleeping, extra = session.start(sleep(30)), session.start(run("echo", b"x"))
        assert await events(extra) == []  # no outcome (after SLOT_WAIT): the session broke
        assert all(e.WhichOneof("kind") == "log" for e in await events(sleeping))
        await asyncio.wait_for(replica.exited.wait(), 30)
        assert replica.process.returncode == -signal.SIGKILL
        assert await events(session.start(run("echo", b"y"))) == []  # gone: breaks at once


async def test_a_start_into_the_slot_of_a_blob_call_just_cut_waits_for_it() -> None:
    """A blob payload's call ends on its own stream: the agent that cut it frees the slot and
    may start the next task on the session before the replica has seen the call end. The start
    waits for the slot instead of breaking the session (and every task on it)."""
    async with serving(1) as (replica, session):
        assert replica.stub is not None
        body = json.dumps({"seconds": 60}).encode()
        call = replica.stub.RunStream()
        await call.write(pb.RunInput(request=pb.RunRequest(task_id="t", function="sleep",
                                                           size=len(body))))  # fmt: skip
        await call.write(pb.RunInput(chunk=body))
        await call.done_writing()
        assert (await call.read()).log.line == "sleeping 60.0"  # it holds the one slot
        # The start reaches the replica first (the pause orders it; the test does not time
        # anything), then the call's end.
        following = session.start(run("echo", b"next"))
        await asyncio.sleep(0.5)
        call.cancel()
        assert (await events(following))[-1].result.body == b"next"
        assert replica.process is not None and replica.process.returncode is None


async def test_a_result_larger_than_a_grpc_message_comes_back_in_chunks() -> None:
    """A non-streamed 70 MiB result, over gRPC's 64 MiB message limit: in chunks, never one
    message (which failed the call, and the agent took the replica for dead)."""
    async with serving(1) as (_, session):
        size = 70 << 20
        got = await events(session.start(run("big", json.dumps({"size": size}).encode())))
        body = b"".join(e.chunk for e in got[:-1]) + got[-1].result.body
        assert len(body) == size and body == pattern(size)
        assert max(e.ByteSize() for e in got) <= CHUNK + 64
        assert got[-1].result.content_type == "application/octet-stream"


async def test_a_result_not_taken_holds_back_its_own_run_only() -> None:
    """Per run, as a call per task had its own flow control: no more than IN_FLIGHT chunks of
    a result wait for the agent, and the other runs on the session answer meanwhile."""
    async with serving(2) as (_, session):
        size = 40 << 20
        big = session.start(run("big", json.dumps({"size": size}).encode()))
        await until(lambda: big.events.qsize() == IN_FLIGHT)
        assert (await events(session.start(run("echo", b"beside"))))[-1].result.body == b"beside"
        await asyncio.sleep(0.3)  # time to send more, if it would
        assert big.events.qsize() == IN_FLIGHT
        got = await events(big)
        assert len(b"".join(e.chunk for e in got[:-1]) + got[-1].result.body) == size


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
        assert replica.session is not None
        assert (await events(replica.session.start(run("echo", b"hi"))))[-1].result.body == b"hi"
        owner = pwd.getpwnam("nobody").pw_uid if isolated else os.geteuid()
        assert _uid(replica.process.pid) == owner
        for path, mode in ((replica.address, 0o600), (replica.address.parent, 0o700)):
            st = path.stat()
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (owner, mode)
    finally:
        await provider.stop(replica)
        provider.close()
    assert not replica.address.exists()
