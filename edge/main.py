"""``spillover edge --config edge.toml``: run one edge."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import uvloop
from aiohttp import log as web_log
from aiohttp import web

from edge.app import create_app
from edge.client import choose_database
from edge.config import EdgeConfig
from edge.tls import server_context
from federation.topology import load_config


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="spillover edge", description=__doc__)
    ap.add_argument("--config", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = load_config(EdgeConfig, args.config, os.environ)
    # Resolved here, where the environment is read: create_app opens exactly this one.
    config = config.model_copy(update={"geoip_db": choose_database(config.geoip_db, os.environ)})
    # run_app installs the signal handlers and shuts down through AppRunner.cleanup().
    web.run_app(
        create_app(config), host=config.host, port=config.port,
        ssl_context=server_context(config), loop=uvloop.new_event_loop(),
        shutdown_timeout=config.drain_grace + 5,  # sync waits answer 202 after drain_grace
        keepalive_timeout=config.idle_timeout,
        access_log=web_log.access_logger if config.access_log else None,
    )  # fmt: skip


if __name__ == "__main__":
    main()
