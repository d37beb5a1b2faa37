"""Losses for emotion classification, chosen by name from :data:`ercgraph.registry.LOSSES`."""

from ercgraph.losses.classification import (
    ClassBalancedLoss,
    CrossEntropyLoss,
    FocalLoss,
    LogitAdjustedLoss,
    class_weights,
    focal_loss,
)

__all__ = [
    "ClassBalancedLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "LogitAdjustedLoss",
    "class_weights",
    "focal_loss",
]
