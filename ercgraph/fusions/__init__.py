"""Fusions (modality nodes of an utterance → one vector), chosen by name from ``FUSIONS``."""

from ercgraph.fusions.base import ConcatFusion, Fusion, MeanFusion
from ercgraph.fusions.gated import GatedFusion

__all__ = ["ConcatFusion", "Fusion", "GatedFusion", "MeanFusion"]
