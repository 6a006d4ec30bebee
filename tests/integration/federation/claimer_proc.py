"""A claimer in its own process, for fault tests: claims one task, says so, then waits for a
line on stdin ("complete") and reports whether its fenced write went through."""

from __future__ import annotations

import asyncio
import sys

from federation.errors import NotClaimer
from federation.queue import Claimer, Queue
from federation.ready import ReadyView
from federation.topology import Clusters, EtcdConfig


async def main(endpoints: str, root: str, partition: str, ttl: int) -> None:
    clusters = Clusters(EtcdConfig(endpoints=tuple(endpoints.split(",")), root=root))
    queue = Queue(clusters)
    claimer = Claimer(f"proc-{id(clusters):x}", partition, ttl=ttl)
    view = ReadyView(queue, "demo", [partition])
    follower = asyncio.create_task(view.run())
    claims = []
    while not claims:
        await view.changed.wait()
        view.changed.clear()
        claims = await view.claim(claimer, 1)
    print(f"claimed {claims[0].record.id}", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() == "complete":
        try:
            await queue.complete(claims[0], b"from-zombie", "text/plain")
            print("committed", flush=True)
        except NotClaimer:
            print("refused", flush=True)
    follower.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
