"""The etcd adapter against real etcd: what the queue's design leans on."""

from __future__ import annotations

import pytest

from federation import keys
from federation.etcd import PAGE, Etcd, put
from spillover.local.etcd import LocalEtcd

pytestmark = pytest.mark.slow


async def test_a_range_of_large_values_is_read_whole_in_smaller_pages(
    etcd1: LocalEtcd, root: str
) -> None:
    # A page of PAGE records of 7 KiB (a long Content-Type in each) is ~7 MB: over gRPC's 4 MiB
    # receive limit, so a fixed page size wedged the agent's queue listing and the reaper.
    etcd = Etcd(etcd1.endpoints)
    prefix = f"{root}/big/".encode()
    value = b"x" * 7000
    n = PAGE + 200
    for i in range(0, n, 100):
        await etcd.txn([], [put(prefix + b"%06d" % j, value) for j in range(i, i + 100)])
    kvs, _ = await etcd.range_all(prefix, keys.prefix_end(prefix))
    assert len(kvs) == n and all(kv.value == value for kv in kvs)
    assert [kv.key for kv in kvs] == sorted(kv.key for kv in kvs)
    # A page asked for with a limit comes shorter, and says there is more (the queue's heads
    # and the reaper read so).
    page, _, more, count = await etcd.page(prefix, keys.prefix_end(prefix), limit=PAGE)
    assert 0 < len(page) < PAGE and more and count == n
    await etcd.close()
