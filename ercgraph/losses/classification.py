"""Emotion-classification losses. Every class weight is computed from training-split counts.

Each loss is built as ``cls(class_counts, **options)`` where ``class_counts`` is a float tensor
``[num_classes]`` counted on the training split, and is called as ``loss(logits, target)``.
Targets of ``-1`` (unlabelled utterances) are ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ercgraph.errors import ErcgraphError
from ercgraph.registry import LOSSES

WEIGHTINGS = ("none", "inverse", "sqrt_inverse")


def class_weights(counts: Tensor, scheme: str) -> Tensor | None:
    """Class weights from counts, normalised to mean 1 over classes present.

    ``inverse``: w_c ∝ 1 / n_c; ``sqrt_inverse``: w_c ∝ 1 / sqrt(n_c); ``none``: no weights.
    """
    if scheme == "none":
        return None
    if scheme not in WEIGHTINGS:
        raise ErcgraphError(f"unknown class weighting {scheme!r}; choose one of {WEIGHTINGS}")
    n = counts.clamp(min=1.0)
    w = 1.0 / n if scheme == "inverse" else n.rsqrt()
    return w / w.mean()


@LOSSES.register("ce")
class CrossEntropyLoss(nn.Module):
    """Cross-entropy, optionally weighted from the training split's class counts.

    Args:
        class_counts: training-split count per class.
        weighting: ``none`` (plain), ``inverse`` or ``sqrt_inverse`` frequency.
        label_smoothing: label smoothing factor.
    """

    def __init__(self, class_counts: Tensor, weighting: str = "none",
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.weighting = weighting
        self.label_smoothing = label_smoothing
        w = class_weights(class_counts.float(), weighting)
        self.register_buffer("weight", w if w is not None else torch.ones(len(class_counts)))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, weight=self.weight, ignore_index=-1,
                               label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"weighting={self.weighting!r}, label_smoothing={self.label_smoothing}"
