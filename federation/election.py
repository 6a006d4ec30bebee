"""Leader election on an etcd lease: one decider per region.

The leader key is created only if absent, under the candidate's session lease, so it vanishes
when the leader dies and the next candidate takes it within one TTL. Not a lock without
fencing: a leader that lost its lease (``session.lost``) must stop acting before anyone else
can be elected, since the key only goes away when that lease expires.
"""

from __future__ import annotations

from federation.etcd import Compacted, Etcd, absent, delete, get, put, value_is
from federation.session import Session


async def campaign(etcd: Etcd, key: bytes, me: bytes, session: Session) -> None:
    """Return once this session holds ``key``; until then, wait for the holder to go."""
    while True:
        result = await etcd.txn([absent(key)], [put(key, me, lease=session.lease)], [get(key)])
        if result.succeeded:
            return
        # Watch from now (a read's revision), not from the holder's mod revision: a leader key
        # older than the last compaction would make that watch fail on every try.
        kvs, revision, _ = await etcd.range(key, key + b"\0", limit=1, keys_only=True)
        if not kvs:
            continue  # it went between the txn and the read
        try:
            async for event in etcd.watch(key, revision + 1):
                if event.kind == "delete" and event.kv.key == key:
                    break
        except Compacted:
            continue  # compacted between the read and the watch: look again


async def resign(etcd: Etcd, key: bytes, me: bytes) -> None:
    """Give up leadership at once (on shutdown), if still held."""
    await etcd.txn([value_is(key, me)], [delete(key)])
