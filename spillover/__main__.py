"""``python -m spillover ...``: the ``spillover`` command, without its console script."""

from spillover.cli import main

main()
