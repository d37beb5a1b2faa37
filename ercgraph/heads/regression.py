"""The valence/arousal/dominance regression head (dimensional emotion)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ercgraph.errors import ErcgraphError
from ercgraph.heads.base import Head, HeadContext, linear_skip, mlp, skip_input
from ercgraph.registry import HEADS

DIMENSIONS = ("valence", "arousal", "dominance")


@HEADS.register("regression")
class RegressionHead(Head):
    """Regresses dimensional emotion (valence/arousal/dominance by default) per utterance.

    The head predicts standardised values (train-split mean and std, fitted by :meth:`fit` and
    saved with the run) and writes them back on the original scale as ``regression``
    ``[N, len(targets)]``. Train it with the ``ccc`` loss term (RCMA's objective) or ``mse``;
    it is scored with CCC, Pearson correlation and MAE per dimension (``ccc_valence`` ...) and
    their means (``ccc`` ...). Missing targets (NaN) are skipped.

    Args:
        ctx: the head context.
        targets: the Corpus columns to regress.
    """

    METRICS = ("ccc", "pearson")
    PRODUCES = ("regression",)

    def __init__(self, ctx: HeadContext, targets: list[str] | None = None) -> None:
        super().__init__(ctx)
        self.names = list(targets or DIMENSIONS)
        mean = ctx.state.get("mean", [0.0] * len(self.names))
        std = ctx.state.get("std", [1.0] * len(self.names))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.regressor = mlp(ctx.in_dim, ctx.hidden, len(self.names), ctx.dropout)
        self.skip = linear_skip(ctx, len(self.names))
        self.modalities = list(ctx.in_dims)

    @classmethod
    def selectable(cls, targets: list[str] | None = None, **options: Any) -> tuple[str, ...]:
        names = list(targets or DIMENSIONS)
        return (
            cls.METRICS
            + ("mae",)
            + tuple(f"{k}_{n}" for n in names for k in ("ccc", "pearson", "mae"))
        )

    @classmethod
    def _columns(cls, corpus: Any, targets: list[str] | None, required: bool) -> list[str]:
        names = list(targets or DIMENSIONS)
        missing = [n for n in names if n not in corpus.df.columns]
        if missing and required:
            raise ErcgraphError(
                f"the regression head looked for columns {names} in "
                f"{corpus.source or corpus.name} and did not find {missing}; the corpus has "
                f"{sorted(corpus.df.columns)} (map them with data.columns, e.g. valence: V)"
            )
        return names

    @classmethod
    def fit(cls, corpus: Any, targets: list[str] | None = None, **options: Any) -> dict[str, Any]:
        names = cls._columns(corpus, targets, True)
        train = corpus.df.loc[corpus.df["split"] == "train", names].astype(float)
        if train.notna().sum().min() < 2:
            raise ErcgraphError(f"regression head: fewer than 2 training values in {names}")
        std = train.std(ddof=0).fillna(1.0).to_numpy()
        return {
            "names": names,
            "mean": train.mean().tolist(),
            "std": np.where(std > 1e-8, std, 1.0).tolist(),
        }

    @classmethod
    def targets(
        cls,
        corpus: Any,
        state: dict[str, Any],
        required: bool = True,
        targets: list[str] | None = None,
        **options: Any,
    ) -> dict[str, Tensor]:
        names = cls._columns(corpus, targets, required)
        cols = [
            corpus.df[n].astype(float).to_numpy()
            if n in corpus.df.columns
            else np.full(len(corpus.df), np.nan)
            for n in names
        ]
        return {"y_regression": torch.from_numpy(np.stack(cols, axis=1).astype(np.float32))}

    def forward(self, out: Any, batch: Any) -> dict[str, Tensor]:
        z = self.regressor(out.utterance)
        if self.skip is not None:
            z = z + self.skip(skip_input(out, self.modalities))
        return {"regression": z * self.std + self.mean}

    def collect(self, out: Any, batch: Any) -> dict[str, Tensor]:
        return {"pred": out.aux["regression"], "target": batch.y_regression}

    def score(self, pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        from ercgraph.metrics import regression_scores

        return regression_scores(pred, target, self.names)

    def extra_repr(self) -> str:
        return f"targets={self.names}"
