"""The edge under load, each part its own process: etcd (one member), a region's agent with a
probe replica, one edge, and a load generator. Reports the medians over ``--reps`` runs of:

- accepted async submits/s (``?async=true``, 64 connections), to an app no region serves, so the
  figure is the edge + etcd alone; and to a served no-op app, so the agent competes for the CPU;
- the synchronous round trip of a no-op task at idle (one request at a time), p50 and p99.

    python -m benchmarks.edge [--reps 3] [--seconds 5] [--sync 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from benchmarks.regional import pct
from spillover.local.etcd import LocalEtcd, free_port

REPO = Path(__file__).resolve().parents[1]
PROBE = '[app]\nname = "{name}"\nhandler = "benchmarks.probe:Probe"\n[scaling]\n'


# -- the load generator (its own process) -----------------------------------------------------


async def async_submits(url: str, seconds: float, connections: int) -> dict[str, float]:
    accepted = refused = 0
    stop = time.monotonic() + seconds
    limit = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=limit) as http:

        async def client() -> None:
            nonlocal accepted, refused
            while time.monotonic() < stop:
                async with http.post(url, data=b"{}") as r:
                    await r.read()
                    if r.status == 202:
                        accepted += 1
                    else:
                        refused += 1

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(connections)))
        elapsed = time.monotonic() - started
    return {"accepted_per_s": accepted / elapsed, "refused": refused}


async def sync_round_trips(url: str, n: int) -> dict[str, float]:
    times = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            started = time.perf_counter()
            async with http.post(url, data=b"{}") as r:
                await r.read()
                assert r.status == 200, r.status
            times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99)}


def load(args: argparse.Namespace) -> None:
    if args.mode == "async":
        out = uvloop.run(async_submits(args.url, args.seconds, args.connections))
    else:
        out = uvloop.run(sync_round_trips(args.url, args.n))
    print(json.dumps(out))


# -- the rig ----------------------------------------------------------------------------------


def generate(*args: str) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.edge", "load", *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def wait_http(url: str, timeout: float = 120, ok: Any = lambda body: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if ok(json.loads(r.read())):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def run(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    with LocalEtcd(tmp / "etcd") as etcd:
        etcd_toml = f'[etcd]\nendpoints = ["{etcd.endpoints[0]}"]\n'
        port = free_port()
        (tmp / "edge.toml").write_text(
            f'region = "us-east-1"\nport = {port}\nauth = false\n'
            '[[regions]]\nname = "us-east-1"\nlat = 39.0\nlon = -77.5\n'
            + etcd_toml
            + f'[blobs]\ndir = "{tmp / "edge-blobs"}"\n'
        )
        (tmp / "region.toml").write_text(
            f'name = "us-east-1"\nlat = 39.0\nlon = -77.5\napp_root = "{REPO}"\n'
            + etcd_toml
            + f'[blobs]\ndir = "{tmp / "region-blobs"}"\n'
        )
        procs = [
            subprocess.Popen([sys.executable, "-m", m, "--config", str(tmp / c)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for m, c in (("edge.main", "edge.toml"), ("regional.main", "region.toml"))
        ]  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + "/readyz")
            for name, scaling in (("probe", "replica_concurrency = 8\nmin_replicas = 1\n"),
                                  ("parked", "min_replicas = 0\n")):  # fmt: skip
                body = (PROBE.format(name=name) + scaling).encode()
                put = urllib.request.Request(f"{url}/v1/apps/{name}", data=body, method="PUT")
                urllib.request.urlopen(put, timeout=10).close()

            def served(apps: Any) -> bool:
                return any(r["ready_replicas"] for a in apps["apps"] for r in a["regions"])

            def idle(app: Any) -> bool:
                return all(r["queue_depth"] == 0 and r["busy_slots"] == 0 for r in app["regions"])

            wait_http(url + "/v1/apps", ok=served)
            reps: dict[str, list[float]] = {}
            for _ in range(args.reps):
                for label, path in (("parked", "/v1/apps/parked/stamp"),
                                    ("served", "/v1/apps/probe/stamp")):  # fmt: skip
                    out = generate("--mode", "async", "--url", f"{url}{path}?async=true",
                                   "--seconds", str(args.seconds))  # fmt: skip
                    reps.setdefault(f"async_accepted_per_s_{label}", []).append(
                        out["accepted_per_s"]
                    )
                    wait_http(url + "/v1/apps/probe", ok=idle)  # the agent drained it
                out = generate("--mode", "sync", "--url", f"{url}/v1/apps/probe/stamp",
                               "--n", str(args.sync))  # fmt: skip
                reps.setdefault("sync_p50_ms", []).append(out["p50_ms"])
                reps.setdefault("sync_p99_ms", []).append(out["p99_ms"])
                print(f"rep done: {json.dumps({k: v[-1] for k, v in reps.items()})}",
                      file=sys.stderr)  # fmt: skip
            return {k: statistics.median(v) for k, v in reps.items()}
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command")
    gen = sub.add_parser("load", help="(internal) the load generator process")
    gen.add_argument("--mode", choices=["async", "sync"], required=True)
    gen.add_argument("--url", required=True)
    gen.add_argument("--seconds", type=float, default=5)
    gen.add_argument("--connections", type=int, default=64)
    gen.add_argument("--n", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--sync", type=int, default=300)
    args = ap.parse_args()
    if args.command == "load":
        load(args)
        return
    with tempfile.TemporaryDirectory() as d:
        results = run(args, Path(d))
    for k, v in results.items():
        print(f"| {k} | {v:,.1f} |")


if __name__ == "__main__":
    main()
