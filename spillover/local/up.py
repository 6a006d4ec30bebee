"""``spillover up``: a whole federation on one machine — etcd, one agent per region (each with its
replicas), one edge — with an app deployed: the demo that ships in the package unless ``--app``
names another. Ctrl-C stops everything; data and logs stay under ``--data``.

The regions and the edge run as ``spillover region`` / ``spillover edge`` processes from config
files written here, exactly as an operator would run them, so what works here works deployed.
Their replicas import handlers from the directory ``spillover up`` runs in (their ``app_root``)
or from installed packages (the demo's ``spillover.demo.app``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import signal
import sys
import time
import urllib.request
from importlib import resources
from pathlib import Path

from federation.apikeys import ApiKeys, Grant
from federation.apps import AppRegistry
from federation.appspec import AppSpec, parse_toml
from federation.errors import InvalidConfig, Unavailable
from federation.etcd import Etcd
from federation.etcd_certs import write_private
from federation.etcd_rbac import AGENT, EDGE, ROOT, known_holes
from federation.etcd_tls import EtcdTls
from federation.keys import DEFAULT_ROOT
from federation.topology import EtcdConfig
from regional.config import RegionConfig
from spillover.local.auth import LocalAuth
from spillover.local.configs import (
    DEFAULT_REGIONS,
    QUOTA,
    Region,
    edge_config,
    etcd_config,
    parse_region,
    region_config,
    write_toml,
)
from spillover.local.etcd import LocalEtcd, etcd_version
from spillover.local.processes import Processes

DEMO = "spillover.demo"  # the package that holds the demo app and its spillover.toml


def demo_spec() -> str:
    """The demo's ``spillover.toml``, from the installed package (any working directory)."""
    return resources.files(DEMO).joinpath("spillover.toml").read_text()


async def admin_key(endpoints: list[str], path: Path, tls: EtcdTls | None = None) -> str:
    """A fresh admin key (the one of an earlier run is revoked), written to ``path`` (0600)."""
    etcd = Etcd(endpoints, tls=tls)
    store = ApiKeys(etcd, DEFAULT_ROOT)
    try:
        if any(g.name == "admin" for g in await store.list()):
            await store.revoke("admin")
        key = await store.create(Grant(name="admin", admin=True))
    finally:
        await etcd.close()
    await asyncio.to_thread(write_private, path, (key + "\n").encode())
    return key


async def deploy_and_wait(
    endpoints: list[str],
    spec: AppSpec,
    regions: list[Region],
    edge_url: str,
    timeout: float,
    key: str | None = None,
    tls: EtcdTls | None = None,
) -> None:
    """Deploy the app into every region (as the admin: straight to etcd), then wait until the
    edge is ready and every region serves it."""
    placement = spec.placement.model_copy(update={"regions": tuple(r.name for r in regions)})
    spec = spec.model_copy(update={"placement": placement})
    etcd = Etcd(endpoints, tls=tls)
    try:
        await AppRegistry(etcd, DEFAULT_ROOT).put(spec)
    finally:
        await etcd.close()
    deadline = time.monotonic() + timeout
    while True:
        serving = await asyncio.to_thread(_serving, edge_url, spec.name, key)
        if serving >= {r.name for r in regions}:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{spec.name} not serving in every region after {timeout:.0f} s")
        await asyncio.sleep(0.5)


def _serving(edge_url: str, app: str, key: str | None) -> set[str]:
    """Regions where ``app`` has a ready replica, as the edge's health API says."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(f"{edge_url}/v1/federation/health", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as r:
            health = json.loads(r.read())
    except OSError:
        return set()
    return {
        region["name"]
        for region in health["regions"]
        for load in region["apps"]
        if load["app"] == app and load["ready_replicas"] > 0
    }


def banner(
    agents: list[RegionConfig], app: str, demo: bool, edge_url: str, data: Path, auth: bool
) -> str:
    names = ", ".join(a.name for a in agents)
    regions = f"{len(agents)} region{'s' if len(agents) > 1 else ''}"
    keyed = (f"\nAPI keys and etcd RBAC are on. The admin key is in {data / 'admin.key'};\n"
             f"{data / 'admin.env'} makes a shell the admin (API key, etcd root certificate):\n"
             f"  . {data / 'admin.env'}\n"
             f"  curl -H \"Authorization: Bearer $SPILLOVER_API_KEY\" ...\n"
             f"  spillover keys create NAME --apps {app}\n"
             f"  spillover deploy --etcd spillover.toml   # edges may not write apps\n"
             f"{_holes()}") if auth else ""  # fmt: skip
    metrics = " ".join(f"{a.name}=:{a.metrics_port}" for a in agents)
    inputs = ", ".join(["0.5"] * 16)
    calls = (f"  curl -s {edge_url}/v1/apps/demo/predict -d '{{\"inputs\": [[{inputs}]]}}'\n"
             f"  curl -s {edge_url}/v1/apps/demo/sleep -d '{{\"seconds\": 2}}'\n"
             f"  curl -si '{edge_url}/v1/apps/demo/sleep?async=true' -d '{{\"seconds\": 5}}'\n"
             f"  curl -s -H 'X-Forwarded-For: 81.2.69.142' {edge_url}/v1/apps/demo/echo -d hi"
             "  # from London\n") if demo else (
             f"  curl -s {edge_url}/v1/apps/{app}/FUNCTION -d '{{...}}'\n"
             f"  spillover run {app}/FUNCTION '{{...}}' --url {edge_url}\n")  # fmt: skip
    return f"""
Spillover is up: {regions} ({names}), one edge at {edge_url}, serving {app}

{calls}  spillover status --edge {edge_url}

