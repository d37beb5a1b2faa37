"""Losses for emotion classification, chosen by name from :data:`ercgraph.registry.LOSSES`."""

from ercgraph.losses.classification import CrossEntropyLoss, class_weights

__all__ = ["CrossEntropyLoss", "class_weights"]
