"""Loss terms, chosen by name from :data:`ercgraph.registry.LOSSES` and combined by weight."""

from ercgraph.losses.base import ClassificationLoss, LossTerm
from ercgraph.losses.classification import (
    ClassBalancedLoss,
    CrossEntropyLoss,
    FocalLoss,
    LogitAdjustedLoss,
    class_weights,
    focal_loss,
)
from ercgraph.losses.consistency import RDropLoss, SupervisedContrastiveLoss
from ercgraph.losses.objective import Objective, build_objective
from ercgraph.losses.reconstruction import ReconstructionLoss
from ercgraph.losses.regression import CCCLoss, MSELoss, ccc_loss

__all__ = [
    "CCCLoss",
    "ClassBalancedLoss",
    "ClassificationLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "LogitAdjustedLoss",
    "LossTerm",
    "MSELoss",
    "Objective",
    "RDropLoss",
    "ReconstructionLoss",
    "SupervisedContrastiveLoss",
    "build_objective",
    "ccc_loss",
    "class_weights",
    "focal_loss",
]
