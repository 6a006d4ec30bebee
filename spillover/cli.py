"""``spillover``: one command whose subcommands the packages contribute through the
``spillover.commands`` entry-point group (``region`` comes from ``regional``, ``edge`` from
``edge``), so no package below this one imports it. ``python -m spillover`` is the same command:
``spillover up`` starts its processes that way.

This module loads nothing but the standard library: every agent and edge process starts here.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    commands = {ep.name: ep for ep in entry_points(group="spillover.commands")}
    if not args or args[0] in ("-h", "--help") or args[0] not in commands:
        print("usage: spillover <command> [options]\n\ncommands:")
        for name, ep in sorted(commands.items()):
            print(f"  {name:<12} {ep.value}")
        if args and args[0] not in ("-h", "--help"):
            print(f"\nspillover: unknown command {args[0]!r}", file=sys.stderr)
            sys.exit(2)
        return
    commands[args[0]].load()(args[1:])


# -- commands that live in the repository, not in the package -------------------------------
# The wheel installs no `benchmarks` package: a top-level name that generic would collide with a
# user's own. These commands import it from a checkout of the repository instead.


def bench(argv: list[str]) -> None:
    from_checkout("bench", "benchmarks.__main__", argv)


def chaos(argv: list[str]) -> None:
    from_checkout("chaos", "benchmarks.chaos.__main__", argv)


def from_checkout(command: str, module: str, argv: list[str]) -> None:
    """Run ``module``'s ``main(argv)`` from the repository this package was installed from
    (``pip install -e``), else from the one in the current directory; say what to do when
    neither is a checkout."""
    root = checkout()
    if root is None:
        sys.exit(
            f"spillover {command}: runs from a checkout of the Spillover repository (benchmarks/ "
            "is not installed with the package): run it in the repository's root directory, "
            "or install the package from one with pip install -e ."
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    importlib.import_module(module).main(argv)


def checkout() -> Path | None:
    here = Path(__file__).resolve().parents[1]
    for root in (here, Path.cwd()):
        if (root / "benchmarks" / "__main__.py").is_file() and (root / "spillover").is_dir():
            return root
    return None
