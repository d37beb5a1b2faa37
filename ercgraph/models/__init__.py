"""Models: the hierarchical GCN and the reference baselines, built by name from the registry."""

from ercgraph.models.build import build_model

__all__ = ["build_model"]
