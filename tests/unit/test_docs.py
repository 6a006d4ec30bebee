"""The docs stand alone and say what the code does: docs/api.md against /openapi.json and the
edge's own routes; the error-code catalogue against the codes the code answers with; and no
markdown link leads out of the repository."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import edge.app  # noqa: F401  (imports every error class the edge can answer with)
import regional.agent  # noqa: F401  (and the agents')
from edge import tasks
from edge.app import create_app
from edge.config import EdgeConfig, RegionPoint
from edge.errors import ERROR_CODES, HTTP_CODES
from edge.openapi import spec
from federation.blobs.fs import ROUTE as BLOBS_ROUTE
from federation.errors import SpilloverError

REPO = Path(__file__).resolve().parents[2]
API = (REPO / "docs" / "api.md").read_text()
OPENAPI = spec(["us-east-1"], 300)
# Codes stated before the code that answers with them lands (docs ahead of code, never behind).
AHEAD: set[str] = set()
NOT_HTTP = {"claim_lost", "client_timeout"}  # between an agent and etcd; a client's own deadline
SKIPPED_DIRS = {".git", ".venv", ".venv-checkov", ".spillover", "node_modules", ".terraform"}


def table(heading: str) -> list[list[str]]:
    """The rows of the markdown table under ``## heading``, cells without backticks."""
    section = API.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    return [[c.strip().strip("`") for c in row.strip("|").split("|")] for row in rows]


def openapi_operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, ops in OPENAPI["paths"].items()
        for method, op in ops.items()
    }


def test_every_route_and_its_answers_are_in_both() -> None:
    documented = {(m, p): set(a.split(", ")) for m, p, a, _ in table("Routes")}
    described = {k: set(op["responses"]) for k, op in openapi_operations().items()}
    assert documented == described


def test_the_edge_serves_exactly_the_routes_described() -> None:
    config = EdgeConfig(region="us-east-1", regions=(RegionPoint(name="us-east-1", lat=0, lon=0),))
    served = {
        (r.method, r.resource.canonical)
        for r in create_app(config).router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert served - {("GET", BLOBS_ROUTE)} == set(openapi_operations())


def test_every_header_is_in_both() -> None:
    ops = openapi_operations().values()
    request = {p["name"] for op in ops for p in op.get("parameters", []) if p["in"] == "header"}
    if "apiKey" in OPENAPI["components"]["securitySchemes"]:
        request.add("Authorization")
    response = {h for op in ops for r in op["responses"].values() for h in r.get("headers", {})}
    assert {row[0] for row in table("Request headers")} == request
    assert {row[0] for row in table("Response headers")} == response


def test_every_error_code_is_in_both_with_its_status() -> None:
    documented = {code: status for code, status, _ in table("Error codes")}
    described = {e["code"]: e["status"] for e in OPENAPI["x-spillover-error-codes"]}
    assert documented == described


def _classes(cls: type[SpilloverError]) -> list[type[SpilloverError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _classes(sub))]


def test_the_catalogue_lists_every_code_the_code_answers_with_and_runs_ahead_only_by_name() -> None:
    raised = {c.code for c in _classes(SpilloverError)} - NOT_HTTP
    answered = raised | set(tasks._FAILURE_STATUS) | set(HTTP_CODES.values()) | {"http_error"}
    assert answered - set(ERROR_CODES) == set()
    assert set(ERROR_CODES) - answered <= AHEAD
    statuses = {c.code: str(c.status) for c in _classes(SpilloverError) if c.code not in NOT_HTTP}
    statuses |= {code: str(s) for code, s in tasks._FAILURE_STATUS.items()}
    assert {code: ERROR_CODES[code][0] for code in statuses} == statuses


# -- links ----------------------------------------------------------------------------------


def markdown_files() -> list[Path]:
    return sorted(
        p for p in REPO.rglob("*.md") if not SKIPPED_DIRS & set(p.relative_to(REPO).parts)
    )


def _prose(text: str) -> str:
    """The text without fenced blocks and code spans: links in code are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def links(path: Path) -> list[str]:
    prose = _prose(path.read_text())
    found = re.findall(r"\]\(\s*<?([^)\s>]+)", prose)  # [text](target) and ![alt](target)
    found += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", prose, flags=re.M)  # [ref]: target
    found += re.findall(r"<([a-z]+://[^>]+)>", prose)  # <https://...>
    found += re.findall(r"(?<![(<\w])(https?://[^\s)>\]]+)", prose)  # bare URLs autolink
    return found


def broken(path: Path, target: str) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):
        return "points outside the repository"
    file, _, anchor = target.partition("#")
    resolved = (path.parent / file).resolve() if file else path
    if not resolved.is_relative_to(REPO):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file"
    if anchor and resolved.suffix == ".md":
        headings = re.findall(r"^#+ (.+)$", _prose(resolved.read_text()), flags=re.M)
        if anchor not in {_slug(h) for h in headings}:
            return f"no heading #{anchor}"
    return None


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_markdown_link_leads_out_of_the_repository_or_nowhere(path: Path) -> None:
    bad = {t: why for t in links(path) if (why := broken(path, t))}
    assert bad == {}
    assert "../shared/" not in path.read_text(), "the developers' notes are not in the repo"
