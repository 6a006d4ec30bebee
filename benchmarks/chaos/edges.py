"""Faults at the edges: an edge SIGKILLed with requests in flight (5), an event stream longer than
the keep-alive (12), hostile input (13)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.chaos.harness import APP, ROOT, Shape
from benchmarks.chaos.load import Submit
from benchmarks.chaos.report import Outcome
from benchmarks.chaos.rig import rig
from federation.apikeys import ApiKeys, Grant

# -- 5. an edge SIGKILLed with requests in flight ----------------------------------------------


@dataclass(frozen=True)
class EdgeForm:
    keys: int  # distinct Idempotency-Keys, half submitted sync, half async
    spread: float  # s over which they are sent; the edge dies halfway
    shape: Shape


EDGE = {
    True: EdgeForm(60, 1.0, Shape(agents=1, replicas=1, slots=32, edges=2, lease_ttl=2)),
    False: EdgeForm(300, 2.0, Shape(agents=1, replicas=2, slots=32, edges=2, lease_ttl=5)),
}


async def edge(tmp: Path, short: bool) -> Outcome:
    """Clients send through edge 0, half synchronously (their answer is the result, 1-2 s later),
    half async; edge 0 is SIGKILLed halfway through. A client whose connection broke retries
    through edge 1 with the same Idempotency-Key."""
    form, rng, out = EDGE[short], random.Random(5), Outcome()
    async with rig(tmp, form.shape) as r:
        killed: list[float] = []

        async def client(i: int) -> Submit:
            await asyncio.sleep(form.spread * i / form.keys)
            args = {"seconds": round(rng.uniform(1.0, 2.0), 3)}
            return await r.load.submit("sleep", args, sync=i % 2 == 0, edge=0, patience=60)

        async def kill() -> None:
            await asyncio.sleep(form.spread / 2)
            killed.append(time.time())
            await r.fed.kill_edge(0)

        submits, _ = await asyncio.gather(
            asyncio.gather(*(client(i) for i in range(form.keys))), kill()
        )
        end = await r.settle(out, patience=60)
        per_key = Counter(x.idempotency_key for x in end.records.values())
        keys = [s.key for s in submits]
        out.check(
            "exactly one task per Idempotency-Key",
            all(per_key[k] == 1 for k in keys),
            f"{sum(per_key[k] > 1 for k in keys)} keys with more, "
            f"{sum(per_key[k] == 0 for k in keys)} with none",
        )
        unanswered = [s for s in submits if s.task_id is None]
        out.check("every key acknowledged (through the other edge if need be)", not unanswered,
                  f"{len(unanswered)} never acknowledged")  # fmt: skip
        broke = [s for s in submits if any(st == 0 for _, st, _ in s.answers)]
        late = [s.acked_at - killed[0] for s in broke if s.acked_at is not None]
        out.recover = max(late, default=None)
        sync_broke = sum(s.sync for s in broke)
        out.notes.append(
            f"{form.keys} keys over {form.spread:g} s, edge 0 SIGKILLed at "
            f"{form.spread / 2:g} s: {len(broke)} requests cut ({sync_broke} sync, "
            f"{len(broke) - sync_broke} async) and retried through edge 1; time to recover: from "
            f"the kill until the last cut request was acknowledged"
        )
    return out


# -- 12. an event stream longer than the keep-alive --------------------------------------------


@dataclass(frozen=True)
class SseForm:
    seconds: float  # the talkative task: progress every ``every`` s for this long
    every: float
    quiet: float  # the quiet task: one step, then silence this long (past the 15 s keep-alive)
    shape: Shape


SSE = {
    True: SseForm(16, 4, 16.5, Shape(agents=1, replicas=1, slots=4)),
    False: SseForm(60, 5, 40, Shape(agents=1, replicas=1, slots=4, lease_ttl=5)),
}


async def sse(tmp: Path, short: bool) -> Outcome:
    """Two tasks followed over ``GET /v1/tasks/{id}/events``: one reports progress every few
    seconds for a minute; the other reports once, then runs silent past the stream's 15 s
    keep-alive. Each stream must carry every progress step and the final state, then end."""
    form, out = SSE[short], Outcome()
    async with rig(tmp, form.shape) as r:
        talk = {"seconds": form.seconds, "every": form.every}
        quiet = {"seconds": 1.0, "every": 1.0, "quiet": form.quiet}
        jobs = [await r.load.submit("progress", a) for a in (talk, quiet)]
        limit = form.seconds + form.quiet + 30
        url = r.fed.edges[0].url
        streams = await asyncio.gather(
            *(_follow(r.load.session, url, s.task_id or "", limit) for s in jobs)
        )
        await r.settle(out, patience=30)
        for name, (args, (events, ended, why)) in zip(
            ("talkative", "quiet"), zip((talk, quiet), streams, strict=True), strict=True
        ):
            steps = max(1, round(args["seconds"] / args["every"]))
            fractions = {e["fraction"] for kind, e in events if kind == "progress"}
            final = [e for kind, e in events if kind == "state" and e["state"] == "succeeded"]
            out.check(
                f"the {name} task's stream carries every progress step and the final state",
                len(fractions) == steps and bool(final),
                f"{len(fractions)} of {steps} steps, final state {'in' if final else 'missing'}, "
                f"stream {why} after {ended:.1f} s",
            )
        out.notes.append(
            f"talkative: progress every {form.every:g} s for {form.seconds:g} s; quiet: one "
            f"step, then {form.quiet:g} s of silence (the edge's keep-alive is 15 s)"
        )
    return out


async def _follow(
    http: aiohttp.ClientSession, base: str, task_id: str, limit: float
) -> tuple[list[tuple[str, dict[str, Any]]], float, str]:
    """The stream's events, how long it lasted, and how it ended."""
    events: list[tuple[str, dict[str, Any]]] = []
    started = time.monotonic()
    why = "ended"
    try:
        async with asyncio.timeout(limit):
            async with http.get(f"{base}/v1/tasks/{task_id}/events") as resp:
                kind = ""
                async for raw in resp.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        events.append((kind, json.loads(line[6:])))
    except TimeoutError:
        why = f"still open after {limit:g} s"
    except aiohttp.ClientError as e:
        why = f"broke ({e})"
    return events, time.monotonic() - started, why


