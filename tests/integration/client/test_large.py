"""Large bodies through the client: a 1 GiB upload from a file, and a round trip into a file,
with the client process's memory held to a few MiB (it reads and writes one chunk at a time)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.client.conftest import Federation
from tests.integration.conftest import REPO

pytestmark = pytest.mark.slow
MiB = 1 << 20


def write(path: Path, size: int) -> str:
    """A file of ``size`` bytes, every MiB different; its sha256."""
    h, block = hashlib.sha256(), os.urandom(MiB)
    with path.open("wb") as f:
        for i in range(size // MiB):
            chunk = i.to_bytes(8, "big") + block[8:]
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


def test_a_1_gib_upload_and_a_round_trip_hold_a_few_mib(
    federation: Federation, tmp_path: Path
) -> None:
    big, medium, back = tmp_path / "big", tmp_path / "medium", tmp_path / "back"
    big_sha, medium_sha = write(big, 1024 * MiB), write(medium, 256 * MiB)
    out = subprocess.run(
        [sys.executable, "-m", "tests.integration.client.upload_proc", federation.url,
         str(big), str(medium), str(back)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    print(report)
    assert report["digest"] == {"size": 1024 * MiB, "declared": 1024 * MiB, "sha256": big_sha}
    assert sha256(back) == medium_sha
    assert report["up_mib"] < 16 and report["round_trip_mib"] < 16, report
