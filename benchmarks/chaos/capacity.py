"""Capacity coming and going: a region lost and back (7), scale-in while long tasks run (8),
overload at three times capacity (10)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.chaos.harness import Shape
from benchmarks.chaos.ledger import read_runs
from benchmarks.chaos.load import steady
from benchmarks.chaos.report import Outcome
from benchmarks.chaos.rig import rig, within
from federation import keys
from federation.aio import cancel_and_wait
from federation.task import State
from tests.waiting import until

# -- 7. a region lost, and back ---------------------------------------------------------------


@dataclass(frozen=True)
class RegionForm:
    tasks: int  # of each kind (pinned, unpinned) before the loss, and again while it is down
    seconds: float  # each task's run
    down: float  # s the region stays lost
    shape: Shape


_TWO = ("us-east-1", "eu-west-1")
REGION = {
    True: RegionForm(8, 1.5, 6, Shape(regions=_TWO, slots=16, lease_ttl=2)),
    False: RegionForm(24, 3.0, 20, Shape(regions=_TWO, slots=32, lease_ttl=5)),
}
SLACK = 2.0  # s beyond TTL + spillover_after: the reaper's 0.5 s sweep, a claim, a loaded machine


async def region(tmp: Path, short: bool) -> Outcome:
    """Tasks homed in us-east-1 (the edge's region), pinned there and not; us-east-1's agent is
    SIGKILLed (its replicas die with it) and comes back after a while. Unpinned tasks must move
    to eu-west-1 within lease TTL + spillover_after; pinned ones wait and run once it is back."""
    form, out = REGION[short], Outcome()
    ttl, after = form.shape.lease_ttl, form.shape.spillover_after
    async with rig(tmp, form.shape) as r:
        lost = r.fed.agents["us-east-1-0"]
        pin = {"X-Spillover-Region": "us-east-1"}

        async def batch() -> tuple[set[str], set[str]]:
            args = {"seconds": form.seconds}
            pinned = [r.load.submit("sleep", args, headers=pin) for _ in range(form.tasks)]
            free = [r.load.submit("sleep", args) for _ in range(form.tasks)]
            done = await asyncio.gather(*pinned, *free)
            ids = [s.task_id or "" for s in done]
            return set(ids[: form.tasks]), set(ids[form.tasks :])

        pinned, free = await batch()
        await until(lambda: len(read_runs(r.fed.runs)) >= form.tasks, timeout=30)
        await r.fed.kill_agent(lost.name)
        killed = time.time()
        more_pinned, more_free = await batch()
        pinned |= more_pinned
        free |= more_free
        await asyncio.sleep(max(0.0, killed + form.down - time.time()))
        r.fed.start_agent(lost.name)
        back = time.time()
        end = await r.settle(out, patience=60)

        def first_start_after(t: str, since: float, where: str) -> float | None:
            starts = [x.started for x in end.runs.get(t, ()) if x.region == where]
            return min((s for s in starts if s >= since), default=None)

        # Unpinned tasks unfinished at the kill, in us-east-1's partition: when they started again.
        moved = []
        for t in free:
            if t.endswith(".us-east-1") and not any(
                x.ended and x.ended < killed for x in end.runs.get(t, ())
            ):
                s = first_start_after(t, killed, "eu-west-1")
                moved.append(float("inf") if s is None else s - killed)
        bound = ttl + after + SLACK
        out.check(
            f"unpinned tasks move to eu-west-1 within TTL + spillover_after (+{SLACK:g} s)",
            bool(moved) and max(moved) <= bound,
            f"{len(moved)} moved, the last after {max(moved, default=0):.1f} s; bound {bound:g} s",
        )
        elsewhere = [t for t in pinned if any(x.region != "us-east-1" for x in end.runs.get(t, ()))]
        early = [t for t in pinned
                 if any(killed + 0.5 < x.started < back for x in end.runs.get(t, ()))]  # fmt: skip
        out.check("pinned tasks never run elsewhere, nor while their region is down",
                  not elsewhere and not early,
                  f"{len(elsewhere)} elsewhere, {len(early)} while down")  # fmt: skip
        waited = [end.records[t] for t in pinned if t in end.records]
        ok = all(x.state is State.SUCCEEDED for x in waited) and len(waited) == len(pinned)
        out.check("pinned tasks run once their region is back", ok)
        out.recover = max(moved, default=None)
        out.notes.append(
            f"us-east-1 lost for {back - killed:.0f} s (lease TTL {ttl} s, spillover_after "
            f"{after:g} s); {len(pinned)} pinned and {len(free)} unpinned tasks of "
            f"{form.seconds:g} s; time to recover: the longest an unpinned task of the lost "
            f"region waited, from the kill until it started in eu-west-1"
        )
    return out


# -- 8. scale-in while long tasks run -----------------------------------------------------------


@dataclass(frozen=True)
class ScaleInForm:
    seconds: float  # each long task's run
    shape: Shape


_THREE = Shape(replicas=3, slots=2, pinned=False)
SCALE_IN = {True: ScaleInForm(4, _THREE), False: ScaleInForm(20, _THREE)}


async def scale_in(tmp: Path, short: bool) -> Outcome:
    """Three replicas, every slot running a long task; the app is redeployed with max_replicas
    = 1, so the pool drains two replicas (the autoscaler's scale-in takes the same path). No
    running task may be interrupted; the drained replicas stop once idle."""
    form, out = SCALE_IN[short], Outcome()
    async with rig(tmp, form.shape) as r:
        slots = form.shape.replicas * form.shape.slots
        long = await asyncio.gather(
            *(r.load.submit("sleep", {"seconds": form.seconds}) for _ in range(slots))
        )
        ids = {s.task_id for s in long if s.task_id}
        await until(lambda: len(set(read_runs(r.fed.runs)) & ids) == slots, timeout=30)
        ordered = time.time()
        await r.fed.deploy(min_replicas=1, max_replicas=1)
        short_ones = await asyncio.gather(
            *(r.load.submit("sleep", {"seconds": 0.2}) for _ in range(slots))
        )

        async def one_replica() -> bool:
            load = (await r.fed.loads()).get("us-east-1")
            return load is not None and load.replicas == 1 and load.ready_replicas == 1

        shrank = await within(one_replica, form.seconds + 60)
        scaled = time.time()
        end = await r.settle(out, patience=60)
        interrupted = [t for t in ids if len(end.runs.get(t, ())) != 1
                       or end.records[t].attempts != 1
                       or end.records[t].state is not State.SUCCEEDED]  # fmt: skip
        out.check("0 interrupted: every long task ran once, to the end", not interrupted,
                  f"{len(interrupted)} interrupted")  # fmt: skip
        out.check(
            "the pool shrinks to one replica once the drained ones are idle",
            shrank,
            f"after {scaled - ordered:.1f} s (tasks of {form.seconds:g} s)",
        )
        ok = all(end.records.get(s.task_id or "") for s in short_ones)
        out.check("tasks submitted during the drain run", ok)
        out.recover = scaled - ordered
        out.notes.append(
            f"{form.shape.replicas} replicas × {form.shape.slots} slots, all running tasks of "
            f"{form.seconds:g} s, scaled in to 1; time to recover: from the scale-in order until "
            f"the region reports one replica"
        )
    return out


# -- 10. overload at three times capacity -----------------------------------------------------


@dataclass(frozen=True)
class OverloadForm:
    seconds: float  # of overload
    task: float  # each task's run
    max_depth: int  # the app's [queue] max_depth
    shape: Shape


_SMALL = Shape(replicas=1, slots=4, lease_ttl=2)
OVERLOAD = {
    True: OverloadForm(4, 0.2, 40, _SMALL),
    False: OverloadForm(60, 0.2, 200, _SMALL),
}


async def overload(tmp: Path, short: bool) -> Outcome:
    """Async submits at three times what the slots can run, for a while. The edge answers 429
    queue_full (with Retry-After) once the app's queue holds ``[queue] max_depth``, so
    the queue stays bounded; every acknowledged task still ends. Clients do not retry a 429
    here: the row shows what the federation does with what it took."""
    form, out = OVERLOAD[short], Outcome()
    capacity = form.shape.slots / form.task  # tasks/s
    async with rig(tmp, form.shape) as r:
        await r.fed.deploy(queue={"max_depth": form.max_depth})
        depths: list[int] = []
        etcd = r.fed.clusters.control
        prefix = keys.ready_app(r.fed.queue.root, "us-east-1", "chaos")

        async def sample() -> None:
            while True:
                kvs, _ = await etcd.range_all(prefix, keys.prefix_end(prefix), keys_only=True)
                depths.append(len(kvs))
                await asyncio.sleep(0.5)

        async def one(i: int) -> None:
            await r.load.submit("sleep", {"seconds": form.task}, patience=0)

        sampler = asyncio.create_task(sample())
        try:
            await steady(3 * capacity, form.seconds, one)
            stopped = time.time()
            backlog = max(depths, default=0)
            end = await r.settle(out, patience=backlog / capacity + 60)
        finally:
            await cancel_and_wait([sampler])
        full = sum(1 for s in r.load.submits for _, st, code in s.answers
                   if st == 429 and code == "queue_full")  # fmt: skip
        out.check(
            f"past max_depth = {form.max_depth}, submits answer 429 queue_full",
            full > 0,
            f"{full} answered 429 queue_full",
        )
        slack = form.shape.slots + 16  # claimed in flight, and one group-commit batch
        out.check(
            "the queue stays within max_depth",
            max(depths, default=0) <= form.max_depth + slack,
            f"deepest {max(depths, default=0)}",
        )
        waits = sorted(x.started_at - x.created_at for x in end.records.values()
                       if x.started_at is not None)  # fmt: skip
        ends = [c.finished_at for cs in r.ledger.commits.values() for c in cs]
        out.recover = max(ends) - stopped if ends else None
        p99 = waits[int(0.99 * (len(waits) - 1))] if waits else 0.0
        out.notes.append(
            f"capacity {capacity:g} tasks/s ({form.shape.slots} slots × {form.task:g} s), "
            f"submits at {3 * capacity:g}/s for {form.seconds:g} s; deepest queue "
            f"{max(depths, default=0)}; queue wait p50 {waits[len(waits) // 2] if waits else 0:.1f}"
            f" s, p99 {p99:.1f} s; time to recover: from the end of the overload until the "
            f"backlog was drained"
        )
    return out