Metrics: {edge_url}/metrics, regions {metrics}
Dashboard: {edge_url}/dashboard
GeoIP: the edge's log says which database places clients ({data}/logs/edge.log)
More apps: spillover init NAME here, then spillover deploy NAME/spillover.toml --edge {edge_url}
Logs and data: {data}/   Ctrl-C stops everything.{keyed}
"""


def _holes() -> str:
    version = etcd_version()
    n = len(known_holes(version))
    return (
        f"WARNING: etcd {version} has {n} known RBAC holes (above; docs/security.md)\n" if n else ""
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="spillover up", description=__doc__)
    ap.add_argument(
        "--regions", nargs="+", type=parse_region, default=None, metavar="NAME=LAT,LON",
        help="default: " + " ".join(DEFAULT_REGIONS),
    )  # fmt: skip
    ap.add_argument("--port", type=int, default=8080, help="the edge's port (default 8080)")
    ap.add_argument("--etcd-port", type=int, default=2379, help="etcd's client port")
    ap.add_argument("--data", type=Path, default=Path(".spillover"), help="data and logs")
    ap.add_argument(
        "--app", type=Path, default=None, metavar="SPILLOVER_TOML",
        help="the app to deploy (default: the demo that ships in the package); its handler is "
        "imported from this directory or from an installed package",
    )  # fmt: skip
    ap.add_argument("--ready-timeout", type=float, default=300.0)
    ap.add_argument(
        "--auth", action="store_true",
        help="API keys on (the admin key in <data>/admin.key) and etcd as deployed: TLS "
        "client certificates per process kind (<data>/tls) and the RBAC roles",
    )  # fmt: skip
    args = ap.parse_args(argv)
    regions: list[Region] = args.regions or [parse_region(r) for r in DEFAULT_REGIONS]
    if len({r.name for r in regions}) != len(regions):
        ap.error("--regions: each region once")
    try:
        spec = parse_toml(demo_spec() if args.app is None else args.app.read_text())
    except OSError as e:
        ap.error(f"--app: {e}")
    except InvalidConfig as e:
        ap.error(f"--app: {args.app}: {e.message}")
    if args.app is None and importlib.util.find_spec("torch") is None:
        ap.error("the demo app's model needs torch: pip install 'spillover[model]' "
                 "(or deploy your own app with --app)")  # fmt: skip
    if shutil.which("etcd") is None:
        sys.exit("spillover up: etcd is not on PATH (Debian: apt-get install etcd-server)")
    data: Path = args.data.resolve()
    if not args.auth and LocalAuth.was_on(data):
        ap.error(f"--data {data} was last run with --auth (its etcd refuses plain clients): "
                 "add --auth, or use another --data")  # fmt: skip
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sys.exit(run(args, regions, spec, data, logs))


def run(
    args: argparse.Namespace, regions: list[Region], spec: AppSpec, data: Path, logs: Path
) -> int:
    # Every child is spawned before the first etcd client exists: preexec_fn (die with us) is
    # only safe while this process has no gRPC threads.
    auth = LocalAuth.prepare(data) if args.auth else None
    etcd = LocalEtcd(
        data / "etcd", first_port=args.etcd_port, die_with_parent=True, quota_bytes=QUOTA,
        tls=auth.server() if auth else None,
    )  # fmt: skip
    procs = Processes(logs)
    stop = asyncio.Event()
    try:
        print(f"etcd on {etcd.endpoints[0]} (data {data / 'etcd'})", flush=True)
        etcd.start()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if auth is not None:
            auth.apply_rbac(etcd.endpoints)
            # Giving space back is root's alone with RBAC on: the agents' keepers stand down.
            admin_env = {**env, **auth.admin_env(etcd.endpoints)}
            procs.spawn("keeper", ["etcd-keeper", "--quota-bytes", str(QUOTA)], admin_env)

        def etcd_of(user: str) -> EtcdConfig:
            return etcd_config(etcd.endpoints, auth.tls(user) if auth else None)

        agents = [region_config(r, regions, data, etcd_of(AGENT), Path.cwd()) for r in regions]
        for agent in agents:
            config = write_toml(agent, data / f"{agent.name}.toml")
            procs.spawn(agent.name, ["region", "--config", str(config)], env)
        edge = edge_config(regions, data, etcd_of(EDGE), args.port, auth=auth is not None)
        procs.spawn("edge", ["edge", "--config", str(write_toml(edge, data / "edge.toml"))], env)
        admin = auth.tls(ROOT) if auth else None
        demo = args.app is None

        async def serve() -> int:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            print("starting regions and loading models...", flush=True)
            key = None
            if auth is not None:
                key = await admin_key(etcd.endpoints, data / "admin.key", admin)
                auth.write_env(data / "admin.env", etcd.endpoints, key)
            ready = asyncio.create_task(
                deploy_and_wait(
                    etcd.endpoints, spec, regions, edge.url, args.ready_timeout, key, admin
                )
            )
            announced = False
            while not stop.is_set():
                for dead in procs.exited():
                    print(f"spillover up: {dead} exited; see {logs / dead}.log", file=sys.stderr)
                    if dead == "edge":
                        return 1
                    # A region going away is what the federation is for: the rest carry on,
                    # and its unpinned tasks spill over (a fault to try on purpose, too).
                if not announced and ready.done():
                    ready.result()  # raises what went wrong
                    text = banner(agents, spec.name, demo, edge.url, data, args.auth)
                    print(text, flush=True)
                    announced = True
                await asyncio.sleep(0.2)
            return 0

        try:
            code = asyncio.run(serve())
        except (Unavailable, TimeoutError) as e:
            print(f"spillover up: {e}", file=sys.stderr)
            code = 1
        print("stopping...", flush=True)
        return code
    finally:
        procs.stop()
        for i in range(len(etcd.members)):
            etcd.stop(i)
