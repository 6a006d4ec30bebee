"""The region's worker stays readable: no class over 150 lines, no function over 40 (issue 21;
``Pool`` had grown to 276 and its ``_run`` to 93). Generated gRPC code aside."""

from __future__ import annotations

import ast
from pathlib import Path

REGIONAL = Path(__file__).resolve().parents[3] / "regional"
MAX_CLASS, MAX_FUNCTION = 150, 40


def sizes() -> list[tuple[str, int, int]]:
    """(where, lines, limit) of every class and function in regional/."""
    found = []
    for path in sorted(REGIONAL.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
                found.append((f"{path.name}:{node.name}", node.end_lineno - start + 1, limit))
    return found


def test_no_class_or_function_in_regional_outgrows_its_limit() -> None:
    found = sizes()
    assert len(found) > 50  # the walk saw the package
    assert [(where, n) for where, n, limit in found if n > limit] == []
