"""Cross-modal emotion label matching (Foal-Net): the head, its pair mining and its loss term."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ercgraph.heads.base import Head, HeadContext, mlp
from ercgraph.losses.alignment import modality_pair
from ercgraph.losses.base import LossTerm
from ercgraph.registry import HEADS, LOSSES

#: The expected match of each pair slot: positive and hard negative of a first-modality anchor,
#: then of a second-modality anchor.
SLOT_TARGETS = (1.0, 0.0, 1.0, 0.0)


class MatchingPairs(NamedTuple):
    """Pairs ``(first-modality row, second-modality row)`` to classify as same emotion or not.

    Attributes:
        first: ``[P]`` row of the first modality's state.
        second: ``[P]`` row of the second modality's state.
        target: ``[P]`` float, 1 where both rows share the emotion label.
        anchor: ``[P]`` the row the pair was mined for.
        slot: ``[P]`` 0/1 = positive/hard negative of a first-modality anchor, 2/3 = of a
            second-modality anchor.
    """

    first: Tensor
    second: Tensor
    target: Tensor
    anchor: Tensor
    slot: Tensor


def matching_pairs(
    a: Tensor,
    b: Tensor,
    y: Tensor,
    a_valid: Tensor,
    b_valid: Tensor,
    hardest_positive: bool = False,
) -> MatchingPairs:
    """Mine a positive and a hard negative partner for every anchor, in both directions.

    An anchor ``i`` of the first modality (``a_valid``) gets, among the second modality's rows
    (``b_valid``), a positive ``j`` with ``y_j = y_i`` (``i`` itself may be drawn) and the hard
    negative: the row with a different label whose state is most similar (cosine) to ``a_i``.
    Anchors of the second modality get first-modality partners the same way. An anchor without a
    candidate of a kind gets no pair of that kind. The positive is drawn uniformly (torch's global
    generator) or, with ``hardest_positive``, is the least similar same-label row (deterministic,
    used outside training).

    Args:
        a: ``[N, d]`` first-modality states (similarities only; pass them detached).
        b: ``[N, d]`` second-modality states.
        y: ``[N]`` emotion ids.
        a_valid: bool ``[N]``, rows usable on the first side (labelled and present).
        b_valid: bool ``[N]``, rows usable on the second side.
        hardest_positive: pick the least similar positive instead of a random one.
    """
    sim = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T  # [N, N], a rows × b columns
    same = y[:, None] == y[None, :]
    cand = a_valid[:, None] & b_valid[None, :]
    parts = []
    for side, (s, pos, neg) in enumerate(
        ((sim, same & cand, ~same & cand), (sim.T, (same & cand).T, (~same & cand).T))
    ):
        anchors = torch.nonzero(pos.any(1)).squeeze(1)
        if hardest_positive:
            partner = s.masked_fill(~pos, float("inf")).argmin(1)[anchors]
        elif anchors.numel():
            partner = torch.multinomial(pos[anchors].float(), 1).squeeze(1)
        else:
            partner = anchors
        parts.append((anchors, partner, 2 * side, 1.0))
        anchors = torch.nonzero(neg.any(1)).squeeze(1)
        partner = s.masked_fill(~neg, float("-inf")).argmax(1)[anchors]
        parts.append((anchors, partner, 2 * side + 1, 0.0))
    first, second, target, anchor, slot = [], [], [], [], []
    for anchors, partner, k, match in parts:
        first.append(anchors if k < 2 else partner)
        second.append(partner if k < 2 else anchors)
        target.append(torch.full(anchors.shape, match, device=sim.device, dtype=sim.dtype))
        anchor.append(anchors)
        slot.append(torch.full_like(anchors, k))
    return MatchingPairs(*(torch.cat(t) for t in (first, second, target, anchor, slot)))


def pair_features(a: Tensor, b: Tensor) -> Tensor:
    """``[a, b, a * b, |a - b|]``: the usual input of a pair classifier."""
    return torch.cat([a, b, a * b, (a - b).abs()], dim=-1)


@HEADS.register("label_matching")
class LabelMatchingHead(Head):
    """Foal-Net's cross-modal emotion label matching (Li et al., Interspeech 2024,
    arXiv 2408.09438): does the first-modality state of utterance ``i`` and the
    second-modality state of utterance ``j`` carry the same emotion?

    Every forward pass mines pairs from the batch's labelled rows with both sides present
    (:func:`matching_pairs`: each anchor with a same-label partner and its hardest
    different-label partner, in both directions) and scores each pair with a two-layer
    classifier over ``[a, b, a*b, |a-b|]`` of the two ``out.nodes`` states. It writes
    ``label_matching/logits``, ``label_matching/target``, ``label_matching/anchor`` and
    ``label_matching/slot`` (all ``[P]``) to ``out.aux``, nothing when no pair exists; the
    ``label_matching`` loss term trains it. Outside training the positive is the least similar
    same-label row, so dev figures are deterministic. It never changes the emotion prediction.

    Our reading where the paper is silent or our model differs: the paper passes each pair
    through its fusion network before the binary classifier; a head cannot reach the model's
    fusion, so the classifier reads the pre-fusion node states, and the matching gradient
    reaches the states the fusion combines. Hard negatives are the most similar
    different-label rows (the paper mines them from the alignment similarities).

    Scoring: ``collect`` gives per-utterance probabilities ``[N, 4]`` (the anchor's positive and
    hard-negative pair in each direction, NaN where none was mined) and ``score`` reports
    ``matching_accuracy`` in percent (a pair is right when its probability is on the right side
    of 0.5).
    It is a diagnostic, not a selectable metric.

    Args:
        ctx: the head context (node state size ``hidden``, the model's modalities).
        modalities: the two modalities to match; None = ``audio`` and ``visual`` when the
            model has both, else its first two modalities.
    """

    PRODUCES = ("label_matching",)

    def __init__(self, ctx: HeadContext, modalities: list[str] | None = None) -> None:
        super().__init__(ctx)
        self.modalities = list(modality_pair(modalities, list(ctx.in_dims), "label_matching"))
        self.classifier = mlp(4 * ctx.hidden, ctx.hidden, 1, ctx.dropout)

    def forward(self, out: Any, batch: Any) -> dict[str, Tensor]:
        first, second = self.modalities
        a, b = out.nodes[first], out.nodes[second]
        labelled = batch.y >= 0
        pairs = matching_pairs(
            a.detach(),
            b.detach(),
            batch.y,
            labelled & out.present[first],
            labelled & out.present[second],
            hardest_positive=not self.training,
        )
        if pairs.target.numel() == 0:
            return {}
        logits = self.classifier(pair_features(a[pairs.first], b[pairs.second])).squeeze(-1)
        return {
            "label_matching/logits": logits,
            "label_matching/target": pairs.target,
            "label_matching/anchor": pairs.anchor,
            "label_matching/slot": pairs.slot,
        }

    def collect(self, out: Any, batch: Any) -> dict[str, Tensor]:
        pred = torch.full((batch.y.numel(), len(SLOT_TARGETS)), float("nan"), device=batch.y.device)
        logits = out.aux.get("label_matching/logits")
        if logits is not None:
            slots = (out.aux["label_matching/anchor"], out.aux["label_matching/slot"])
            pred[slots] = torch.sigmoid(logits).to(pred.dtype)
        return {"pred": pred, "target": batch.y}

    def score(self, pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        expected = np.broadcast_to(np.array(SLOT_TARGETS), pred.shape)
        mined = ~np.isnan(pred)
        if not mined.any():
            return {}
        right = (pred[mined] > 0.5) == (expected[mined] > 0.5)
        return {"matching_accuracy": 100.0 * float(right.mean())}  # percent, like accuracy

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, hidden={self.ctx.hidden}"


@LOSSES.register("label_matching")
class LabelMatchingLoss(LossTerm):
    """Binary cross-entropy of the ``label_matching`` head's pair logits against whether the two
    sides share the emotion label; no value (``None``) when the batch gave no pair."""

    REQUIRES = ("label_matching",)

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        logits = out.aux.get("label_matching/logits")
        if logits is None or logits.numel() == 0:
            return None
        return F.binary_cross_entropy_with_logits(logits, out.aux["label_matching/target"])
