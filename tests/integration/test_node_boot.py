"""The Terraform nodes' secret fetch at first boot (``templates/fetch-secret.sh``), run for real
against moto's SSM server. The aws CLI is not on this machine, so a stand-in with boto3 answers
exactly the one call the script makes (and fails on any other)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

FETCH = Path(__file__).parents[2] / "terraform/modules/region/templates/fetch-secret.sh"
AWS = """#!{python}
import sys, boto3
args = sys.argv[1:]
want = ["ssm", "get-parameter", "--region", args[3], "--name", args[5], "--with-decryption",
        "--query", "Parameter.Value", "--output", "text"]
if args != want:
    sys.exit(f"unexpected aws call: {{args}}")
ssm = boto3.client("ssm", region_name=args[3], endpoint_url="{endpoint}")
try:
    print(ssm.get_parameter(Name=args[5], WithDecryption=True)["Parameter"]["Value"])
except ssm.exceptions.ParameterNotFound as e:
    sys.exit(str(e))
"""


@pytest.fixture
def node(moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(k, v)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(AWS.format(python=sys.executable, endpoint=moto))
    aws.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def fetch(env: dict[str, str], name: str, dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(FETCH), "eu-west-1", name, str(dest)], env=env,
                          capture_output=True, text=True)  # fmt: skip


def test_a_node_fetches_its_key_from_ssm_into_a_file_only_root_reads(
    moto: str, node: dict[str, str], tmp_path: Path
) -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----"
    ssm = boto3.client("ssm", region_name="eu-west-1", endpoint_url=moto)
    ssm.put_parameter(Name="/sp-eu-west-1/etcd-ca-key", Value=key, Type="SecureString")
    dest = tmp_path / "ca.key"
    done = fetch(node, "/sp-eu-west-1/etcd-ca-key", dest)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == key + "\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert list(tmp_path.glob("*.part")) == []


def test_a_failed_fetch_leaves_no_key_file_behind(node: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "edge.key"
    done = fetch(node, "/sp-eu-west-1/missing", dest)
    assert done.returncode != 0
    assert not dest.exists() and list(tmp_path.iterdir()) == [tmp_path / "bin"]
