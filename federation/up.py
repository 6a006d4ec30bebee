"""``spillover up``: a whole federation on one machine — etcd, one agent per region (each with its
replicas), one edge — with the example app deployed. Ctrl-C stops everything; data and logs stay
under ``.spillover/``.

The regions and the edge run as ``spillover region`` / ``spillover edge`` processes from config
files written here, exactly as an operator would run them, so what works here works deployed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from federation.apikeys import ApiKeys, Grant
from federation.apps import AppRegistry
from federation.appspec import NAME_PATTERN, parse_toml
from federation.errors import InvalidConfig, Unavailable
from federation.etcd import Etcd
from federation.etcd_certs import write_private
from federation.etcd_rbac import AGENT, EDGE, ROOT, known_holes
from federation.etcd_server import LocalEtcd, etcd_version, free_port
from federation.etcd_tls import EtcdTls
from federation.keys import DEFAULT_ROOT
from federation.local_auth import LocalAuth
from federation.proc import die_with_parent

DEFAULT_REGIONS = ["us-east-1=39.0,-77.5", "eu-west-1=53.3,-6.3", "ap-south-1=19.1,72.9"]
APP = Path("examples/demo/spillover.toml")
# etcd's --quota-backend-bytes here, and what the edge and agents measure its space against.
QUOTA = 2 << 30


@dataclass(frozen=True)
class Region:
    name: str
    lat: float
    lon: float


def parse_region(text: str) -> Region:
    """``name=lat,lon``, e.g. ``us-east-1=39.0,-77.5``."""
    try:
        name, coords = text.split("=")
        lat, lon = (float(x) for x in coords.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected name=lat,lon") from None
    if not re.fullmatch(NAME_PATTERN, name) or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError(f"{text!r}: a region name and lat/lon in range")
    return Region(name, lat, lon)


def write_configs(
    data: Path,
    regions: list[Region],
    endpoints: list[str],
    port: int,
    app_root: Path,
    auth: LocalAuth | None = None,
) -> dict[str, Path]:
    """One ``region.toml`` per region and an ``edge.toml``: what an operator would write. With
    ``auth``, each kind connects to etcd with its own certificate (its RBAC user)."""

    def etcd_of(user: str) -> dict[str, Any]:
        etcd: dict[str, Any] = {"endpoints": endpoints, "quota_bytes": QUOTA}
        if auth is not None:
            etcd["tls"] = {k: str(v) for k, v in auth.tls(user).model_dump().items()}
        return etcd

    files = {}
    for r in regions:
        config = {
            "name": r.name, "lat": r.lat, "lon": r.lon,
            "peers": [p.name for p in regions if p != r],  # take any region's tasks: spillover
            "app_root": str(app_root), "etcd": etcd_of(AGENT), "metrics_port": free_port(),
            "blobs": {"dir": str((data / "blobs" / r.name).resolve())},
            "webhook_private_targets": True,  # local development: receivers on this machine
        }  # fmt: skip
        files[r.name] = data / f"{r.name}.toml"
        files[r.name].write_text(tomli_w.dumps(config))
    edge: dict[str, Any] = {
        "id": "edge-0",
        "region": regions[0].name,
        "port": port,
        "auth": auth is not None,  # local development: no API keys, unless --auth
        "allow_http_webhooks": True,
        "regions": [{"name": r.name, "lat": r.lat, "lon": r.lon} for r in regions],
        "etcd": etcd_of(EDGE),
        "blobs": {"dir": str((data / "blobs" / "edge-0").resolve())},
    }
    files["edge"] = data / "edge.toml"
    files["edge"].write_text(tomli_w.dumps(edge))
    return files


class Processes:
    """The federation's processes; each dies with this one even if it is SIGKILLed."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.gone: set[str] = set()

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.running[name] = subprocess.Popen(
            [sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT, env=env,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )  # fmt: skip
        log.close()

    def exited(self) -> list[str]:
        """Processes that exited since the last call."""
        gone = [n for n, p in self.running.items() if p.poll() is not None and n not in self.gone]
        self.gone.update(gone)
        return gone

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM all (agents drain and stop their replicas), SIGKILL what is left after
        ``grace`` seconds."""
        for p in self.running.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.running.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


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
    spec_text: str,
    regions: list[Region],
    edge_url: str,
    timeout: float,
    key: str | None = None,
    tls: EtcdTls | None = None,
) -> None:
    """Deploy the app into every region (as the admin: straight to etcd), then wait until the
    edge is ready and every region serves it."""
    spec = parse_toml(spec_text)
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


def banner(regions: list[Region], edge_url: str, data: Path, auth: bool) -> str:
    names = ", ".join(r.name for r in regions)
    keyed = (f"\nAPI keys and etcd RBAC are on. The admin key is in {data / 'admin.key'};\n"
             f"{data / 'admin.env'} makes a shell the admin (API key, etcd root certificate):\n"
             f"  . {data / 'admin.env'}\n"
             f"  curl -H \"Authorization: Bearer $SPILLOVER_API_KEY\" ...\n"
             f"  spillover keys create NAME --apps demo\n"
             f"  spillover deploy --etcd spillover.toml   # edges may not write apps\n"
             f"{_holes()}") if auth else ""  # fmt: skip
    ports = {r.name: tomllib.loads((data / f"{r.name}.toml").read_text())["metrics_port"]
             for r in regions}  # fmt: skip
    metrics = " ".join(f"{n}=:{port}" for n, port in ports.items())
    return f"""
Spillover is up: {len(regions)} regions ({names}), one edge at {edge_url}

  curl -s {edge_url}/v1/apps/demo/predict -d '{{"inputs": [[{", ".join(["0.5"] * 16)}]]}}'
  curl -s {edge_url}/v1/apps/demo/sleep -d '{{"seconds": 2}}'
  curl -si '{edge_url}/v1/apps/demo/sleep?async=true' -d '{{"seconds": 5}}'
  curl -s -H 'X-Forwarded-For: 81.2.69.142' {edge_url}/v1/apps/demo/echo -d hi  # from London
  spillover status

Metrics: {edge_url}/metrics, regions {metrics}
Dashboard: {edge_url}/dashboard
GeoIP: the edge's log says which database places clients ({data}/logs/edge.log)
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
    ap.add_argument("--app", type=Path, default=APP, help=f"app to deploy (default {APP})")
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
        spec_text = args.app.read_text()
        parse_toml(spec_text)
    except OSError as e:
        ap.error(f"--app: {e} (run from the repository root, or pass --app)")
    except InvalidConfig as e:
        ap.error(f"--app: {args.app}: {e.message}")
    if shutil.which("etcd") is None:
        sys.exit("spillover up: etcd is not on PATH (Debian: apt-get install etcd-server)")
    data: Path = args.data.resolve()
    if not args.auth and LocalAuth.was_on(data):
        ap.error(f"--data {data} was last run with --auth (its etcd refuses plain clients): "
                 "add --auth, or use another --data")  # fmt: skip
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sys.exit(run(args, regions, spec_text, data, logs))


def run(
    args: argparse.Namespace, regions: list[Region], spec_text: str, data: Path, logs: Path
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
            procs.spawn("keeper", ["federation.keeper", "--quota-bytes", str(QUOTA)], admin_env)
        configs = write_configs(data, regions, etcd.endpoints, args.port, Path.cwd(), auth)
        for r in regions:
            procs.spawn(r.name, ["regional.main", "--config", str(configs[r.name])], env)
        procs.spawn("edge", ["edge.main", "--config", str(configs["edge"])], env)
        edge_url = f"http://127.0.0.1:{args.port}"
        admin = auth.tls(ROOT) if auth else None

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
                    etcd.endpoints, spec_text, regions, edge_url, args.ready_timeout, key, admin
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
                    print(banner(regions, edge_url, data, args.auth), flush=True)
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


if __name__ == "__main__":
    main()
