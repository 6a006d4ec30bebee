"""``spillover region --config region.toml``: the entry point of one region's agent."""

from __future__ import annotations

import os

# The agent forks only to exec its replicas. grpcio's core runs fork handlers by default (its
# Python layer does not), and a replica forked while other threads were in gRPC died of SIGSEGV
# before exec: 5 of 83 starts under repeated replica kills, 0 of 67 with them off. Set here,
# before anything below loads grpc, and only in the agent (not in whoever imports the handler
# API); an explicit setting of the operator's wins.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

import uvloop
from prometheus_client import CollectorRegistry, start_http_server

from federation.metrics import FederationMetrics
from federation.topology import Clusters, load_config
from regional.agent import Agent
from regional.config import RegionConfig
from regional.metrics import RegionMetrics
from regional.replicas import LocalProcessProvider


async def serve(config: RegionConfig) -> None:
    registry = CollectorRegistry()
    clusters = Clusters(config.etcd, FederationMetrics(registry))
    metrics = RegionMetrics(registry, config.name)
    if config.metrics_port is not None:
        start_http_server(config.metrics_port, "127.0.0.1", registry)
    provider = LocalProcessProvider(config.app_root.resolve(), replica_user=config.replica_user)
    agent = Agent(config, clusters, provider, metrics=metrics)
    task = asyncio.create_task(agent.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    provider.close()
    await clusters.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="spillover region", description=__doc__)
    ap.add_argument("--config", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    uvloop.run(serve(load_config(RegionConfig, args.config, os.environ)))


if __name__ == "__main__":
    main()
