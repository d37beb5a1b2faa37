"""The masked-reconstruction loss term (reads the reconstruction head's outputs)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ercgraph.losses.base import LossTerm
from ercgraph.registry import LOSSES


@LOSSES.register("reconstruction")
class ReconstructionLoss(LossTerm):
    """Mean ``1 - cos(decoded, original)`` over the masked nodes of every modality.

    The cosine makes it scale-free across encoders. It reads ``reconstruction/<modality>`` from
    ``out.aux`` (the ``reconstruction`` head) and the raw inputs of the masked nodes; a step
    without masked nodes (evaluation) gives no value.
    """

    REQUIRES = ("reconstruction",)

    def forward(self, out: Any, batch: Any) -> Tensor | None:
        losses = []
        for m, mask in out.node_masks.items():
            rec = out.aux.get(f"reconstruction/{m}")
            if rec is not None and bool(mask.any()):
                losses.append(1.0 - F.cosine_similarity(rec, out.inputs[m][mask], dim=-1))
        if not losses:
            return None
        return torch.cat(losses).mean()
