"""``import spillover`` stays light: a replica imports it with every app, and a script that
only calls an edge should not load a model runtime or an etcd client."""

from __future__ import annotations

import json
import subprocess
import sys

NEVER = ("torch", "grpc", "aetcd", "numpy")


def modules(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys, json; {code}; print(json.dumps(list(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {m.split(".")[0] for m in json.loads(out)}


def test_import_spillover_and_the_handler_api_pull_nothing_heavy() -> None:
    loaded = modules("import spillover; from spillover import batch, stream, Body, Context")
    assert not loaded & {*NEVER, "httpx2", "pydantic", "aiohttp", "tenacity"}, loaded


def test_the_client_pulls_httpx2_and_tenacity_but_no_runtime_or_etcd() -> None:
    loaded = modules("import spillover; spillover.Client; spillover.AsyncClient")
    assert {"httpx2", "tenacity"} <= loaded and not loaded & {*NEVER, "pydantic"}, loaded
