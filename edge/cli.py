"""``spillover status`` and ``spillover deploy``: clients of an edge's HTTP API, as a user's own
scripts would be (the edge is the federation's one front door). Where etcd RBAC is on, edges may
not write apps: ``spillover deploy --etcd`` writes the spec with the admin's etcd certificate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from federation.apps import AppRegistry
from federation.appspec import AppSpec, parse_toml
from federation.errors import InvalidConfig, SpilloverError
from federation.topology import Clusters, EtcdConfig

DEFAULT_EDGE = "http://127.0.0.1:8080"


def _edge_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--edge",
        default=os.environ.get("SPILLOVER_EDGE", DEFAULT_EDGE),
        help=f"edge URL (default: $SPILLOVER_EDGE or {DEFAULT_EDGE})",
    )


class EdgeError(Exception):
    """The edge answered an error, or did not answer: the message says which, for a person."""


def call(method: str, url: str, body: bytes | None = None, ctype: str = "") -> Any:
    """One call to the edge, as JSON; its errors as :class:`EdgeError`."""
    headers = {"Content-Type": ctype} if ctype else {}
    if key := os.environ.get("SPILLOVER_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            error = json.loads(e.read())["error"]
            message = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            message = str(e)
        raise EdgeError(f"spillover: {method} {url}: {e.code} {message}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        raise EdgeError(f"spillover: cannot reach the edge at {url}: {reason}") from None


def request(method: str, url: str, body: bytes | None = None, ctype: str = "") -> Any:
    """One call to the edge; an error exits with its message, not a traceback."""
    try:
        return call(method, url, body, ctype)
    except EdgeError as e:
        sys.exit(str(e))


def table(health: dict[str, Any]) -> str:
    """The health JSON as the table ``spillover status`` prints."""
    etcd = health["etcd"]
    lines = [
        f"federation: {health['status']}",
        f"etcd: {'healthy' if etcd['healthy'] else 'UNHEALTHY'}, {etcd['members']} member(s), "
        f"leader {etcd['leader'] or '-'}",
        "",
    ]
    rows = [("REGION", "STATUS", "APP", "READY/DESIRED", "BUSY/SLOTS", "QUEUED", "OLDEST WAIT",
             "SCALING")]  # fmt: skip
    for r in health["regions"]:
        if not r["apps"]:
            rows.append((r["name"], r["status"], "-", "-", "-", "-", "-", "-"))
        for a in r["apps"]:
            rows.append((
                r["name"], r["status"], a["app"],
                f"{a['ready_replicas']}/{a['desired_replicas']}",
                f"{a['busy_slots']}/{a['slots']}",
                str(a["queue_depth"]), f"{a['oldest_wait_ms']:.0f} ms",
                a.get("scaling_reason") or "-",  # the autoscaler's last reason
            ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    edges = ", ".join(f"{e['id']} ({e['region']})" for e in health["edges"]) or "none"
    lines += ["", f"edges: {edges}"]
    return "\n".join(lines)


def status(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="spillover status", description="Federation health.")
    _edge_arg(ap)
    ap.add_argument("--json", action="store_true", help="print the health JSON instead")
    ap.add_argument(
        "--watch", type=float, nargs="?", const=2.0, metavar="SECONDS",
        help="redraw the table every SECONDS (default 2) until Ctrl-C",
    )  # fmt: skip
    args = ap.parse_args(argv)
    url = f"{args.edge}/v1/federation/health"
    if args.watch is not None:
        if args.watch <= 0:
            ap.error(f"--watch {args.watch:g}: must be a number of seconds above 0")
        with contextlib.suppress(KeyboardInterrupt):
            watch(url, args.watch)
        return
    health = request("GET", url)
    print(json.dumps(health, indent=2) if args.json else table(health))


def watch(url: str, every: float) -> None:
    """The table, redrawn in place; an edge that stops answering is shown, not fatal."""
    while True:
        try:
            text = table(call("GET", url))
        except EdgeError as e:
            text = str(e)
        stamp = time.strftime("%H:%M:%S")
        # Home the cursor and clear the screen: the table replaces itself, like watch(1).
        sys.stdout.write(f"\x1b[H\x1b[2J{stamp}  every {every:g} s, Ctrl-C stops\n\n{text}\n")
        sys.stdout.flush()
        time.sleep(every)


def deploy(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="spillover deploy", description="Deploy or update an app.")
    ap.add_argument("spec", type=Path, help="the app's spillover.toml")
    _edge_arg(ap)
    ap.add_argument(
        "--etcd", action="store_true",
        help="write it to etcd yourself, as the admin (SPILLOVER_ETCD_ENDPOINTS, and _CACERT, "
        "_CERT, _KEY: the root certificate), not through an edge: with etcd RBAC on, edges "
        "may not write apps",
    )  # fmt: skip
    args = ap.parse_args(argv)
    text = args.spec.read_text()
    try:
        spec = parse_toml(text)  # the same checks the edge makes, before the round trip
    except InvalidConfig as e:
        sys.exit(f"spillover: {args.spec}: {e.message}")
    if args.etcd:
        try:
            asyncio.run(_put(spec))
        except SpilloverError as e:
            sys.exit(f"spillover: deploying {spec.name} to etcd: {e.message}")
        print(f"deployed {spec.name} ({spec.app.handler})")
        return
    stored = request("PUT", f"{args.edge}/v1/apps/{spec.name}", text.encode(), "text/plain")
    print(f"deployed {stored['app']['name']} ({stored['app']['handler']})")


async def _put(spec: AppSpec) -> None:
    clusters = Clusters(EtcdConfig.from_env(os.environ))
    try:
        await AppRegistry(clusters.control, clusters.root).put(spec)
    finally:
        await clusters.close()
