"""The Grafana dashboard and the Prometheus alert rules of docs/monitoring/: promtool checks the
rules and runs their unit tests (synthetic series), parses every panel's query, and every metric
they name is one the code exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import REPO

MONITORING = REPO / "docs" / "monitoring"
SOURCES = ("edge/metrics.py", "regional/metrics.py", "federation/metrics.py")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$app": ".*", "$region": ".*"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("no promtool: `make test` installs Debian's prometheus package")
    return found


def panel_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rule_queries() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_the_rules_pass_promtool_check_and_their_unit_tests() -> None:
    tool = promtool()
    check = subprocess.run([tool, "check", "rules", "alerts.yml"], cwd=MONITORING,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run([tool, "test", "rules", "alerts.test.yml"], cwd=MONITORING,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_every_panel_query_parses(tmp_path: Path) -> None:
    """As recording rules, with Grafana's variables filled in: promtool parses each."""
    rules = []
    for i, expr in enumerate(panel_queries()):
        for var, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"panel_{i}", "expr": expr})
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    check = subprocess.run([promtool(), "check", "rules", str(path)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_metric_named_is_exported() -> None:
    exported = {
        name
        for source in SOURCES
        for name in re.findall(r'"(spillover_[a-z0-9_]+)"', (REPO / source).read_text())
    }
    named = {
        re.sub(r"_(bucket|sum|count)$", "", m)
        for q in panel_queries() + rule_queries()
        for m in re.findall(r"\b(spillover_[a-z0-9_]+)\b", q)
    }
    assert named, "no metric found in the queries"
    assert named - exported == set()
