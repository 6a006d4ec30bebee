"""The replica set's decisions (pure) and its slot accounting, without processes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from federation.appspec import parse_spec
from regional.replicas import Replica
from regional.replicaset import ReplicaSet, alone_turn, place, plan


def replica(
    i: int, busy: int = 0, draining: bool = False, capacity: int = 4, reserved: int = 0
) -> Replica:
    stub: Any = object()  # ready: it has a stub and has not exited
    return Replica(f"r{i}", capacity, stub=stub, busy=busy, draining=draining, reserved=reserved)


def test_it_starts_what_is_missing_counting_those_on_their_way() -> None:
    assert plan([replica(1)], starting=1, desired=4, stopping=set()).start == 2
    assert plan([], starting=0, desired=0, stopping=set()) == plan([], 0, 0, ())


def test_scale_in_drains_the_least_busy_and_stops_only_idle_drained_ones() -> None:
    rs = [replica(1, busy=3), replica(2, busy=0), replica(3, busy=1)]
    todo = plan(rs, starting=0, desired=1, stopping=set())
    assert [r.id for r in todo.drain] == ["r2", "r3"] and todo.start == 0
    assert [r.id for r in todo.stop] == ["r2"]  # r3 still runs a task: it finishes first


def test_a_stop_is_sent_once() -> None:
    rs = [replica(1, draining=True), replica(2)]
    assert [r.id for r in plan(rs, 0, 1, stopping=set()).stop] == ["r1"]
    assert plan(rs, 0, 1, stopping={"r1"}).stop == ()


@given(
    busy=st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=8),
    starting=st.integers(0, 4),
    desired=st.integers(0, 10),
)
def test_never_a_busy_replica_stopped_and_the_set_heads_for_desired(
    busy: list[tuple[int, bool]], starting: int, desired: int
) -> None:
    rs = [replica(i, b, d) for i, (b, d) in enumerate(busy)]
    todo = plan(rs, starting, desired, stopping=set())
    assert all(r.busy == 0 for r in todo.stop)
    assert not (todo.start and todo.drain)  # never both at once
    live = sum(not r.draining for r in rs) - len(todo.drain)
    # Replicas being started are not drained: only they can keep the set above desired.
    assert live + starting + todo.start == max(desired, starting)


def spec(**scaling: Any) -> Any:
    return parse_spec({"app": {"name": "demo", "handler": "m:M"}, "scaling": scaling})


def test_slots_go_to_the_replica_with_the_most_free_and_come_back_on_free() -> None:
    pool = ReplicaSet(spec(), "us-east-1", provider=None, desired=2)  # type: ignore[arg-type]
    a, b = replica(1, busy=3), replica(2, busy=1)
    pool.replicas = [a, b]
    assert pool.free_slots == 4 and pool.busy_slots == 4
    assert pool.acquire() is b and b.busy == 2
    pool.capacity.clear()
    pool.free(b)
    assert b.busy == 1 and pool.capacity.is_set()  # the dispatcher wakes
    pool.retire(a)
    assert a.draining and pool.ready_replicas == [b] and pool.free_slots == 3
    counts = pool.counts()
    assert (counts.processes, counts.live, counts.ready, counts.slots) == (2, 1, 1, 4)
    b.busy = 4
    assert pool.acquire() is None  # none free any more


def test_new_tasks_go_beside_no_task_that_waits_to_run_alone() -> None:
    waited_on = replica(1, busy=1, reserved=1)  # 3 free, but it drains to a task's last attempt
    other = replica(2, busy=2)
    assert place([waited_on, other]) is other
    # Only it has room: a task claimed in the same batch still goes there (it ends, the drain too).
    assert place([waited_on, replica(3, busy=4)]) is waited_on
    assert place([replica(4), other]).id == "r4"  # type: ignore[union-attr]
    assert place([replica(5, busy=4)]) is None and place([]) is None


def test_a_task_runs_alone_once_its_replica_runs_nothing_and_moves_if_it_went() -> None:
    here, quiet, busy = replica(1, busy=2, reserved=1), replica(2, busy=1), replica(3, busy=3)
    assert alone_turn(here, [here, quiet, busy]) == "wait"
    here.busy = 0
    assert alone_turn(here, [here, quiet, busy]) == "run"
    here.draining = True  # drained (or died) while the task waited: it waits where it ends soonest
    assert alone_turn(here, [here, quiet, busy]) is quiet
    assert alone_turn(here, [here]) == "wait"  # until a replacement is up


def test_tasks_that_run_alone_take_turns_and_give_their_wait_back() -> None:
    pool = ReplicaSet(spec(), "us-east-1", provider=None, desired=1)  # type: ignore[arg-type]
    r = replica(1, busy=1)
    pool.replicas = [r]
    first, second = pool.acquire(alone=True), pool.acquire(alone=True)
    assert first is second is r and r.reserved == 2 and r.busy == 1
    assert pool.free_slots == 0  # it takes no new claims: it drains to them
    assert pool.turn(r) == (r, False)  # the task placed before still runs
    pool.free(r)
    assert pool.turn(r) == (r, True) and r.busy == 1  # the first runs alone...
    assert pool.turn(r) == (r, False)  # ...and the second waits its turn
    pool.free(r, alone=True)
    assert pool.turn(r) == (r, True)
    pool.free(r, alone=True)
    assert (r.busy, r.reserved, pool.free_slots) == (0, 0, 4)
    waiting = pool.acquire(alone=True)
    assert waiting is r
    pool.free(r, slot=False, alone=True)  # cancelled while it waited: it held no slot
    assert (r.busy, r.reserved, pool.free_slots) == (0, 0, 4)
    s = replica(2, busy=1)
    pool.replicas = [r, s]
    assert pool.acquire(alone=True) is r  # the one that drains soonest
    pool.retire(r)  # its call broke before the task's turn: the wait moves, uncharged
    assert pool.turn(r) == (s, False) and (r.reserved, s.reserved) == (0, 1)


def test_a_replica_waited_on_is_drained_last() -> None:
    rs = [replica(1, reserved=1), replica(2, busy=2)]
    assert [r.id for r in plan(rs, starting=0, desired=1, stopping=set()).drain] == ["r2"]