# -- 13. hostile input ------------------------------------------------------------------------


@dataclass(frozen=True)
class HostileForm:
    examples: int  # per operation and pass
    shape: Shape


_GUARDED = Shape(agents=1, replicas=1, slots=4, auth=True, scaling={"max_payload_bytes": 4096})
HOSTILE = {True: HostileForm(6, _GUARDED), False: HostileForm(50, _GUARDED)}


async def hostile(tmp: Path, short: bool) -> Outcome:
    """schemathesis over the edge's own ``/openapi.json`` (valid and invalid data, every
    operation), with the headers a hostile client plays with added to every operation
    (``Authorization``, ``X-Spillover-*``, ``Idempotency-Key``), with and without a valid key;
    then oversize bodies and headers by hand. No answer may be a 5xx."""
    from benchmarks.chaos.fuzz import fuzz, oversize

    form, out = HOSTILE[short], Outcome()
    async with rig(tmp, form.shape) as r:
        # Every app, not admin: fuzzed deploys are refused, so no junk app starts replicas.
        grant = Grant(name="chaos", apps=("*",))
        key = await ApiKeys(r.fed.clusters.control, ROOT).create(grant)
        base = r.fed.edges[0].url
        seen = await asyncio.to_thread(fuzz, base, key, form.examples)
        seen += await oversize(r.load.session, base, key, APP)
        out.submitted = len(seen)
        errors = [s for s in seen if s.status >= 500]
        out.server_errors = len(errors)
        out.answers.update(f"{s.status}" for s in seen)
        out.check("no 5xx", not errors, "; ".join(str(s) for s in errors[:3]))
        hung = [s for s in seen if s.status == 0]
        out.check("every request answered", not hung, "; ".join(str(s) for s in hung[:3]))
        plain = [s for s in seen if s.status >= 400 and not s.json_error]
        out.notes.append(
            f"{len(seen)} requests ({form.examples} examples per operation and pass); error "
            f"answers that were not the JSON error body: {len(plain)}"
            + (f" (e.g. {plain[0]})" if plain else "")
        )
    return out
