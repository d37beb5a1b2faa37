"""Run the ercgraph CLI in-process and return its exit status."""

from ercgraph.cli import main


def cli(*args) -> int:
    """``ercgraph ARGS`` in this process; the exit status (0 when it returns normally)."""
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
