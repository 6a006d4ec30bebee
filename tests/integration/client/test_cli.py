"""``spillover run``, ``submit`` and ``task get|watch|result|cancel`` as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.client.conftest import Federation
from tests.integration.test_up import cli

pytestmark = pytest.mark.slow


def test_run_prints_the_result_and_submit_the_id(federation: Federation, tmp_path: Path) -> None:
    url = ["--url", federation.url]
    ran = cli("run", "worker/sleep", '{"seconds": 0.2}', *url)
    assert ran.returncode == 0 and json.loads(ran.stdout)["slept"] == 0.2
    (tmp_path / "body").write_bytes(b"\x00bytes")
    ran = cli("run", "worker/echo", "--file", str(tmp_path / "body"), "--out",
              str(tmp_path / "out"), *url)  # fmt: skip
    assert ran.returncode == 0 and (tmp_path / "out").read_bytes() == b"\x00bytes"
    submitted = cli("submit", "worker/steps", '{"n": 3, "seconds": 0.6}', "--priority", "8", *url)
    task_id = submitted.stdout.strip()
    assert submitted.returncode == 0 and task_id.endswith(".us-east-1")
    got = cli("task", "get", task_id, env={"SPILLOVER_URL": federation.url})
    assert json.loads(got.stdout)["priority"] == 8
    watched = cli("task", "watch", task_id, *url)
    assert watched.returncode == 0 and json.loads(watched.stdout)["state"] == "succeeded"
    assert "finished step 3" in watched.stderr and "100% succeeded" in watched.stderr
    result = cli("task", "result", task_id, *url)
    assert json.loads(result.stdout) == {"steps": 3}


def test_cancel_and_errors_exit_with_the_code_not_a_traceback(federation: Federation) -> None:
    url = ["--url", federation.url]
    task_id = cli("submit", "worker/sleep", '{"seconds": 30}', *url).stdout.strip()
    cancelled = cli("task", "cancel", task_id, *url)
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["state"] == "cancelled"
    watched = cli("task", "watch", task_id, *url)
    assert watched.returncode == 1 and json.loads(watched.stdout)["state"] == "cancelled"
    boom = cli("run", "worker/boom", '"x"', *url)
    assert boom.returncode == 1 and "handler_error" in boom.stderr
    assert "Traceback" not in boom.stderr
    missing = cli("task", "get", "01J00000000000000000000000.us-east-1", *url)
    assert missing.returncode == 1 and "not_found" in missing.stderr
    bad = cli("run", "worker", "{}", *url)
    assert bad.returncode == 2 and "APP/FUNCTION" in bad.stderr
    late = cli("run", "worker/sleep", '{"seconds": 2}', "--timeout", "0.3", *url)
    assert late.returncode == 1 and "spillover task watch" in late.stderr
