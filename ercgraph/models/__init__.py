"""Models: the hierarchical GCN and the reference baselines (bodies, built by name from the
registry) and the composite body + heads the trainer runs."""

from ercgraph.models.build import build_model
from ercgraph.models.composite import ERCModel
from ercgraph.models.outputs import ModelOutput

__all__ = ["ERCModel", "ModelOutput", "build_model"]
