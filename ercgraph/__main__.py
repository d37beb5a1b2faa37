"""``python -m ercgraph`` runs the CLI."""

from ercgraph.cli import main

if __name__ == "__main__":
    main()
