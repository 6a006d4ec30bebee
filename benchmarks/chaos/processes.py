"""Faults of processes: replicas and agents SIGKILLed at random (1), a zombie agent (2), a poison
task (9)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.chaos.harness import Federation, Shape
from benchmarks.chaos.ledger import read_runs
from benchmarks.chaos.load import Submit, steady
from benchmarks.chaos.report import Outcome
from benchmarks.chaos.rig import rig, within
from federation.aio import cancel_and_wait
from federation.task import State
from tests.waiting import until


@dataclass(frozen=True)
class KillForm:
    tasks: int
    window: int  # tasks in flight at once (closed loop: a new one when one ends)
    longest: float  # s; durations are log-uniform from 10 ms to this
    every: tuple[float, float]  # s between two kills, uniform
    agent_share: float  # of the kills, the share that hits an agent (else a replica)
    shape: Shape


KILL = {
    True: KillForm(
        1_000, 48, 0.5, (1.0, 2.5), 0.3, Shape(agents=2, replicas=1, slots=24, lease_ttl=2)
    ),
    False: KillForm(
        10_000, 96, 2.0, (2.0, 6.0), 0.3, Shape(agents=2, replicas=2, slots=16, lease_ttl=5)
    ),
}


def duration(rng: random.Random, longest: float) -> float:
    """Log-uniform from 10 ms to ``longest``: many short tasks, a tail of long ones (mean
    (longest - 0.01) / ln(longest / 0.01): 0.38 s up to 2 s)."""
    return round(math.exp(rng.uniform(math.log(0.01), math.log(longest))), 3)


async def kill(tmp: Path, short: bool) -> Outcome:
    """Two agents with their replicas run tasks of 10 ms to 2 s (log-uniform), a fixed number
    in flight (a new one when one ends); every few seconds a random replica is SIGKILLed, or an
    agent (its replicas die with it; it is started again a second later)."""
    form, rng, out = KILL[short], random.Random(1), Outcome()
    async with rig(tmp, form.shape) as r:
        kills: list[str] = []
        started = time.time()
        monkey = asyncio.create_task(_monkey(r.fed, rng, form, kills))
        counter = itertools.count()

        async def worker() -> None:
            while next(counter) < form.tasks:
                s = await r.load.submit("sleep", {"seconds": duration(rng, form.longest)})
                if s.task_id is not None:
                    await r.ledger.wait({s.task_id}, 120)

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(form.window):
                    tg.create_task(worker())
        finally:
            await cancel_and_wait([monkey])
        ended = time.time()
        await r.settle(out, patience=60)
        out.recover = r.ledger.stall(started, ended)
        agents = sum(k == "agent" for k in kills)
        out.notes.append(
            f"{len(kills)} kills in {ended - started:.0f} s: {agents} agents (restarted 1 s "
            f"later), {len(kills) - agents} replicas; lease TTL {form.shape.lease_ttl} s; "
            f"{form.shape.agents} agents × {form.shape.replicas} replicas × "
            f"{form.shape.slots} slots; {form.window} tasks in flight, durations log-uniform "
            f"10 ms–{form.longest:g} s"
        )
    return out


async def _monkey(fed: Federation, rng: random.Random, form: KillForm, kills: list[str]) -> None:
    restarts: list[asyncio.Task[None]] = []

    async def restart(name: str) -> None:
        await asyncio.sleep(1.0)
        fed.start_agent(name)

    try:
        while True:
            await asyncio.sleep(rng.uniform(*form.every))
            live = [a for a in fed.agents.values() if a.alive]
            if rng.random() < form.agent_share and len(live) == len(fed.agents):
                victim = rng.choice(live)
                await fed.kill_agent(victim.name)
                kills.append("agent")
                restarts.append(asyncio.create_task(restart(victim.name)))
                continue
            replicas = [p for a in live for p in a.replicas()]
            if replicas:
                fed.signal(rng.choice(replicas), signal.SIGKILL)
                kills.append("replica")
    finally:
        with contextlib.suppress(Exception):
            await asyncio.gather(*restarts)


# -- 2. a zombie agent --------------------------------------------------------------------------


@dataclass(frozen=True)
class ZombieForm:
    seconds: float  # each task's run: longer than the lease, so it ends while the agent sleeps
    shape: Shape


ZOMBIE = {
    True: ZombieForm(4.0, Shape(agents=2, replicas=1, slots=4, lease_ttl=2)),
    False: ZombieForm(8.0, Shape(agents=2, replicas=1, slots=4, lease_ttl=5)),
}


async def zombie(tmp: Path, short: bool) -> Outcome:
    """SIGSTOP an agent while its replicas run its tasks, past its lease TTL; the other agent
    takes them over; SIGCONT: the zombie's replicas have finished meanwhile and it tries to
    commit. The fence must refuse it: every task committed once, by the other agent's run."""
    form, out = ZOMBIE[short], Outcome()
    slots = form.shape.slots
    async with rig(tmp, form.shape) as r:
        n = 2 * slots  # both agents full
        first = await asyncio.gather(
            *(r.load.submit("sleep", {"seconds": form.seconds}) for _ in range(n))
        )
        ids = {s.task_id for s in first if s.task_id}
        await until(lambda: len(set(read_runs(r.fed.runs)) & ids) == n, timeout=60)
        runs = read_runs(r.fed.runs)
        z = next(
            a
            for a in r.fed.agents.values()
            if {x.pid for t in ids for x in runs[t]} & set(a.replicas())
        )
        z_pids = set(z.replicas())
        z_tasks = {t for t in ids if runs[t][0].pid in z_pids}
        r.fed.signal(z.pid, signal.SIGSTOP)
        stopped = time.time()

        def taken_over() -> bool:
            now = read_runs(r.fed.runs)
            over = all(any(x.pid not in z_pids for x in now[t]) for t in z_tasks)
            ended = all(any(x.ended for x in now[t] if x.pid in z_pids) for t in z_tasks)
            return over and ended  # and the zombie's replicas are done: it holds results

        over = await within(taken_over, form.shape.lease_ttl + 3 * form.seconds + 30)
        r.fed.signal(z.pid, signal.SIGCONT)
        await r.ledger.wait(z_tasks, 60)
        # The zombie must serve again: a second batch, more than the other agent's slots.
        second = await asyncio.gather(
            *(r.load.submit("sleep", {"seconds": 1.0}) for _ in range(4 * slots))
        )
        end = await r.settle(out, patience=60)

        def pid_of_result(t: str) -> int | None:
            return next((x.pid for x in end.runs[t] if x.run == end.results.get(t)), None)

        by_zombie = [t for t in z_tasks if pid_of_result(t) in z_pids]
        late = [t for t in z_tasks if any(x.ended for x in end.runs[t] if x.pid in z_pids)]
        lost = "claim lost before its outcome was written"  # regional/outcomes.py logs it
        refused = (tmp / f"{z.name}.log").read_text().count(lost)
        out.check("the other agent took its tasks over while it was stopped", over)
        out.check(
            "the zombie's replicas finished its tasks while it was stopped",
            bool(late),
            f"{len(late)} of {len(z_tasks)}",
        )
        out.check(
            "none of the zombie's results committed; each task once, by the other agent",
            not by_zombie and all(end.committed(t) == 1 for t in z_tasks),
            f"{len(by_zombie)} by the zombie",
        )
        z_now = z_pids | set(z.replicas())
        again = [
            t
            for t in (s.task_id for s in second if s.task_id)
            if any(x.pid in z_now for x in end.runs.get(t, ()))
        ]
        out.check(
            "the zombie serves again after SIGCONT",
            bool(again),
            f"it ran {len(again)} of the {len(second)} tasks submitted after",
        )
        commits = [c.finished_at for t in z_tasks for c in r.ledger.commits[t]]
        out.recover = max(commits) - stopped if commits else None
        out.notes.append(
            f"stopped {len(z_tasks)} tasks' agent for {max(commits, default=stopped) - stopped:.1f}"
            f" s (lease TTL {form.shape.lease_ttl} s, tasks of {form.seconds:g} s); its replicas"
            f" finished {len(late)} of them meanwhile; its late commits refused by the fence: "
            f"{refused} (the rest were stopped on resume, when it saw its claims gone)"
        )
    return out


