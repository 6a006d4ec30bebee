"""A session: one etcd lease kept alive in the background, with a ``lost`` signal.

Everything a process holds in etcd (claims, registrations, heartbeats) hangs off its session's
lease, so a SIGKILLed process lets go of it all within one TTL. One lease per process and cluster,
not per key: a lease grant is a Raft write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType

from federation.aio import cancel_and_wait
from federation.errors import Unavailable
from federation.etcd import Etcd

log = logging.getLogger(__name__)


class Session:
    def __init__(self, etcd: Etcd, ttl: int = 5) -> None:
        if ttl < 2:
            raise ValueError(f"session ttl = {ttl}, must be ≥ 2 seconds")
        self.etcd = etcd
        self.ttl = ttl
        self.lost = asyncio.Event()
        self._lease: int | None = None
        self._keeper: asyncio.Task[None] | None = None

    @property
    def lease(self) -> int:
        if self._lease is None:
            raise RuntimeError("session not started")
        return self._lease

    async def start(self) -> Session:
        self._lease = await self.etcd.grant(self.ttl)
        self._keeper = asyncio.create_task(self._keep_alive(), name=f"lease-{self._lease:x}")
        return self

    async def _keep_alive(self) -> None:
        # Refresh three times per TTL; the lease is lost once a whole TTL passed without a
        # successful refresh (etcd may have expired it) or etcd says it is gone.
        expires = time.monotonic() + self.ttl
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                remaining = await self.etcd.keepalive(self.lease, within=self.ttl / 3)
            except Unavailable as e:
                if time.monotonic() >= expires:
                    log.warning("lease %x lost: no refresh for %d s (%s)", self.lease, self.ttl, e)
                    self.lost.set()
                    return
                continue
            if remaining <= 0:
                log.warning("lease %x lost: etcd expired it", self.lease)
                self.lost.set()
                return
            expires = time.monotonic() + remaining

    async def close(self) -> None:
        """Stop refreshing and revoke the lease, releasing everything attached to it at once."""
        if self._keeper is not None:
            await cancel_and_wait([self._keeper])
            self._keeper = None
        if self._lease is not None and not self.lost.is_set():
            with contextlib.suppress(Unavailable):
                await self.etcd.revoke(self._lease)
        self.lost.set()

    async def __aenter__(self) -> Session:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
