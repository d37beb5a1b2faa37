"""Tests of ercgraph.graphs (a package, so test module names do not clash with other folders)."""
