"""Leader election on real etcd: a standby waits on the leader key with one watch, also once the
history behind that key has been compacted away (it used to retry its txn ~10 times a second)."""

from __future__ import annotations

import asyncio

from federation.aio import cancel_and_wait
from federation.election import campaign, resign
from federation.etcd import Etcd
from federation.session import Session
from spillover.local.etcd import LocalEtcd
from tests.waiting import until


async def test_a_standby_waits_quietly_past_a_compaction_and_leads_when_the_leader_goes(
    fresh_etcd: LocalEtcd,
) -> None:
    leader, standby = Etcd(fresh_etcd.endpoints), Etcd(fresh_etcd.endpoints)
    key = b"/t/leaders/us-east-1"
    async with Session(leader) as held, Session(standby) as waiting:
        await campaign(leader, key, b"A", held)
        for i in range(5):  # history after the leader key, then compacted past it
            await leader.put(b"/t/x", str(i).encode())
        _, revision, _ = await leader.range(b"\0", b"\0", limit=1)
        await leader.compact(revision)
        txns = 0
        real = standby.txn

        async def counted(*args: object, **kw: object) -> object:
            nonlocal txns
            txns += 1
            return await real(*args, **kw)  # type: ignore[arg-type]

        standby.txn = counted  # type: ignore[method-assign]
        campaigning = asyncio.create_task(campaign(standby, key, b"B", waiting))
        try:
            await asyncio.sleep(1.0)  # what a busy loop would show: a txn every ~0.1 s
            assert txns == 1 and not campaigning.done()
            await resign(leader, key, b"A")
            await until(campaigning.done, timeout=10)
            campaigning.result()
        finally:
            await cancel_and_wait([campaigning])
    await leader.close()
    await standby.close()