# -- 9. a poison task ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PoisonForm:
    seconds: float  # of steady load around the poison
    rate: float  # tasks/s
    poison: int  # tasks that kill their replica, every time
    boom: int  # tasks whose handler raises
    shape: Shape


POISON = {
    True: PoisonForm(8, 15, 1, 1, Shape(agents=1, replicas=2, slots=4, lease_ttl=2)),
    False: PoisonForm(40, 20, 2, 2, Shape(agents=1, replicas=2, slots=4, lease_ttl=5)),
}


async def poison(tmp: Path, short: bool) -> Outcome:
    """Steady load of short tasks on two replicas; among them a poison task (it SIGKILLs the
    replica that runs it, every time) and one whose handler raises. The poison must fail with
    replica_lost after max_attempts, the raising one with handler_error; every other task must
    succeed, and the pool must not crash-loop."""
    form, rng, out = POISON[short], random.Random(9), Outcome()
    async with rig(tmp, form.shape) as r:
        agent = next(iter(r.fed.agents.values()))
        log = tmp / f"{agent.name}.log"
        starts = log.read_text().count(" ready on port ")
        bad: dict[str, list[Submit]] = {}

        async def normal(i: int) -> None:
            await r.load.submit("sleep", {"seconds": round(rng.uniform(0.05, 0.5), 3)})

        async def hostile() -> None:
            await asyncio.sleep(1.0)
            for fn, n in (("poison", form.poison), ("boom", form.boom)):
                bad[fn] = list(await asyncio.gather(*(r.load.submit(fn, {}) for _ in range(n))))

        await asyncio.gather(steady(form.rate, form.seconds, normal), hostile())
        end = await r.settle(out, patience=60)
        assert r.fed.spec is not None
        attempts = r.fed.spec.scaling.max_attempts

        def ended(fn: str, code: str, tries: int | None = None) -> bool:
            records = [end.records.get(s.task_id or "") for s in bad[fn]]
            return all(
                x is not None
                and x.state is State.FAILED
                and x.error is not None
                and x.error.code == code
                and (tries is None or x.attempts == tries)
                for x in records
            )

        out.check(
            f"the poison task fails with replica_lost after max_attempts = {attempts}",
            ended("poison", "replica_lost", attempts),
        )
        out.check("the raising task fails with handler_error", ended("boom", "handler_error"))
        hostile_ids = {s.task_id for ss in bad.values() for s in ss}
        others = [end.records.get(t) for t in r.load.acknowledged if t not in hostile_ids]
        hurt = [x for x in others if x is None or x.state is not State.SUCCEEDED]
        out.check("every other task succeeds", not hurt, f"{len(hurt)} of {len(others)} did not")

        async def full() -> bool:
            load = (await r.fed.loads()).get(agent.region)
            return load is not None and load.ready_replicas == form.shape.replicas

        back = await within(full, 30)
        out.check("the pool is back at full size", back)
        restarts = log.read_text().count(" ready on port ") - starts
        allowed = form.poison * attempts
        out.check(
            "no crash loop: a replica restarts once per poisoned attempt, no more",
            restarts <= allowed,
            f"{restarts} restarts for {allowed} poisoned attempts",
        )
        spans = [
            r.ledger.commits[s.task_id][0].finished_at - s.sent_at
            for s in bad["poison"]
            if s.task_id and r.ledger.commits.get(s.task_id)
        ]
        out.recover = max(spans, default=None)
        out.notes.append(
            f"{form.poison} poison and {form.boom} raising tasks among {len(others)} others "
            f"({form.rate:g}/s for {form.seconds:g} s) on {form.shape.replicas} replicas × "
            f"{form.shape.slots} slots; {restarts} replica restarts"
        )
    return out
