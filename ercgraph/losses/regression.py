"""Loss terms for dimensional emotion: CCC (RCMA's objective) and MSE."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ercgraph.losses.base import LossTerm
from ercgraph.registry import LOSSES


def ccc_loss(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """``1 - CCC`` per column of ``[N, D]`` tensors (NaN targets skipped), averaged over columns.

    A column with fewer than two targets contributes nothing.
    """
    losses = []
    for j in range(pred.shape[1]):
        keep = ~torch.isnan(target[:, j])
        if int(keep.sum()) < 2:
            continue
        p, t = pred[keep, j], target[keep, j]
        mp, mt = p.mean(), t.mean()
        cov = ((p - mp) * (t - mt)).mean()
        denom = p.var(unbiased=False) + t.var(unbiased=False) + (mp - mt) ** 2
        losses.append(1.0 - 2.0 * cov / (denom + eps))
    if not losses:
        return pred.sum() * 0.0
    return torch.stack(losses).mean()


@LOSSES.register("ccc")
class CCCLoss(LossTerm):
    """``1 - CCC`` of the regression head's ``regression`` output against ``batch.y_regression``,
    per dimension over the batch, averaged over dimensions (Praveen et al., RCMA, and the ABAW
    practice). Batches of whole dialogues give the statistics; use a batch size of several
    dialogues."""

    REQUIRES = ("regression",)

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        target = batch.y_regression
        if not bool((~torch.isnan(target)).any()):
            return None
        return ccc_loss(out.aux["regression"], target)


@LOSSES.register("mse")
class MSELoss(LossTerm):
    """Mean squared error of the regression head on the original scale (NaN targets skipped)."""

    REQUIRES = ("regression",)

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        target = batch.y_regression
        keep = ~torch.isnan(target)
        if not bool(keep.any()):
            return None
        return ((out.aux["regression"] - target.nan_to_num())[keep] ** 2).mean()
