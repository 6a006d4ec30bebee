"""Random interleavings of enqueue / claim / complete / fail / release / cancel / expire /
lease loss against a real etcd, checked after every step against a model: every task is in
exactly one place, none is lost, none completes twice, and a fenced write succeeds exactly when
the claim is still the claimer's."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from federation import keys
from federation.errors import Conflict, NotClaimer
from federation.placement import ClaimRules, ReadyEntry, claim_order
from federation.queue import Claim, Claimer, Queue, decode
from federation.reaper import expire_due, requeue_lost
from federation.task import State, TaskError
from federation.topology import Clusters, EtcdConfig
from spillover.local.etcd import LocalEtcd
from tests.factories import task

P = "us-east-1"
T0 = 1_700_000_000.0
GRACE = 50.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class QueueMachine(RuleBasedStateMachine):
    endpoints: tuple[str, ...] = ()

    @initialize()
    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = Clock()
        self.root = f"/h{uuid.uuid4().hex[:10]}"
        self.clusters = Clusters(EtcdConfig(endpoints=self.endpoints, root=self.root))
        self.queue = Queue(self.clusters, clock=self.clock)
        self.claimers = [Claimer(f"c{i}", P, ttl=60) for i in range(3)]
        self.state: dict[str, State] = {}  # the model
        self.owner: dict[str, str] = {}  # running task -> claimer id
        self.attempts: dict[str, int] = {}
        self.held: list[Claim] = []  # claims we took, valid or not
        self.valid: set[bytes] = set()  # tokens of claims that must still commit
        self.commits: dict[str, int] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            for c in self.claimers:
                self.run(c.close())
            self.run(self.clusters.close())
            self.loop.close()

    # -- rules ----------------------------------------------------------------------------

    @rule(priority=st.integers(0, 9))
    def enqueue(self, priority: int) -> None:
        r = task(P, now=self.clock.now, grace=GRACE, priority=priority, max_attempts=2)
        self.run(self.queue.enqueue(r, b"p"))
        self.state[r.id], self.attempts[r.id] = State.QUEUED, 0

    @rule(who=st.integers(0, 2), n=st.integers(1, 3))
    def claim(self, who: int, n: int) -> None:
        etcd = self.clusters.for_partition(P)
        prefix = keys.ready_all(self.root, P)
        kvs, _ = self.run(etcd.range_all(prefix, keys.prefix_end(prefix)))
        entries = [ReadyEntry(kv.key, kv.mod_revision, decode(kv.value)) for kv in kvs]
        order = claim_order(entries, ClaimRules(P), self.clock.now)[:n]
        claimer = self.claimers[who]
        won = self.run(self.queue.claim(claimer, order))
        assert [c.record.id for c in won] == [e.record.id for e in order]  # nobody else raced
        for c in won:
            assert self.state[c.record.id] is State.QUEUED
            self.state[c.record.id] = State.RUNNING
            self.owner[c.record.id] = claimer.id
            self.attempts[c.record.id] += 1
            self.held.append(c)
            self.valid.add(c.token)

    def _fenced(self, index: int, op: str) -> None:
        c = self.held[index % len(self.held)]
        tid = c.record.id
        try:
            if op == "complete":
                self.run(self.queue.complete(c, b"r", "text/plain"))
            elif op == "fail":
                err = TaskError(code="handler_error", message="boom")
                self.run(self.queue.fail(c, err))
            else:
                self.run(self.queue.release(c, "replica died"))
        except NotClaimer:
            assert c.token not in self.valid, f"{op} of a valid claim on {tid} was refused"
            return
        assert c.token in self.valid, f"{op} of a stale claim on {tid} was accepted"
        self.valid.discard(c.token)
        self.owner.pop(tid)
        if op == "complete":
            self.state[tid] = State.SUCCEEDED
            self.commits[tid] = self.commits.get(tid, 0) + 1
        elif op == "fail":
            self.state[tid] = State.FAILED
        else:
            self.state[tid] = State.QUEUED if self.attempts[tid] < 2 else State.FAILED

    @precondition(lambda self: self.held)
    @rule(index=st.integers(0, 100), op=st.sampled_from(["complete", "fail", "release"]))
    def fenced_write(self, index: int, op: str) -> None:
        self._fenced(index, op)

    @precondition(lambda self: self.state)
    @rule(index=st.integers(0, 100))
    def cancel(self, index: int) -> None:
        tid = sorted(self.state)[index % len(self.state)]
        try:
            self.run(self.queue.cancel(tid))
        except Conflict:
            assert self.state[tid].terminal
            return
        assert not self.state[tid].terminal
        self._invalidate(lambda c: c.record.id == tid)
        self.owner.pop(tid, None)
        self.state[tid] = State.CANCELLED

    @rule(dt=st.sampled_from([0.1, 1.0, 30.0]))
    def advance_and_expire(self, dt: float) -> None:
        self.clock.now += dt
        self.run(expire_due(self.queue, P, {"demo": GRACE}))
        for tid, s in self.state.items():
            created = decode_created(tid, self)
            if s is State.QUEUED and created + GRACE <= self.clock.now:
                self.state[tid] = State.EXPIRED

    @rule(who=st.integers(0, 2))
    def lose_lease(self, who: int) -> None:
        claimer = self.claimers[who]
        self.run(claimer.close())  # revokes: its claims vanish, as when its lease expires
        claimer.sessions.clear()
        self._invalidate(lambda c: self.owner.get(c.record.id) == claimer.id)
        self.run(requeue_lost(self.queue, P))
        for tid, owner in list(self.owner.items()):
            if owner == claimer.id:
                del self.owner[tid]
                self.state[tid] = State.QUEUED if self.attempts[tid] < 2 else State.FAILED

    def _invalidate(self, pred: Any) -> None:
        for c in self.held:
            if pred(c):
                self.valid.discard(c.token)

    # -- the invariants -------------------------------------------------------------------

    @invariant()
    def every_task_is_where_its_state_says(self) -> None:
        if not hasattr(self, "queue"):
            return
        etcd = self.clusters.for_partition(P)

        def ids(prefix: bytes) -> list[str]:
            kvs, _ = self.run(etcd.range_all(prefix, keys.prefix_end(prefix), keys_only=True))
            return [keys.task_id_of(kv.key) for kv in kvs]

        ready = ids(keys.ready_all(self.root, P))
        running = ids(keys.running_all(self.root, P))
        done = ids(keys.done_all(self.root, P))
        # No duplicates anywhere, and each task in exactly the place its state implies.
        assert len(ready) == len(set(ready)) and len(done) == len(set(done))
        assert set(ready) == {t for t, s in self.state.items() if s is State.QUEUED}
        assert set(running) == {t for t, s in self.state.items() if s is State.RUNNING}
        assert set(done) == {t for t, s in self.state.items() if s.terminal}
        records, _ = self.run(
            etcd.range_all(keys.tasks(self.root, P), keys.prefix_end(keys.tasks(self.root, P)))
        )
        assert {decode(kv.value).id: decode(kv.value).state for kv in records} == self.state
        # A body is kept exactly while its task may still run.
        bodies = set(ids(keys.payloads(self.root, P)))
        assert bodies == {t for t, s in self.state.items() if not s.terminal}
        assert all(n == 1 for n in self.commits.values())


def decode_created(tid: str, machine: QueueMachine) -> float:
    return machine.run(machine.queue.get(tid)).created_at  # type: ignore[no-any-return]


def test_random_interleavings_lose_nothing_and_commit_once(etcd1: LocalEtcd) -> None:
    QueueMachine.endpoints = tuple(etcd1.endpoints)
    run_state_machine_as_test(
        QueueMachine,
        settings=settings(max_examples=25, stateful_step_count=25, deadline=None),
    )
