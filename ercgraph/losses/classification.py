"""Emotion-classification losses. Every class weight is computed from training-split counts.

Each loss is built as ``cls(class_counts, **options)`` where ``class_counts`` is a float tensor
``[num_classes]`` counted on the training split. As a loss term it is called as
``loss(out, batch)``; :meth:`classify` computes it from ``(logits, target)`` directly. Targets of
``-1`` (unlabelled utterances) are ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ercgraph.errors import ErcgraphError
from ercgraph.losses.base import ClassificationLoss
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
class CrossEntropyLoss(ClassificationLoss):
    """Cross-entropy, optionally weighted from the training split's class counts.

    Args:
        class_counts: training-split count per class.
        weighting: ``none`` (plain), ``inverse`` or ``sqrt_inverse`` frequency.
        label_smoothing: label smoothing factor.
        utterance_class_weights: per-class weights from the sampler (``two_stage`` with
            ``reweight``), multiplied into the class weights; given by the trainer.
    """

    def __init__(
        self,
        class_counts: Tensor,
        weighting: str = "none",
        label_smoothing: float = 0.0,
        utterance_class_weights: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.weighting = weighting
        self.label_smoothing = label_smoothing
        w = class_weights(class_counts.float(), weighting)
        w = w if w is not None else torch.ones(len(class_counts))
        if utterance_class_weights is not None:  # the two-stage sampler's correction
            w = w * utterance_class_weights.float()
            w = w / w[w > 0].mean()
        self.register_buffer("weight", w)

    def classify(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(
            logits,
            target,
            weight=self.weight,
            ignore_index=-1,
            label_smoothing=self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return f"weighting={self.weighting!r}, label_smoothing={self.label_smoothing}"


@LOSSES.register("class_balanced")
class ClassBalancedLoss(ClassificationLoss):
    """Class-balanced loss (Cui et al., CVPR 2019): weights from the effective number of samples.

    The weight of class c is ``(1 - beta) / (1 - beta ** n_c)``, normalised to mean 1, applied to
    cross-entropy (``base="ce"``) or to the focal loss (``base="focal"``).

    Args:
        class_counts: training-split count per class.
        beta: in [0, 1); 0 = no reweighting, → 1 = inverse frequency.
        base: ``ce`` or ``focal``.
        gamma: focusing parameter when ``base="focal"``.
    """

    def __init__(
        self, class_counts: Tensor, beta: float = 0.9999, base: str = "ce", gamma: float = 2.0
    ) -> None:
        super().__init__()
        if not 0.0 <= beta < 1.0:
            raise ErcgraphError(f"loss.options.beta must be in [0, 1), got {beta}")
        if base not in ("ce", "focal"):
            raise ErcgraphError(f"loss.options.base must be 'ce' or 'focal', got {base!r}")
        self.beta, self.base, self.gamma = beta, base, gamma
        effective = (1.0 - torch.pow(beta, class_counts.float().clamp(min=1.0))) / (1.0 - beta)
        w = 1.0 / effective
        self.register_buffer("weight", w / w.mean())

    def classify(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.base == "focal":
            return focal_loss(logits, target, self.gamma, self.weight)
        return F.cross_entropy(logits, target, weight=self.weight, ignore_index=-1)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, base={self.base!r}, gamma={self.gamma}"


def focal_loss(logits: Tensor, target: Tensor, gamma: float, weight: Tensor | None) -> Tensor:
    """Mean focal loss over labelled rows, ``-w_y (1 - p_y)^gamma log p_y`` (weights normalised
    like cross-entropy's weighted mean)."""
    keep = target >= 0
    logits, target = logits[keep], target[keep]
    if target.numel() == 0:
        return logits.sum() * 0.0
    logp = F.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)
    loss = -((1.0 - logp.exp()) ** gamma) * logp
    if weight is None:
        return loss.mean()
    w = weight[target]
    return (w * loss).sum() / w.sum()


@LOSSES.register("focal")
class FocalLoss(ClassificationLoss):
    """Focal loss (Lin et al., ICCV 2017), optionally with class weights from the counts.

    Args:
        class_counts: training-split count per class.
        gamma: focusing parameter (0 = cross-entropy).
        weighting: ``none``, ``inverse`` or ``sqrt_inverse`` (the alpha term).
    """

    def __init__(self, class_counts: Tensor, gamma: float = 2.0, weighting: str = "none") -> None:
        super().__init__()
        self.gamma, self.weighting = gamma, weighting
        w = class_weights(class_counts.float(), weighting)
        self.register_buffer("weight", w if w is not None else torch.ones(len(class_counts)))

    def classify(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(logits, target, self.gamma, self.weight)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, weighting={self.weighting!r}"


@LOSSES.register("logit_adjusted")
class LogitAdjustedLoss(ClassificationLoss):
    """Logit-adjusted cross-entropy (Menon et al., ICLR 2021).

    Training adds ``tau * log(prior)`` to the logits, with the prior counted on the training
    split; prediction uses the plain logits, which is what makes the classifier balanced.

    Args:
        class_counts: training-split count per class.
        tau: scaling of the log-prior.
    """

    def __init__(self, class_counts: Tensor, tau: float = 1.0) -> None:
        super().__init__()
        self.tau = tau
        prior = class_counts.float().clamp(min=1.0)
        self.register_buffer("log_prior", (prior / prior.sum()).log())

    def classify(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits + self.tau * self.log_prior, target, ignore_index=-1)

    def extra_repr(self) -> str:
        return f"tau={self.tau}"
