"""The reliability suite's scenarios in the issue's order, what the page says of each, and how
one is run (a scenario that breaks down is a failed row, not a crash of the suite)."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.chaos import capacity, edges, etcd_faults, processes
from benchmarks.chaos.report import Described, Outcome

Run = Callable[[Path, bool], Awaitable[Outcome]]


@dataclass(frozen=True)
class Scenario:
    about: Described
    run: Run
    runs: int  # repetitions of the full form (the short form runs once)


def _s(number: int, name: str, title: str, run: Run, recover: str, runs: int = 1) -> Scenario:
    return Scenario(Described(number, name, title, inspect.getdoc(run) or "", recover), run, runs)


SCENARIOS: dict[str, Scenario] = {
    s.about.name: s
    for s in (
        _s(1, "kill", "replicas and agents SIGKILLed at random", processes.kill,
           "the longest time in which no task ended, over the whole run."),
        _s(2, "zombie", "zombie agent: SIGSTOP past its lease, SIGCONT", processes.zombie,
           "from SIGSTOP until the last of the zombie's tasks was committed by the other "
           "agent.", runs=3),
        _s(3, "leader", "etcd leader SIGKILLed every 20 s (3 members)", etcd_faults.leader,
           "the longest, over the kills, from a kill until a submit sent after it was "
           "acknowledged."),
        _s(4, "blackhole", "one etcd member blackholed, then healed", etcd_faults.blackhole,
           "from the cut until a submit sent after it was acknowledged."),
        _s(5, "edge", "an edge SIGKILLed with requests in flight", edges.edge,
           "from the kill until the last cut request was acknowledged through the other "
           "edge.", runs=3),
        _s(6, "compaction", "compaction past a stopped agent's watch", etcd_faults.compaction,
           "from SIGCONT until the last task ended.", runs=3),
        _s(7, "region", "a region lost and back", capacity.region,
           "the longest an unpinned task of the lost region waited, from the kill until it "
           "started in the other region."),
        _s(8, "scalein", "scale-in while long tasks run", capacity.scale_in,
           "from the scale-in order until the region reports one replica."),
        _s(9, "poison", "a poison task and a raising one", processes.poison,
           "from the poison task's submit until it was committed failed.", runs=2),
        _s(10, "overload", "overload at 3 × capacity", capacity.overload,
           "from the end of the overload until the backlog was drained."),
        _s(11, "nospace", "etcd out of space (NOSPACE)", etcd_faults.nospace,
           "from the filler's deletion until etcd took a plain put again (its NOSPACE "
           "alarm disarmed)."),
        _s(12, "sse", "a 60 s task followed over its event stream", edges.sse, "—"),
        _s(13, "hostile", "hostile input (schemathesis, headers, oversize bodies)",
           edges.hostile, "—"),
    )
}  # fmt: skip


async def run(name: str, tmp: Path, short: bool) -> Outcome:
    """One run of a scenario; if it breaks down, an outcome that says how."""
    try:
        return await SCENARIOS[name].run(tmp, short)
    except Exception as e:
        out = Outcome()
        where = traceback.format_exception(e)[-2].strip().splitlines()[0]
        out.check("the scenario ran to its end", False, f"{type(e).__name__}: {e} ({where})")
        return out
