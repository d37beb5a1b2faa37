"""Cross-modal emotion alignment: a supervised contrastive loss between two modalities' node
states (Foal-Net's audio-video emotion alignment), and how a pair of modalities is chosen."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ercgraph.errors import ErcgraphError
from ercgraph.losses.base import LossTerm
from ercgraph.registry import LOSSES

#: The pair a two-modality term uses when none is configured and the model has both.
DEFAULT_PAIR = ("audio", "visual")


def modality_pair(
    modalities: list[str] | tuple[str, ...] | None, available: list[str], who: str
) -> tuple[str, str]:
    """The two modalities a cross-modal component compares.

    Args:
        modalities: two configured names, or None: ``audio`` and ``visual`` when the model has
            both, else its first two modalities (in the model's order).
        available: the model's modalities.
        who: the component, for error messages.

    Raises:
        ErcgraphError: not two distinct names, a name the model lacks, or a model with fewer
            than two modalities.
    """
    if modalities is None:
        if all(m in available for m in DEFAULT_PAIR):
            return DEFAULT_PAIR
        if len(available) < 2:
            raise ErcgraphError(
                f"{who} compares two modalities, but the model has only {list(available)}"
            )
        return available[0], available[1]
    pair = list(modalities)
    if len(pair) != 2 or pair[0] == pair[1]:
        raise ErcgraphError(f"{who}: modalities must be two distinct names, got {pair}")
    unknown = [m for m in pair if m not in available]
    if unknown:
        raise ErcgraphError(
            f"{who}: modalities {unknown} are not modalities of the model; it has {available}"
        )
    return pair[0], pair[1]


def supervised_alignment(a: Tensor, b: Tensor, y: Tensor, temperature: float) -> Tensor:
    r"""Symmetric supervised contrastive loss between paired rows of two modalities.

    With :math:`s_{ij} = \cos(a_i, b_j) / \tau` and :math:`P_i = \{j : y_j = y_i\}` (row ``i``
    itself included), the a→b direction is
    :math:`-\frac{1}{|P_i|}\sum_{j \in P_i} \log \mathrm{softmax}_j(s_{i\cdot})`, the cross-entropy
    between the row's softmax over the batch and the uniform distribution over its positives; the
    b→a direction is the same over columns; the loss is the mean of both directions.

    Args:
        a: ``[B, d]`` states of the first modality.
        b: ``[B, d]`` states of the second modality (row ``i`` is the same utterance as in ``a``).
        y: ``[B]`` emotion ids (all labelled).
        temperature: softmax temperature :math:`\tau`.
    """
    sim = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    pos = (y[:, None] == y[None, :]).to(sim.dtype)
    a2b = -(pos * F.log_softmax(sim, dim=1)).sum(1) / pos.sum(1)
    b2a = -(pos.T * F.log_softmax(sim.T, dim=1)).sum(1) / pos.sum(0)
    return (a2b.mean() + b2a.mean()) / 2


@LOSSES.register("emotion_alignment")
class EmotionAlignmentLoss(LossTerm):
    """Foal-Net's audio-video emotion alignment (Li et al., Interspeech 2024, arXiv 2408.09438):
    a supervised contrastive loss pulling together the two modalities' states of utterances that
    share an emotion label.

    The positives of an audio sample are the visual samples in the batch with its emotion label
    (itself included), and vice versa; the loss is symmetric (:func:`supervised_alignment`).
    Unlabelled rows (``y = -1``) and rows missing either modality are ignored; fewer than two
    rows left give no value (``None``).

    It reads ``out.nodes``: the per-modality node states after message passing, which are exactly
    what the model's fusion combines, so the alignment acts on the states the fusion then fuses
    ("align before fuse"). The projected inputs are not in the outputs, and the raw inputs have
    a different size per modality. Our reading where the paper is silent on our setting: the
    paper aligns its unimodal encoders' pooled embeddings through projection modules; here the
    states already share one size, so the projection is optional.

    Args:
        modalities: the two modalities to align; None = ``audio`` and ``visual`` when the model
            has both, else its first two modalities.
        temperature: softmax temperature (> 0).
        projection: size of a learned linear projection applied to each modality before the
            loss (its parameters live in the loss term and reach the optimiser), or None to
            compare the node states themselves.
    """

    def __init__(
        self,
        modalities: list[str] | None = None,
        temperature: float = 0.1,
        projection: int | None = None,
    ) -> None:
        super().__init__()
        if modalities is not None:
            modalities = list(modalities)
            if len(modalities) != 2 or modalities[0] == modalities[1]:
                raise ErcgraphError(
                    f"emotion_alignment: modalities must be two distinct names, got {modalities}"
                )
        if not temperature > 0:
            raise ErcgraphError(f"emotion_alignment: temperature must be > 0, got {temperature}")
        if projection is not None and int(projection) < 1:
            raise ErcgraphError(
                f"emotion_alignment: projection must be a size >= 1 or null, got {projection}"
            )
        self.modalities = modalities
        self.temperature = float(temperature)
        self.projection = None if projection is None else int(projection)
        # Lazy: the node-state size is only known at the first call.
        self.project = (
            nn.ModuleList(nn.LazyLinear(self.projection) for _ in range(2))
            if self.projection is not None
            else None
        )

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        first, second = modality_pair(self.modalities, list(out.nodes), "emotion_alignment")
        keep = (batch.y >= 0) & out.present[first] & out.present[second]
        if int(keep.sum()) < 2:
            return None
        a, b = out.nodes[first][keep], out.nodes[second][keep]
        if self.project is not None:
            a, b = self.project[0](a), self.project[1](b)
        return supervised_alignment(a, b, batch.y[keep], self.temperature)

    def extra_repr(self) -> str:
        return (
            f"modalities={self.modalities}, temperature={self.temperature}, "
            f"projection={self.projection}"
        )
