"""``spillover``: one command whose subcommands the packages contribute through the
``spillover.commands`` entry-point group (``region`` comes from ``regional``), so this core
package never imports them."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points


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


if __name__ == "__main__":
    main()
