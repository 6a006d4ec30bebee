"""A scenario's rig: the federation, the ledger watching it and the clients driving it; and the
counts every row carries, taken at the end from etcd and the run records."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.chaos.harness import Federation, Shape
from benchmarks.chaos.ledger import Final, Ledger, final
from benchmarks.chaos.load import Load
from benchmarks.chaos.report import Outcome
from federation.aio import cancel_and_wait
from federation.task import State
from tests.waiting import until


@dataclass
class Rig:
    fed: Federation
    ledger: Ledger
    load: Load

    async def settle(
        self, outcome: Outcome, patience: float, extra: frozenset[str] = frozenset()
    ) -> Final:
        """Wait up to ``patience`` s for every acknowledged task (and ``extra`` ones) to end,
        then count into ``outcome`` and judge the criteria every scenario shares."""
        acked = set(self.load.acknowledged) | set(extra)
        await self.ledger.wait(acked, patience)
        end = await final(self.fed.queue, self.ledger, self.fed.runs)
        count(outcome, self.load, end, acked)
        common_checks(outcome, self.load)
        return end


async def within(condition: Callable[[], bool | Awaitable[bool]], timeout: float) -> bool:
    """Whether ``condition`` came to hold within ``timeout`` s (a criterion, not an error)."""
    try:
        await until(condition, timeout=timeout, every=0.1)
    except TimeoutError:
        return False
    return True


@contextlib.asynccontextmanager
async def rig(tmp: Path, shape: Shape, **scaling: Any) -> AsyncIterator[Rig]:
    fed = await Federation(tmp, shape).start(**scaling)
    watching: asyncio.Task[None] | None = None
    try:
        ledger = Ledger(fed.queue, fed.partitions)
        await ledger.start()
        watching = asyncio.create_task(ledger.run())
        timeout = aiohttp.ClientTimeout(total=90)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            yield Rig(fed, ledger, Load(http, [e.url for e in fed.edges]))
    finally:
        if watching is not None:
            await cancel_and_wait([watching])
            if not watching.cancelled() and watching.exception() is not None:
                raise watching.exception()  # type: ignore[misc]
        await fed.close()


def count(outcome: Outcome, load: Load, end: Final, acked: set[str]) -> None:
    outcome.submitted += len(load.submits) + len(acked - set(load.acknowledged))
    outcome.acknowledged += len(acked)
    for task_id in sorted(acked):
        r = end.records.get(task_id)
        if r is None or not r.state.terminal:
            outcome.lost += 1
            state = "missing" if r is None else f"{r.state.value}, attempts {r.attempts}"
            if r is not None and r.claimer:
                state += f", claimer {r.claimer}"
            outcome.stuck.append(f"{task_id} ({state}, runs {len(end.runs.get(task_id, ()))})")
        elif r.state is State.SUCCEEDED:
            outcome.succeeded += 1
        else:
            outcome.failed[r.error.code if r.error else r.state.value] += 1
    every = set(end.records) | set(end.runs)
    outcome.run_twice += sum(len(end.runs.get(t, ())) >= 2 for t in every)
    outcome.ran_to_end_twice += sum(
        sum(r.ended is not None for r in end.runs.get(t, ())) >= 2 for t in every
    )
    outcome.committed_twice += sum(end.committed(t) >= 2 for t in every)
    outcome.foreign += sum(end.foreign(t) for t in every)
    outcome.server_errors += len(load.http.server_errors)
    outcome.answers.update(load.http.answers)
    if load.http.broken:
        outcome.answers["connection broken"] += load.http.broken


def common_checks(outcome: Outcome, load: Load) -> None:
    lost = f"{outcome.lost} lost" + (f": {'; '.join(outcome.stuck[:3])}" if outcome.stuck else "")
    outcome.check("0 acknowledged lost", outcome.lost == 0, lost)
    outcome.check(
        "0 committed twice",
        outcome.committed_twice == 0,
        f"{outcome.committed_twice} committed twice",
    )
    outcome.check(
        "every committed result came from a recorded run",
        outcome.foreign == 0,
        f"{outcome.foreign} from no recorded run",
    )
    shown = "; ".join(load.http.server_errors[:3])
    detail = f"{outcome.server_errors} server errors" + (f": {shown}" if shown else "")
    outcome.check("no 5xx but 503", outcome.server_errors == 0, detail)
    outcome.check(
        "every 429 and 503 carries Retry-After",
        load.http.no_retry_after == 0,
        f"{load.http.no_retry_after} without",
    )
