"""What really happened, measured from etcd and from the workload's run records, never assumed.

- **Commits**: a watch on every partition's done index, from the revision before the first task.
  Each terminal commit (a fenced complete or fail, a requeue that gave up, an expiry, a cancel)
  writes one ``done/{finished_ns}/{id}`` key, so a task committed twice shows as two puts there.
  The final count is the larger of what the watch saw and what a range of the index holds then.
- **Runs**: the workload's ``start``/``end`` lines (``workload.py``), one run id per execution.
- **Results**: the committed result of each task names the run that produced it; it must be one
  of that task's recorded runs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from federation import keys
from federation.etcd import Compacted
from federation.queue import Queue, decode
from federation.task import State, TaskRecord


@dataclass(frozen=True, slots=True)
class Commit:
    state: State
    code: str | None
    finished_at: float  # the committer's clock (every process here shares the machine's)


@dataclass(frozen=True, slots=True)
class Run:
    run: str
    pid: int
    region: str
    started: float
    ended: float | None


class Ledger:
    def __init__(self, queue: Queue, partitions: tuple[str, ...]) -> None:
        self.queue = queue
        self.partitions = partitions
        self.commits: dict[str, list[Commit]] = defaultdict(list)
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._since: dict[str, int] = {}

    async def start(self) -> None:
        """The revision to watch from: taken before the first task is submitted."""
        for p in self.partitions:
            prefix = keys.done_all(self.queue.root, p)
            _, revision, _ = await self.queue.etcd(p).range(
                prefix, keys.prefix_end(prefix), limit=1, keys_only=True
            )
            self._since[p] = revision + 1

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for p in self.partitions:
                tg.create_task(self._watch(p))

    async def _watch(self, partition: str) -> None:
        prefix = keys.done_all(self.queue.root, partition)
        try:
            async for ev in self.queue.etcd(partition).watch(prefix, self._since[partition]):
                if ev.kind != "put":
                    continue
                r = decode(ev.kv.value)
                code = r.error.code if r.error else None
                self.commits[r.id].append(Commit(r.state, code, r.finished_at or time.time()))
                if (f := self._waiting.pop(r.id, None)) is not None and not f.done():
                    f.set_result(None)
        except Compacted:
            raise RuntimeError(
                "the ledger's watch fell behind compaction: its counts would be incomplete"
            ) from None

    def terminal(self, task_id: str) -> bool:
        return task_id in self.commits

    async def wait(self, ids: set[str], timeout: float) -> set[str]:
        """Until every task of ``ids`` is committed terminal, or ``timeout`` s; returns those
        still not terminal."""
        loop = asyncio.get_running_loop()
        pending = [
            self._waiting.setdefault(i, loop.create_future()) for i in ids if i not in self.commits
        ]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return {i for i in ids if i not in self.commits}

    def stall(self, since: float, until: float) -> float:
        """The longest time between ``since`` and ``until`` in which no task was committed."""
        ends = sorted(
            c.finished_at
            for cs in self.commits.values()
            for c in cs
            if since <= c.finished_at <= until
        )
        marks = [since, *ends, until]
        return max((b - a for a, b in itertools.pairwise(marks)), default=0.0)


def read_runs(path: Path) -> dict[str, list[Run]]:
    """Task id → its executions, in start order."""
    starts: dict[str, dict[str, Run]] = defaultdict(dict)
    if not path.exists():
        return {}
    for line in path.read_text().splitlines():
        event, task_id, run, pid, region, at = line.split()
        if event == "start":
            starts[task_id][run] = Run(run, int(pid), region, float(at), None)
        elif run in starts[task_id]:
            r = starts[task_id][run]
            starts[task_id][run] = Run(r.run, r.pid, r.region, r.started, float(at))
    return {t: sorted(rs.values(), key=lambda r: r.started) for t, rs in starts.items()}


def _run_of(result: bytes) -> str:
    """The run a committed result names (the chaos workload returns it)."""
    try:
        return str(json.loads(result)["run"])
    except (ValueError, KeyError, TypeError):
        return "?"


@dataclass
class Final:
    """Every task's state at the end, from etcd, with its commits and runs."""

    records: dict[str, TaskRecord]
    done_keys: Counter[str]  # done-index entries per task
    results: dict[str, str]  # task id → the run id its committed result names
    runs: dict[str, list[Run]]
    commits: dict[str, list[Commit]] = field(default_factory=dict)

    def committed(self, task_id: str) -> int:
        return max(self.done_keys[task_id], len(self.commits.get(task_id, ())))

    def foreign(self, task_id: str) -> bool:
        """Succeeded, but its result names no recorded run of it."""
        r = self.records.get(task_id)
        if r is None or r.state is not State.SUCCEEDED:
            return False
        return self.results.get(task_id) not in {x.run for x in self.runs.get(task_id, ())}


async def final(queue: Queue, ledger: Ledger, runs: Path) -> Final:
    root = queue.root
    records: dict[str, TaskRecord] = {}
    done: Counter[str] = Counter()
    results: dict[str, str] = {}
    for p in ledger.partitions:
        etcd = queue.etcd(p)
        prefix = keys.tasks(root, p)
        for kv in (await etcd.range_all(prefix, keys.prefix_end(prefix)))[0]:
            r = decode(kv.value)
            records[r.id] = r
            if r.result_inline is not None:  # a small result lives in the record
                results[r.id] = _run_of(r.result_inline)
        prefix = keys.done_all(root, p)
        kvs, _ = await etcd.range_all(prefix, keys.prefix_end(prefix), keys_only=True)
        done.update(keys.task_id_of(kv.key) for kv in kvs)
        prefix = keys.result(root, p, "")
        for kv in (await etcd.range_all(prefix, keys.prefix_end(prefix)))[0]:
            results[keys.task_id_of(kv.key)] = _run_of(kv.value)
    return Final(
        records, done, results, await asyncio.to_thread(read_runs, runs), dict(ledger.commits)
    )
