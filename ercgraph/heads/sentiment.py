"""The sentiment head and its loss term (multi-task training where a corpus has sentiment)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from ercgraph.errors import ErcgraphError
from ercgraph.heads.base import Head, HeadContext, mlp
from ercgraph.losses.base import LossTerm
from ercgraph.registry import HEADS, LOSSES


@HEADS.register("sentiment")
class SentimentHead(Head):
    """Sentiment logits from the utterance representation (MELD: negative/neutral/positive).

    The vocabulary is the sorted set of the training split's ``sentiment`` column (so any corpus
    with such a column works); values outside it count as missing (-1). Writes
    ``sentiment_logits``; the ``sentiment`` loss term trains it; scored with ``sentiment_accuracy``,
    ``sentiment_weighted_f1`` and ``sentiment_macro_f1``.

    Args:
        ctx: the head context; ``ctx.state["labels"]`` is the fitted vocabulary.
        column: the Corpus column holding sentiment names.
    """

    METRICS = ("sentiment_weighted_f1", "sentiment_accuracy", "sentiment_macro_f1")
    PRODUCES = ("sentiment_logits",)

    def __init__(self, ctx: HeadContext, column: str = "sentiment") -> None:
        super().__init__(ctx)
        self.column = column
        self.labels = list(ctx.state.get("labels", []))
        if not self.labels:
            raise ErcgraphError("sentiment head: no sentiment vocabulary was fitted")
        self.classifier = mlp(ctx.in_dim, ctx.hidden, len(self.labels), ctx.dropout)

    @classmethod
    def fit(cls, corpus: Any, column: str = "sentiment", **options: Any) -> dict[str, Any]:
        df = corpus.df
        if column not in df.columns:
            raise ErcgraphError(
                f"the sentiment head needs a {column!r} column; {corpus.source or corpus.name} has "
                f"{sorted(df.columns)}"
            )
        train = df.loc[df["split"] == "train", column].dropna().astype(str)
        if train.empty:
            raise ErcgraphError(f"sentiment head: column {column!r} is empty in the train split")
        return {"labels": sorted(set(train))}

    @classmethod
    def targets(
        cls,
        corpus: Any,
        state: dict[str, Any],
        required: bool = True,
        column: str = "sentiment",
        **options: Any,
    ) -> dict[str, Tensor]:
        df = corpus.df
        if column not in df.columns:
            if required:
                raise ErcgraphError(f"the sentiment head needs a {column!r} column")
            values = pd.Series([None] * len(df))
        else:
            values = df[column]
        index = {name: i for i, name in enumerate(state["labels"])}
        codes = values.map(lambda v: index.get(str(v), -1) if pd.notna(v) else -1)
        return {"y_sentiment": torch.tensor(codes.to_numpy(dtype=np.int64))}

    def forward(self, out: Any, batch: Any) -> dict[str, Tensor]:
        return {"sentiment_logits": self.classifier(out.utterance)}

    def collect(self, out: Any, batch: Any) -> dict[str, Tensor]:
        return {"pred": torch.softmax(out.aux["sentiment_logits"], -1), "target": batch.y_sentiment}

    def score(self, pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        from ercgraph.report import score

        keep = target >= 0
        s = score(target[keep], pred[keep].argmax(1), self.labels)
        return {f"sentiment_{k}": v for k, v in s.items() if k not in ("per_class", "micro_f1")}

    def extra_repr(self) -> str:
        return f"column={self.column!r}, labels={self.labels}"


@LOSSES.register("sentiment")
class SentimentLoss(LossTerm):
    """Cross-entropy of the sentiment head over utterances with a sentiment (-1 ignored)."""

    REQUIRES = ("sentiment_logits",)

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        y = batch.y_sentiment
        if not bool((y >= 0).any()):
            return None
        return F.cross_entropy(out.aux["sentiment_logits"], y, ignore_index=-1)
