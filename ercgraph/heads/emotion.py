"""The emotion classification head."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ercgraph.heads.base import Head, HeadContext, linear_skip, mlp, skip_input
from ercgraph.registry import HEADS


@HEADS.register("emotion")
class EmotionHead(Head):
    """Emotion logits from the utterance representation (a two-layer MLP).

    Writes ``logits`` ``[N, num_classes]``; scored with accuracy (WA), unweighted accuracy (UA,
    the macro recall), weighted, macro and micro F1 (``micro_f1`` leaves out ``exclude_label``,
    set by ``metrics.exclude_label``) and per-class precision/recall/F1 against
    ``batch.y`` (label ids from the Corpus, -1 unlabelled).
    """

    METRICS = ("weighted_f1", "accuracy", "macro_f1", "unweighted_accuracy", "micro_f1")
    PRODUCES = ("logits",)

    def __init__(self, ctx: HeadContext, exclude_label: str | None = None) -> None:
        super().__init__(ctx)
        self.exclude_label = exclude_label
        if ctx.num_classes < 1:
            from ercgraph.errors import ErcgraphError

            raise ErcgraphError(
                "the emotion head needs emotion labels, but the corpus has none (no 'label' "
                "column); map one with data.columns.label, or use other heads (e.g. regression)"
            )
        self.classifier = mlp(ctx.in_dim, ctx.hidden, ctx.num_classes, ctx.dropout)
        self.skip = linear_skip(ctx, ctx.num_classes)
        self.modalities = list(ctx.in_dims)

    def forward(self, out: Any, batch: Any) -> dict[str, Tensor]:
        logits = self.classifier(out.utterance)
        if self.skip is not None:
            logits = logits + self.skip(skip_input(out, self.modalities))
        return {"logits": logits}

    def collect(self, out: Any, batch: Any) -> dict[str, Tensor]:
        return {"pred": torch.softmax(out.aux["logits"], -1), "target": batch.y}

    def score(self, pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        from ercgraph.report import score

        keep = target >= 0
        return score(target[keep], pred[keep].argmax(1), self.ctx.labels, self.exclude_label)

    @classmethod
    def fit(cls, corpus: Any, exclude_label: str | None = None, **options: Any) -> dict[str, Any]:
        """Checks ``exclude_label`` (``metrics.exclude_label``) against the vocabulary."""
        if exclude_label is not None and exclude_label not in corpus.labels:
            from ercgraph.errors import ErcgraphError

            raise ErcgraphError(
                f"metrics.exclude_label {exclude_label!r} is not a label of "
                f"{corpus.source or corpus.name}; the labels are {list(corpus.labels)}"
            )
        return {}

    def extra_repr(self) -> str:
        extra = f", exclude_label={self.exclude_label!r}" if self.exclude_label else ""
        return f"in_dim={self.ctx.in_dim}, num_classes={self.ctx.num_classes}{extra}"
