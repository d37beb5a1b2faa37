"""Per-modality "perspective" classifiers, their loss term, and late fusion by config."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ercgraph.errors import ErcgraphError
from ercgraph.heads.base import Head, HeadContext, mlp
from ercgraph.losses.base import LossTerm
from ercgraph.registry import HEADS, LOSSES

PREFIX = "perspective_logits/"


@HEADS.register("perspective")
class PerspectiveHead(Head):
    r"""A classifier on each modality's own node state, after the perspective loss of Wu, Lu and
    Dai ("An Empirical Study and Improvement for Speech Emotion Recognition", ICASSP 2023, arXiv
    2304.03899).

    Writes ``perspective_logits/<modality>`` ``[N, num_classes]`` from ``out.nodes[m]`` (a
    two-layer MLP per modality, like every head here); the ``perspective`` loss term trains
    them. On a body whose node states are unimodal (``mlp``, ``m2fnet``) each classifier sees one
    modality alone; on ``hierarchical_gcn`` the states have already exchanged messages over
    ``cross_modal`` edges.

    **Late fusion is a config choice**: with ``late: true`` the head also replaces the emotion
    logits (``logits``, which the ``ce`` term trains and the emotion head scores) by the mean of
    the per-modality logits over the modalities present for each utterance; with
    ``include_fused: true`` the emotion head's own logits (from the fused representation) join
    that mean as one more voter. An utterance with no modality present keeps the emotion
    head's logits. Late fusion needs the ``emotion`` head listed *before* ``perspective``
    (``heads: [emotion, {name: perspective, late: true}]``); otherwise it is refused.

    Scored (informational, not selectable) with ``perspective_accuracy_<modality>``: each
    classifier's accuracy (in %, like the emotion head's) on the labelled utterances where its
    modality is present.

    Our reading: we could not consult the paper's method section (and it has no public code),
    so "perspective loss" as a cross-entropy on each modality's own classifier beside the fused
    one is our reading of its abstract; so are the classifier architecture, averaging logits (not
    probabilities) in late fusion, and the handling of missing modalities.

    Args:
        ctx: the head context (node state size ``hidden``, modalities from ``in_dims``).
        late: replace the emotion logits by the per-modality average (late fusion).
        include_fused: with ``late``, average the emotion head's logits in as well.
    """

    PRODUCES = ("perspective_logits",)

    def __init__(self, ctx: HeadContext, late: bool = False, include_fused: bool = False) -> None:
        super().__init__(ctx)
        if ctx.num_classes < 1:
            raise ErcgraphError(
                "the perspective head needs emotion labels, but the corpus has none (no 'label' "
                "column); map one with data.columns.label"
            )
        if include_fused and not late:
            raise ErcgraphError(
                "perspective head: include_fused only acts with late: true (late fusion)"
            )
        self.late, self.include_fused = bool(late), bool(include_fused)
        self.modalities = list(ctx.in_dims)
        self.classifiers = nn.ModuleDict(
            {m: mlp(ctx.hidden, ctx.hidden, ctx.num_classes, ctx.dropout) for m in self.modalities}
        )

    def forward(self, out: Any, batch: Any) -> dict[str, Tensor]:
        logits = {m: self.classifiers[m](out.nodes[m]) for m in self.modalities}
        res = {f"{PREFIX}{m}": v for m, v in logits.items()}
        if self.late:
            res["logits"] = self.late_fusion(logits, out)
        return res

    def late_fusion(self, logits: dict[str, Tensor], out: Any) -> Tensor:
        """Mean of the present modalities' logits (and the fused logits with ``include_fused``)."""
        fused = out.aux.get("logits")
        if fused is None:
            raise ErcgraphError(
                "perspective head: late: true averages into the emotion logits; list the "
                "emotion head before it (heads: [emotion, {name: perspective, late: true}])"
            )
        stacked = torch.stack([logits[m] for m in self.modalities], dim=1)  # [N, M, C]
        weight = torch.stack([out.present[m] for m in self.modalities], dim=1).to(stacked.dtype)
        total = (stacked * weight[..., None]).sum(1)
        count = weight.sum(1, keepdim=True)
        if self.include_fused:
            total, count = total + fused, count + 1.0
        return torch.where(count > 0, total / count.clamp(min=1.0), fused)

    def collect(self, out: Any, batch: Any) -> dict[str, Tensor]:
        """Per-modality probabilities ``[N, M, C]``, NaN where the modality is missing."""
        probs = torch.stack(
            [
                torch.softmax(out.aux[f"{PREFIX}{m}"], -1).masked_fill(
                    ~out.present[m][:, None], float("nan")
                )
                for m in self.modalities
            ],
            dim=1,
        )
        return {"pred": probs, "target": batch.y}

    def score(self, pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        scores = {}
        for i, m in enumerate(self.modalities):
            keep = (target >= 0) & ~np.isnan(pred[:, i, 0])
            if keep.any():
                hits = pred[keep, i].argmax(1) == target[keep]
                scores[f"perspective_accuracy_{m}"] = 100.0 * float(hits.mean())
        return scores

    def extra_repr(self) -> str:
        return (
            f"modalities={self.modalities}, num_classes={self.ctx.num_classes}, "
            f"late={self.late}, include_fused={self.include_fused}"
        )


@LOSSES.register("perspective")
class PerspectiveLoss(LossTerm):
    """The perspective loss: cross-entropy of each modality's own classifier (the
    ``perspective`` head), summed over modalities, each over the labelled utterances where that
    modality is present (unlabelled rows, -1, and missing modalities ignored).

    Args:
        weights: modality → weight of its cross-entropy (default 1 for every modality; a
            modality left out of a given mapping has weight 0).
        reduction: ``sum`` over modalities (the default, our reading of the paper's added
            per-perspective losses) or ``mean``.
    """

    REQUIRES = ("perspective_logits",)

    def __init__(self, weights: dict[str, float] | None = None, reduction: str = "sum") -> None:
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ErcgraphError(
                f"perspective loss: reduction must be 'sum' or 'mean', got {reduction!r}"
            )
        if weights is not None and any(float(w) < 0 for w in weights.values()):
            raise ErcgraphError(f"perspective loss: weights must be >= 0, got {weights}")
        self.weights = {m: float(w) for m, w in weights.items()} if weights is not None else None
        self.reduction = reduction

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        found = sorted(k for k in out.aux if k.startswith(PREFIX))
        if not found:
            raise ErcgraphError(
                "the perspective loss reads perspective_logits/<modality>: add the perspective "
                "head (heads: [emotion, perspective])"
            )
        if self.weights is not None:
            unknown = sorted(set(self.weights) - {k[len(PREFIX) :] for k in found})
            if unknown:
                raise ErcgraphError(
                    f"perspective loss: weights name {unknown}, which are not modalities of the "
                    f"perspective head ({[k[len(PREFIX) :] for k in found]})"
                )
        labelled = batch.y >= 0
        terms = []
        for key in found:
            m = key[len(PREFIX) :]
            w = 1.0 if self.weights is None else self.weights.get(m, 0.0)
            keep = labelled & out.present[m]
            if w and bool(keep.any()):
                terms.append(w * F.cross_entropy(out.aux[key][keep], batch.y[keep]))
        if not terms:
            return None
        total = torch.stack(terms).sum()
        return total / len(terms) if self.reduction == "mean" else total

    def extra_repr(self) -> str:
        return f"weights={self.weights}, reduction={self.reduction!r}"
