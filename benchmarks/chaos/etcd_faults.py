"""Faults of etcd: the leader SIGKILLed again and again (3), a member blackholed (4), history
compacted past a stopped agent's watch (6), the database out of space (11)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.chaos.harness import ROOT, Federation, Shape
from benchmarks.chaos.ledger import read_runs
from benchmarks.chaos.load import Load, steady
from benchmarks.chaos.report import Outcome
from benchmarks.chaos.rig import Rig, rig
from federation.aio import cancel_and_wait
from federation.errors import StorageFull, Unavailable


def recovered(load: Load, fault: float) -> float | None:
    """Seconds from ``fault`` until a submit sent after it was acknowledged (first try or not):
    how long new work was refused or stalled."""
    acks = [s.acked_at for s in load.submits if s.sent_at >= fault and s.acked_at is not None]
    return min(acks) - fault if acks else None


async def traffic(r: Rig, rate: float, seconds: float, sync_every: int = 5) -> None:
    """Steady load of 50 ms tasks, one submit in ``sync_every`` synchronous."""

    async def one(i: int) -> None:
        await r.load.submit("sleep", {"seconds": 0.05}, sync=i % sync_every == 0, patience=90)

    await steady(rate, seconds, one)


# -- 3. the etcd leader SIGKILLed, again and again -----------------------------------------------


@dataclass(frozen=True)
class LeaderForm:
    seconds: float  # of steady load
    every: float  # s between two leader kills
    down: float  # s a killed member stays down before it restarts on its data
    rate: float  # submits/s
    shape: Shape


LEADER = {
    True: LeaderForm(10, 4, 1.5, 20, Shape(members=3, agents=2, slots=8, lease_ttl=2)),
    False: LeaderForm(180, 20, 5, 30, Shape(members=3, agents=2, slots=8, lease_ttl=5)),
}
RECOVER_WITHIN = 10.0  # s: a generous bound for a loaded 2-core machine (elections take ~0.5 s)


async def leader(tmp: Path, short: bool) -> Outcome:
    """Three etcd members; every 20 s the leader is SIGKILLed, left down 5 s, and started again
    on its data, while clients submit through the edges."""
    form, out = LEADER[short], Outcome()
    async with rig(tmp, form.shape) as r:
        kills: list[float] = []
        killer = asyncio.create_task(_kill_leaders(r.fed, form, kills))
        try:
            await traffic(r, form.rate, form.seconds)
        finally:
            await cancel_and_wait([killer])
        await r.settle(out, patience=90)
        # A kill after the last submit was sent (while the last answers came) has none to time.
        last_sent = max((s.sent_at for s in r.load.submits), default=0.0)
        each = [recovered(r.load, k) for k in kills if k < last_sent]
        worst = max((x for x in each if x is not None), default=None)
        out.recover = worst
        out.check(
            f"new submits acknowledged within {RECOVER_WITHIN:g} s of every leader kill",
            bool(each) and all(x is not None and x <= RECOVER_WITHIN for x in each),
            ", ".join("—" if x is None else f"{x:.1f} s" for x in each),
        )
        out.notes.append(
            f"{len(kills)} leader kills in {form.seconds:g} s (every {form.every:g} s, each "
            f"member down {form.down:g} s, then restarted on its data); {form.rate:g} "
            f"submits/s of 50 ms tasks, one in 5 synchronous; time to recover: the longest, "
            f"over the kills, until a submit sent after the kill was acknowledged"
        )
    return out


async def _kill_leaders(fed: Federation, form: LeaderForm, kills: list[float]) -> None:
    while True:
        await asyncio.sleep(form.every)
        try:
            i = await fed.leader()
        except (Unavailable, StopIteration):
            continue  # an election is on: try at the next turn
        kills.append(time.time())
        await asyncio.to_thread(fed.etcd.kill, i)
        await asyncio.sleep(form.down)
        await asyncio.to_thread(_restart, fed, i)


def _restart(fed: Federation, i: int) -> None:
    fed.etcd.start_member(i)
    fed.etcd.wait_healthy(60, [i])


# -- 4. one etcd member blackholed, then healed -------------------------------------------------


@dataclass(frozen=True)
class CutForm:
    before: float  # s of load before the cut
    cut: float  # s the member stays cut off
    after: float  # s of load after the heal
    rate: float
    shape: Shape


CUT = {
    True: CutForm(2, 7, 3, 20, Shape(members=3, agents=2, slots=8, lease_ttl=2, proxied=True)),
    False: CutForm(10, 30, 20, 30, Shape(members=3, agents=2, slots=8, lease_ttl=5, proxied=True)),
}


async def blackhole(tmp: Path, short: bool) -> Outcome:
    """Member m0, the first endpoint of every agent and edge (so the one they talk to), is cut
    off from its clients: connections stay open and no byte passes, as when packets are dropped.
    Its peers still reach it."""
    form, out = CUT[short], Outcome()
    async with rig(tmp, form.shape) as r:
        was_leader = await r.fed.leader() == 0
        marks: dict[str, float] = {}

        async def cut_and_heal() -> None:
            await asyncio.sleep(form.before)
            marks["cut"] = time.time()
            r.fed.proxies[0].cut()
            await asyncio.sleep(form.cut)
            marks["heal"] = time.time()
            r.fed.proxies[0].heal()

        await asyncio.gather(traffic(r, form.rate, form.before + form.cut + form.after),
                             cut_and_heal())  # fmt: skip
        await r.settle(out, patience=90)
        during = recovered(r.load, marks["cut"])
        out.recover = during
        out.check(
            f"new submits acknowledged within {RECOVER_WITHIN:g} s of the cut",
            during is not None and during <= RECOVER_WITHIN,
            "never" if during is None else f"{during:.1f} s",
        )
        cut_ids = {s.task_id for s in r.load.submits
                   if s.task_id and marks["cut"] <= s.sent_at < marks["heal"]}  # fmt: skip
        ends = [c.finished_at for t in cut_ids for c in r.ledger.commits.get(t, ())]
        waited = sum(e > marks["heal"] for e in ends)
        out.notes.append(
            f"m0 ({'the leader' if was_leader else 'a follower'}) cut off from its clients for "
            f"{form.cut:g} s under {form.rate:g} submits/s; of the {len(cut_ids)} tasks "
            f"submitted during the cut, {waited} ended only after the heal; time to recover: "
            f"from the cut until a submit sent after it was acknowledged"
        )
    return out


# -- 6. compaction past a stopped agent's watch --------------------------------------------------


@dataclass(frozen=True)
class CompactForm:
    tasks: int  # submitted while the agent is stopped
    shape: Shape


_ONE = Shape(agents=1, replicas=1, slots=16, lease_ttl=2, proxied=True)
COMPACT = {True: CompactForm(400, _ONE), False: CompactForm(4_000, replace(_ONE, lease_ttl=5))}


async def compaction(tmp: Path, short: bool) -> Outcome:
    """SIGSTOP the only agent; while it is stopped its connections to etcd drop (the proxy in
    front of etcd resets them, as a member restart or a middlebox would), tasks are submitted
    and etcd's history is compacted past them (physically); SIGCONT. The agent's watch resumes
    from a revision that is gone: it must learn so, re-list, and run every task."""
    form, out = COMPACT[short], Outcome()
    async with rig(tmp, form.shape) as r:
        agent = next(iter(r.fed.agents.values()))
        r.fed.signal(agent.pid, signal.SIGSTOP)
        for proxy in r.fed.proxies:
            await proxy.reset()

        async def one(i: int) -> None:
            await r.load.submit("sleep", {"seconds": 0.01})

        await steady(200, form.tasks / 200, one)
        revision = await _compact(r.fed)
        resumed = time.time()
        r.fed.signal(agent.pid, signal.SIGCONT)
        await r.settle(out, patience=120)
        ran = set(read_runs(r.fed.runs))
        acked = set(r.load.acknowledged)
        out.check("the claimed set equals the enqueued set", ran == acked,
                  f"{len(acked - ran)} never ran, {len(ran - acked)} not enqueued")  # fmt: skip
        relisted = (tmp / f"{agent.name}.log").read_text().count("fell behind compaction")
        out.check("the agent's watch was compacted past, and it re-listed", relisted > 0,
                  f"{relisted} watches re-listed")  # fmt: skip
        ends = [c.finished_at for t in acked for c in r.ledger.commits.get(t, ())]
        out.recover = max(ends) - resumed if ends else None
        out.notes.append(
            f"{len(acked)} tasks submitted while the agent was stopped; history compacted at "
            f"revision {revision}; time to recover: from SIGCONT until the last task ended"
        )
    return out


async def _compact(fed: Federation) -> int:
    """Compact the history up to now, physically (the old revisions are gone)."""
    etcd = fed.clusters.control
    _, revision, _ = await etcd.range(ROOT.encode(), b"\x00", limit=1, keys_only=True)
    await etcd.compact(revision)
    return revision


# -- 11. etcd out of space -------------------------------------------------------------------


@dataclass(frozen=True)
class SpaceForm:
    before: float  # s of load before the filler
    full: float  # s of load while etcd is out of space
    after: float  # s of load after the filler is deleted
    rate: float
    shape: Shape


QUOTA = 16 << 20  # --quota-backend-bytes, and the [etcd] quota_bytes edges and agents know
_SPACE = Shape(agents=1, replicas=1, slots=8, lease_ttl=2, quota_bytes=QUOTA)
SPACE = {
    True: SpaceForm(2, 4, 6, 10, _SPACE),
    False: SpaceForm(10, 20, 30, 10, _SPACE),
}


async def nospace(tmp: Path, short: bool) -> Outcome:
    """etcd with a 16 MiB quota, which edges and agents know (``[etcd] quota_bytes``); under
    steady load another writer puts filler keys (1 MiB each) past the storage watermark (80 %)
    until etcd raises its NOSPACE alarm; then it deletes them. Nobody touches etcd after that:
    the federation must bring itself back (its storage keeper compacts, defragments and disarms
    the alarm) and take new tasks again."""
    form, out = SPACE[short], Outcome()
    async with rig(tmp, form.shape) as r:
        marks: dict[str, float] = {}
        health: list[tuple[float, str]] = []

        async def fill_and_free() -> None:
            await asyncio.sleep(form.before)
            etcd, n = r.fed.clusters.control, 0
            while True:
                try:
                    await etcd.put(f"{ROOT}/filler/{n}".encode(), b"x" * (1 << 20))
                    n += 1
                except StorageFull:
                    break
            marks["full"] = time.time()
            await asyncio.sleep(form.full)
            for i in range(n):
                await etcd.delete(f"{ROOT}/filler/{i}".encode())  # deletes pass under NOSPACE
            marks["freed"] = time.time()
            while time.time() < marks["freed"] + form.after:  # a plain put: the alarm is gone
                try:
                    await etcd.put(f"{ROOT}/writable".encode(), b"1")
                    marks["writable"] = time.time()
                    return
                except StorageFull:
                    await asyncio.sleep(0.2)

        async def sample() -> None:
            while True:
                async with r.load.session.get(f"{r.fed.edges[0].url}/v1/federation/health") as h:
                    health.append((time.time(), (await h.json())["status"]))
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        try:
            await asyncio.gather(traffic(r, form.rate, form.before + form.full + form.after),
                                 fill_and_free())  # fmt: skip
        finally:
            await cancel_and_wait([sampler])
        await r.settle(out, patience=30)
        full, freed = marks["full"], marks["freed"]
        during = [(st, code) for s in r.load.submits for t, st, code in s.answers
                  if full + 1 <= t < freed]  # fmt: skip
        refused = [str(code) for st, code in during if st == 503]
        accepted = sum(1 for st, _ in during if 200 <= st < 300)
        out.check(
            "while etcd is out of space, submits answer 503 storage_full (none accepted)",
            bool(refused) and all(c == "storage_full" for c in refused) and not accepted,
            ", ".join(f"{n} × 503 {c}" for c, n in sorted(Counter(refused).items()))
            + f"{', ' if refused else ''}{accepted} accepted",
        )
        states = [st for t, st in health if full + 2 <= t < freed]
        out.check(
            "while etcd is out of space, health says degraded",
            bool(states) and all(st == "degraded" for st in states),
            ", ".join(f"{n} × {c}" for c, n in sorted(Counter(states).items())),
        )
        back = marks.get("writable")
        out.recover = None if back is None else back - freed
        out.check(
            "once space is freed, etcd takes writes again without an operator",
            back is not None,
            "never: the NOSPACE alarm stays" if back is None else f"after {back - freed:.1f} s",
        )
        taken = [s.acked_at for s in r.load.submits
                 if s.acked_at is not None and s.acked_at >= freed]  # fmt: skip
        out.check(
            "and new tasks are taken again",
            bool(taken),
            "none" if not taken else f"the first {min(taken) - freed:.1f} s after the deletion",
        )
        out.notes.append(
            f"quota {QUOTA >> 20} MiB (new tasks refused from 80 % of it), filled after "
            f"{form.before:g} s of load, out of space for {form.full:g} s; {form.rate:g} "
            f"submits/s throughout, each retried after its Retry-After until taken; time to "
            f"recover: from the filler's deletion until etcd took a plain put again"
        )
    return out
