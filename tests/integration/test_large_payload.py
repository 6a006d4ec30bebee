"""A 1 GiB body through ``spillover up``'s components (edge → agent → replica → agent → edge) to
the demo app's streaming ``echo``: the same bytes come back, and no process holds the body.

Peak memory is each process's VmHWM after the kernel's high-water mark was reset (``clear_refs``
5) just before the transfer, against its RSS at idle."""

from __future__ import annotations

import hashlib
import http.client
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_up import Up, descendants

pytestmark = pytest.mark.slow
MiB = 1 << 20
SIZE = 1024 * MiB
# Markers in /proc/PID/cmdline (arguments end in NUL): `python -m spillover edge ...`.
ROLES = {"edge": b"spillover\0edge\0", "agent": b"spillover\0region\0",
         "replica": b"regional.replica"}  # fmt: skip


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def roles(up: Up) -> dict[str, int]:
    found = {}
    for pid in descendants(up.proc.pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        for role, marker in ROLES.items():
            if marker in cmdline:
                found[role] = pid
    assert set(found) == set(ROLES), found
    return found


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    u = Up(tmp_path, app=None, regions=("us-east-1=39.0,-77.5",))
    yield u
    if u.proc.poll() is None:
        u.proc.kill()
        u.proc.wait()


@pytest.mark.timeout(600)  # a torch replica to start and 2 GiB to move, on a shared machine
def test_a_1_gib_body_comes_back_whole_and_no_process_holds_it(up: Up) -> None:
    up.wait_up(timeout=180)
    pids = roles(up)
    idle = {role: kib(pid, "VmRSS") for role, pid in pids.items()}
    for pid in pids.values():
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak RSS to now
    sent, block = hashlib.sha256(), os.urandom(MiB)

    def body() -> Iterator[bytes]:
        for i in range(SIZE // MiB):
            chunk = i.to_bytes(8, "big") + block[8:]  # every MiB different
            sent.update(chunk)
            yield chunk

    conn = http.client.HTTPConnection("127.0.0.1", up.port, timeout=600)
    headers = {"Content-Length": str(SIZE), "X-Spillover-Timeout": "300"}
    conn.request("POST", "/v1/apps/demo/echo", body=body(), headers=headers)
    response = conn.getresponse()
    got, size = hashlib.sha256(), 0
    while chunk := response.read(MiB):
        got.update(chunk)
        size += len(chunk)
    assert response.status == 200
    assert (size, got.hexdigest()) == (SIZE, sent.hexdigest())
    grew = {role: (kib(pid, "VmHWM") - idle[role]) // 1024 for role, pid in pids.items()}
    print(f"idle RSS MiB { ({r: v // 1024 for r, v in idle.items()}) }, peak growth MiB {grew}")
    assert all(g < 200 for g in grew.values()), grew
