"""The group commit's scheduling, against an etcd whose txns answer when the test says: which
writes share a txn, and that a stuck txn (a member waiting on a leader that died) holds no
write behind it. Its commits against real etcd: tests/integration/federation/test_queue.py."""

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from federation.errors import Unavailable
from federation.etcd import put
from federation.groupcommit import MAX_IN_FLIGHT, GroupCommit
from tests.waiting import until


class HeldEtcd:
    """Each txn waits for the test to answer it: ``answer(i)`` commits the i-th txn sent (every
    sub-txn succeeds), ``fail(i, e)`` fails it."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, asyncio.Future[Any]]] = []  # (sub-txns, its answer)

    async def txn(self, compare: list[Any], ops: list[Any]) -> Any:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((len(ops), answer))
        return await answer

    def answer(self, i: int) -> None:
        subs, answer = self.sent[i]
        ok = SimpleNamespace(response_txn=SimpleNamespace(succeeded=True, responses=[]))
        answer.set_result(SimpleNamespace(responses=[ok] * subs))

    def fail(self, i: int, error: Exception) -> None:
        self.sent[i][1].set_exception(error)


def held(stuck_after: float) -> tuple[HeldEtcd, GroupCommit]:
    etcd = HeldEtcd()
    return etcd, GroupCommit(etcd, stuck_after=stuck_after)  # type: ignore[arg-type]


async def turns() -> None:
    """Let every ready task run until they all wait (no clock involved)."""
    for _ in range(20):
        await asyncio.sleep(0)


def write(group: GroupCommit, n: int) -> asyncio.Task[tuple[bool, list[Any]]]:
    key = f"k{n}".encode()
    return asyncio.ensure_future(group.txn([], [put(key, b"")], [], frozenset({key}), 10))


async def test_an_idle_write_goes_at_once_and_those_behind_it_go_together_next() -> None:
    etcd, group = held(stuck_after=3600)
    first = write(group, 0)
    await turns()
    behind = [write(group, n) for n in range(1, 4)]
    await turns()
    assert [subs for subs, _ in etcd.sent] == [1]  # the rest wait for the txn that is out
    etcd.answer(0)
    await turns()
    assert first.result() == (True, []) and [subs for subs, _ in etcd.sent] == [1, 3]
    etcd.answer(1)
    await turns()
    assert all(w.result() == (True, []) for w in behind)


async def test_a_stuck_txn_holds_no_write_behind_it_and_its_failure_is_its_own() -> None:
    etcd, group = held(stuck_after=0)
    stuck = write(group, 0)
    await turns()
    later = write(group, 1)
    await turns()
    assert len(etcd.sent) == 2  # beside the stuck one, not behind it
    etcd.answer(1)
    await turns()
    assert later.result() == (True, []) and not stuck.done()
    etcd.fail(0, Unavailable("request timed out"))
    await turns()
    with pytest.raises(Unavailable):
        stuck.result()


async def test_a_txn_counts_as_stuck_only_once_it_has_been_out_stuck_after() -> None:
    etcd, group = held(stuck_after=0.05)
    writes = [write(group, 0)]
    await turns()
    writes.append(write(group, 1))
    await turns()
    assert len(etcd.sent) == 1  # not yet: it has been out for microseconds
    await until(lambda: len(etcd.sent) == 2, timeout=30)  # the timer, however late it fires
    for i in (0, 1):
        etcd.answer(i)
    await turns()
    assert all(w.result() == (True, []) for w in writes)


async def test_no_more_than_max_in_flight_txns_are_out_at_once() -> None:
    etcd, group = held(stuck_after=0)
    writes = []
    for n in range(MAX_IN_FLIGHT + 2):
        writes.append(write(group, n))
        await turns()
    assert len(etcd.sent) == MAX_IN_FLIGHT  # the last two wait, together
    etcd.answer(2)
    await turns()
    assert len(etcd.sent) == MAX_IN_FLIGHT + 1 and etcd.sent[-1][0] == 2
    for i in (0, 1, 3, 4):
        etcd.answer(i)
    await turns()
    assert all(w.result() == (True, []) for w in writes)


async def test_a_batch_whose_txn_ends_in_an_unforeseen_way_leaves_no_caller_waiting() -> None:
    etcd, group = held(stuck_after=3600)
    first = write(group, 0)
    await turns()
    second = write(group, 1)  # sent by the flusher, in a task of its own
    await turns()
    etcd.answer(0)
    await turns()
    etcd.sent[1][1].set_result(SimpleNamespace(responses=[]))  # no answer for its sub-txn
    await turns()
    assert first.result() == (True, [])
    with pytest.raises(ValueError):
        second.result()
