"""The package as a user gets it: the wheel holds the four packages and their data and no generic
top-level name; installed into a fresh environment (not the repository's editable install), it
runs from any directory: ``spillover up`` serves the demo that ships in it, ``spillover init``
writes an app that ``spillover deploy`` puts on that federation, and ``spillover bench`` says it
needs a checkout.

The fresh environment gets the wheel alone (``--no-deps``); its dependencies come from the
development venv's site-packages, named in a ``.pth`` file. Python does not read the ``.pth``
files of a directory a ``.pth`` names, so the editable install's (the repository on sys.path)
stays out: what runs is the wheel."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import REPO
from tests.integration.test_up import Up, alive

pytestmark = pytest.mark.slow
PACKAGES = {"spillover", "federation", "edge", "regional"}
DATA = [
    "spillover/demo/spillover.toml",
    "spillover/demo/app.py",
    "edge/static/dashboard.html",
    "edge/static/dashboard.js",
    "edge/static/dashboard.css",
    "edge/static/world.svg",
    "regional/rpc/replica.proto",
    "regional/rpc/replica_pb2.py",
    "regional/rpc/replica_pb2_grpc.py",
]


def run(*command: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                "-w", out, REPO, cwd=out, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stderr
    [path] = out.glob("spillover-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``bin/`` of a fresh venv with the wheel installed."""
    venv = tmp_path_factory.mktemp("venv")
    made = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    # The development venv's pip, running under the fresh interpreter: it sees only that venv.
    done = run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
               "--no-index", "-q", wheel, cwd=venv)  # fmt: skip
    assert done.returncode == 0, done.stderr
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=venv)
    Path(site.stdout.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"])
    yield venv / "bin"


def test_the_wheel_holds_the_packages_and_their_data_and_no_generic_names(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {*PACKAGES, "spillover-0.1.0.dist-info"}
    assert set(DATA) <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "benchmarks/"))]
    entry_points = zipfile.ZipFile(wheel).read("spillover-0.1.0.dist-info/entry_points.txt")
    assert "spillover = spillover.cli:main" in entry_points.decode()


def test_installed_it_runs_from_anywhere_and_bench_asks_for_a_checkout(
    installed: Path, tmp_path: Path
) -> None:
    where = run(installed / "python", "-c", "import spillover, regional; "
                "print(spillover.__file__, regional.__file__)", cwd=tmp_path)  # fmt: skip
    assert where.stdout.count(str(installed.parent)) == 2, where.stdout
    benchmarks = run(installed / "python", "-c", "import benchmarks", cwd=tmp_path)
    assert "No module named 'benchmarks'" in benchmarks.stderr
    usage = run(installed / "spillover", "--help", cwd=tmp_path)
    assert usage.returncode == 0 and "init" in usage.stdout and "up" in usage.stdout
    assert run(installed / "spillover", "up", "--help", cwd=tmp_path).returncode == 0
    bench = run(installed / "spillover", "bench", "--help", cwd=tmp_path)
    assert bench.returncode == 1 and "runs from a checkout" in bench.stderr, bench.stderr
    in_checkout = run(installed / "spillover", "bench", "--help", cwd=REPO)
    assert in_checkout.returncode == 0 and "spillover bench" in in_checkout.stdout


def test_installed_up_serves_the_demo_and_an_app_from_init(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"  # a user's directory: no repository in sight
    work.mkdir()
    spillover = installed / "spillover"
    up = Up(tmp_path, None, ("us-east-1=39.0,-77.5",), spillover=(str(spillover),), cwd=work)
    try:
        processes = up.wait_up(timeout=180)
        programs = {Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] for pid in processes}
        # Besides etcd, every process (agent, replica, edge) is the fresh venv's Python.
        assert {p for p in programs if not p.endswith(b"etcd")} == {
            str(installed / "python").encode()
        }, programs  # fmt: skip
        predicted = up.call("POST", "/v1/apps/demo/predict", {"inputs": [[0.5] * 16]})
        assert len(predicted["outputs"][0]) == 4

        created = run(spillover, "init", "hello", cwd=work)
        assert created.returncode == 0 and "spillover deploy hello/spillover.toml" in created.stdout
        deployed = run(spillover, "deploy", "hello/spillover.toml", "--edge", up.url, cwd=work)
        assert deployed.returncode == 0 and "deployed hello" in deployed.stdout, deployed.stderr
        answer = run(spillover, "run", "hello/predict", '{"inputs": [1, 2]}', "--url", up.url,
                     cwd=work)  # fmt: skip
        assert json.loads(answer.stdout) == {"outputs": [2.0, 4.0]}, answer.stderr
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(timeout=60) == 0
        assert not alive(processes)
    finally:
        up.stop()
