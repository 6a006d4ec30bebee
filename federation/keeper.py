"""``spillover etcd-keeper``: the storage keeper (``storage.py``) as a process of its own.

With etcd RBAC on, defragmenting a member and disarming its NOSPACE alarm are the root user's
alone (etcd refuses every other user), so no edge or agent can give space back. This process
holds the admin certificate and keeps one cluster: in the Terraform deployment each etcd node
runs one for its own cluster (an etcd node holds every key anyway, so the root certificate
gives it nothing more), and ``spillover up --auth`` runs one beside the agents. Several
keepers of one cluster elect one (the ``storage-keeper`` key) and the others wait.

It connects as ``SPILLOVER_ETCD_ENDPOINTS`` with ``SPILLOVER_ETCD_CACERT``, ``_CERT`` and
``_KEY``, like ``spillover keys``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket

import uvloop

from federation.etcd import Etcd
from federation.session import Session
from federation.storage import StorageGuard, StorageKeeper
from federation.topology import Clusters, EtcdConfig


async def keep(config: EtcdConfig, me: str) -> None:
    """Watch the cluster's space and give it back while elected, until cancelled."""
    clusters = Clusters(config)
    guard = StorageGuard(clusters)
    sessions: dict[str, Session] = {}

    async def session(name: str, etcd: Etcd) -> Session:
        s = sessions.get(name)
        if s is None or s.lost.is_set():
            s = sessions[name] = await Session(etcd).start()
        return s

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(guard.run())
            for name, etcd in clusters.named().items():
                keeper = StorageKeeper(guard, name, etcd, functools.partial(session, name, etcd))
                tg.create_task(keeper.run(me.encode()))
    finally:
        for s in sessions.values():
            await s.close()
        await clusters.close()


async def _serve(config: EtcdConfig, me: str) -> None:
    task = asyncio.create_task(keep(config, me))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="spillover etcd-keeper", description=__doc__)
    ap.add_argument("--quota-bytes", type=int, default=EtcdConfig().quota_bytes,
                    help="the cluster's --quota-backend-bytes (default 2 GiB)")  # fmt: skip
    ap.add_argument("--id", default=f"keeper-{socket.gethostname()}-{os.getpid()}",
                    help="this keeper's name in the election")  # fmt: skip
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = EtcdConfig.from_env(os.environ, quota_bytes=args.quota_bytes)
    uvloop.run(_serve(config, args.id))


if __name__ == "__main__":
    main()
